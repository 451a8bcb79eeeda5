"""Supervision lattices of the untranscribed cuts: the four kinds of the thesis (ch. 3), and their quality.

From a Monte-Carlo dropout decode of the untranscribed cuts (`frugal decode
--dropout-samples N`: the dropout-off lattice and N dropout passes), one supervision
lattice per utterance, combined by `frugal.semisup.lattices.combine_lattices` (each input
pruned with the beam, its best path's cost removed, united, pruned and determinised):

- ``regular``: the dropout-off lattice alone (Manohar et al. 2018);
- ``am`` (uncertainty of the acoustic model): the dropout-off lattice and the N dropout
  lattices (``num_samples`` fewer for the dev-WER-vs-N curve);
- ``lm`` (of the language model): the dropout-off lattice and its N rescorings by the
  neural LM with dropout on (`nnlm_rescore`, one call drawing the N samples);
- ``am_lm`` (both): the dropout-off lattice and the N dropout lattices, the i-th rescored
  with the neural LM's own dropout sample (seed + i).

With a neural LM (``nnlm``; the LM kinds need one) every lattice is rescored before pruning
and combination, as in the thesis's table 3.5 (section 3.8.3), where every row, the regular
one included, is rescored: the dropout-off lattice, and the dropout lattices of ``am``, by
the LM with its dropout off; the samples above by the LM with dropout on. Without one,
``regular`` and ``am`` combine the decoder's lattices as they are.

The LM samples of an utterance are seeded from (``seed``, utterance id), so a run is
reproducible and does not depend on the jobs. The output is a decode directory of
lattices (one file a job of the input decode, no 1-best), which ``frugal train
--supervision-lattices`` and `supervision_report` read.

`supervision_report` is the thesis's table 3.4: the n-best WER and SER of each kind
against the true transcripts (`nbest_error_rates`).
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from lhotse import SupervisionSegment
from lhotse.utils import fastcopy

from frugal import jobs
from frugal.data.cuts import load_cuts, read_transcripts
from frugal.data.jsonl import write_manifest
from frugal.decode.dropout import utterance_seed
from frugal.dirs import DecodeDir
from frugal.errors import BadValue, FrugalError, where
from frugal.fileio import PathLike, atomic_write_text
from frugal.graph.compile import make_grammar_fst
from frugal.lang.symbols import SymbolTable
from frugal.lang.text import read_text, read_texts
from frugal.lattice.io import read_lattice_inputs, read_lattices, write_lattices
from frugal.lattice.lattice import Lattice
from frugal.lattice.rescore import BackoffLm
from frugal.lm.neural import NeuralLm
from frugal.logs import log_to_file
from frugal.semisup.lattices import (DEFAULT_BEAM, NORMALIZE_MODES, NbestRescoreConfig, combine_lattices,
                                     nnlm_rescore, supervision_table, nbest_error_rates)

log = logging.getLogger(__name__)

KINDS = ("regular", "am", "lm", "am_lm")


@dataclass
class SupervisionOptions:
    """How the supervision lattices of a kind are made (see the module docstring)."""

    kind: str
    num_samples: Optional[int] = None     # dropout passes used (default: all of the decode's)
    beam: Optional[float] = DEFAULT_BEAM  # pruning beam of each input and the union (None: none)
    acoustic_scale: Optional[float] = None  # None: the decode's own (acoustic_scale / post_decode_acwt)
    normalize: str = "best"
    nnlm: Optional[str] = None            # the neural LM (lm, am_lm)
    old_lm: Optional[str] = None          # the ARPA LM whose costs the lattices carry (lm, am_lm)
    words: Optional[str] = None           # words.txt of the lattices (lm, am_lm)
    seed: int = 0                         # of the LM's dropout samples
    nbest: int = 100                      # paths rescored per lattice by the neural LM

    @property
    def needs_lm(self) -> bool:
        return self.kind in ("lm", "am_lm")

    @property
    def uses_lm(self) -> bool:
        return self.needs_lm or self.nnlm is not None

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise BadValue("kind", self.kind, f"must be one of {', '.join(KINDS)}")
        if self.normalize not in NORMALIZE_MODES:
            raise BadValue("normalize", self.normalize, f"must be one of {', '.join(NORMALIZE_MODES)}")
        if self.num_samples is not None and self.num_samples < 1:
            raise BadValue("num_samples", self.num_samples, "must be at least 1")
        if self.nbest < 1:
            raise BadValue("nbest", self.nbest, "must be at least 1")
        for name in ("nnlm", "old_lm", "words"):
            path = getattr(self, name)
            if self.needs_lm and not path:
                raise BadValue(name, None, f"is needed for {self.kind} supervision")
            if self.uses_lm and not path:
                raise BadValue(name, None, "is needed to rescore with the neural LM")
            if path and not Path(path).is_file():
                raise BadValue(name, path, "no such file")


@dataclass
class _Job:
    number: int
    inputs: List[str]          # lat.J.pt of the dropout-off decode, then of the dropout passes used
    output_dir: str
    options: SupervisionOptions
    fingerprint: str


class _LmRescorer:
    """The neural LM and the n-gram LM of the lattices, loaded once a job."""

    def __init__(self, options: SupervisionOptions, acoustic_scale: float):
        self.lm = NeuralLm.load(options.nnlm)
        self.old_lm = BackoffLm(make_grammar_fst(options.old_lm, options.words))
        self.words = SymbolTable.read(options.words)
        self.config = NbestRescoreConfig(nbest=options.nbest, acoustic_scale=acoustic_scale)

    def __call__(self, lat: Lattice, num_samples: int = 1, seed: Optional[int] = None,
                 dropout: bool = True) -> List[Lattice]:
        return nnlm_rescore(lat, self.lm, self.old_lm, self.words, num_samples, seed, dropout, self.config)


Rescorer = Callable[..., List[Lattice]]  # (lattice, num_samples, seed, dropout) -> rescored lattices


def utterance_supervision(key: str, off: Lattice, dropout: Sequence[Lattice], options: SupervisionOptions,
                          acoustic_scale: float, rescore: Optional[Rescorer] = None) -> Lattice:
    """The supervision lattice of one utterance (see the module docstring); ``rescore(lat,
    num_samples, seed, dropout)`` gives the neural LM's rescorings of a lattice (needed by
    lm and am_lm; with it, every input is rescored)."""
    if options.needs_lm and rescore is None:
        raise BadValue("nnlm", None, f"is needed for {options.kind} supervision")

    def plain(lat: Lattice) -> Lattice:  # the LM's dropout off: deterministic
        return rescore(lat, 1, None, False)[0] if rescore is not None else lat

    seed = utterance_seed(options.seed, key)
    if options.kind == "regular":
        inputs = [plain(off)]
    elif options.kind == "am":
        inputs = [plain(off), *map(plain, dropout)]
    elif options.kind == "lm":
        inputs = [plain(off), *rescore(off, options.num_samples, seed, True)]
    else:
        inputs = [plain(off), *(rescore(lat, 1, seed + i, True)[0] for i, lat in enumerate(dropout))]
    return combine_lattices(inputs, options.beam, options.normalize, True, 1.0, acoustic_scale, name=key)


def _run_job(job: _Job) -> None:
    out = DecodeDir(job.output_dir)
    options = job.options
    with log_to_file(out.job(job.number).log, mode="w"):
        acoustic_scale = options.acoustic_scale
        rescore = _LmRescorer(options, acoustic_scale) if options.uses_lm else None
        off, *passes = [read_lattices(f) for f in job.inputs]
        result, missing = {}, 0
        for key, lat in off.items():
            dropout = [p[key] for p in passes if key in p]
            missing += len(passes) - len(dropout)
            result[key] = utterance_supervision(key, lat, dropout, options, acoustic_scale, rescore)
            jobs.report(1)
        if missing:
            log.warning("job %d: %d dropout lattices missing (no surviving path); combined the others",
                        job.number, missing)
        write_lattices(out.job(job.number).lattices, result)
        log.info("job %d: %s supervision of %d utterances", job.number, options.kind, len(result))
        out.job_done(job.number, job.fingerprint)


def make_supervision(decode_dir: PathLike, output_dir: PathLike, options: SupervisionOptions, nj: int = 1) -> None:
    """The supervision lattices of a kind for the utterances of a (dropout) decode directory,
    into the decode directory ``output_dir``, one job a job of the decode, ``nj`` at a time."""
    options.validate()
    source = DecodeDir.finished(decode_dir, "--decode-dir")
    num_passes = 0
    if options.kind in ("am", "am_lm") or (options.kind == "lm" and options.num_samples is None):
        num_passes = int(source.dropout_info()["dropout_samples"])
    if options.num_samples is not None:
        if options.kind in ("am", "am_lm") and options.num_samples > num_passes:
            raise BadValue("num_samples", options.num_samples, f"the decode has only {num_passes} dropout passes")
        num_passes = options.num_samples
    if options.kind == "lm":
        options.num_samples, num_passes = num_passes, 0  # LM samples, drawn from the dropout-off lattice
    if options.acoustic_scale is None:
        options.acoustic_scale = source.lattice_acoustic_scale
    passes = [source] + [DecodeDir.finished(source.pass_dir(k).path) for k in range(1, num_passes + 1)]
    out = DecodeDir(output_dir)
    record = {"decode_dir": str(source.path), **asdict(options)}
    out.prepare(source.num_jobs, record)
    todo = []
    for j in range(1, source.num_jobs + 1):
        inputs = [str(d.lattice_files()[j - 1]) for d in passes]
        files = {f"input {k}": f for k, f in enumerate(inputs)}
        files.update({name: getattr(options, name) for name in ("nnlm", "old_lm", "words") if getattr(options, name)})
        fingerprint = jobs.fingerprint([], record, files)
        if not out.job_is_done(j, fingerprint, hyps=False):
            todo.append(_Job(j, inputs, str(out.path), options, fingerprint))
    if len(todo) < source.num_jobs:
        log.info("%d of %d jobs are done already: skipped", source.num_jobs - len(todo), source.num_jobs)
    total = sum(len(read_lattices(job.inputs[0])) for job in todo)
    jobs.run(_run_job, todo, nj, desc=f"{options.kind} supervision", unit="utt", total=total, threads_here=1)
    out.finish()
    log.info("wrote %s: %s supervision lattices of %s (%s)", out.path, options.kind, source.path,
             json.dumps(asdict(options)))


def supervision_report(kinds: Sequence[Tuple[str, PathLike]], cuts: PathLike, words: PathLike, nbest: int = 10,
                       lm_scale: float = 1.0, acoustic_scale: float = 1.0, output: Optional[PathLike] = None) -> str:
    """Table 3.4 as markdown: the ``nbest``-best WER and SER of each kind of supervision
    lattices (a lattice file or directory) against the transcripts of ``cuts``; every
    utterance of the cuts must have a lattice in every kind."""
    if nbest < 1:
        raise BadValue("nbest", nbest, "must be at least 1")
    if acoustic_scale <= 0 or lm_scale <= 0:
        raise BadValue("acoustic_scale", acoustic_scale, f"and lm_scale {lm_scale}: scales must be positive")
    names = [name for name, _ in kinds]
    if len(set(names)) != len(names):
        raise BadValue("kinds", next(n for n in names if names.count(n) > 1), "is given twice")
    refs = read_transcripts(cuts)
    table = SymbolTable.read(words)
    rates = {}
    for name, path in kinds:
        lattices = read_lattice_inputs([path], f"--kind {name}:")
        missing = [u for u in refs if u not in lattices]
        if missing:
            raise FrugalError(f"--kind {name}:{path}: {len(missing)} of the {len(refs)} utterances of {cuts} have "
                              f"no lattice (first: '{missing[0]}')")
        extra = [u for u in lattices if u not in refs]
        if extra:
            log.warning("--kind %s:%s: %d lattices of utterances not in %s are left out (first: '%s')",
                        name, path, len(extra), cuts, extra[0])
        rates[name] = nbest_error_rates({u: lattices[u] for u in refs}, refs, table, nbest, lm_scale, acoustic_scale)
    report = (f"# Supervision lattices: {nbest}-best WER and SER against the true transcripts (table 3.4)\n\n"
              f"N = {nbest} best paths per utterance, ranked with LM scale {lm_scale:g} and acoustic scale "
              f"{acoustic_scale:g}; {len(refs)} utterances of {cuts}.\n\n"
              + supervision_table(rates, nbest) + "\n" + "".join(f"- {name}: {path}\n" for name, path in kinds))
    if output is not None:
        atomic_write_text(output, report)
    return report


def combine_lattice_files(inputs: Sequence[PathLike], output: PathLike, beam: Optional[float] = DEFAULT_BEAM,
                          normalize: str = "best", determinize: bool = True, graph_scale: float = 1.0,
                          acoustic_scale: float = 1.0) -> Dict[str, Lattice]:
    """Combine the lattices of the same utterances in several files into ``output``; an
    utterance missing from some inputs is combined from the others (with a warning), the
    utterances are those of the first input."""
    if normalize not in NORMALIZE_MODES:
        raise BadValue("normalize", normalize, f"must be one of {', '.join(NORMALIZE_MODES)}")
    lats = [read_lattices(p) for p in inputs]
    out: Dict[str, Lattice] = {}
    missing = 0
    for key in lats[0]:
        these = [d[key] for d in lats if key in d]
        missing += len(lats) - len(these)
        out[key] = combine_lattices(these, beam, normalize, determinize, graph_scale, acoustic_scale, name=key)
        jobs.report(1)
    if missing:
        log.warning("%s: %d lattices missing from some inputs; combined the others", output, missing)
    extra = {k for d in lats[1:] for k in d} - set(lats[0])
    if extra:
        log.warning("%s: %d utterances not in the first input %s are left out", output, len(extra), inputs[0])
    write_lattices(output, out)
    log.info("%s: combined %d utterances from %d inputs", output, len(out), len(inputs))
    return out


def rescore_lattice_file(lattices: PathLike, outputs: Sequence[PathLike], nnlm: PathLike, old_lm: PathLike,
                         words: PathLike, seed: int = 0, dropout: bool = True, device: str = "cpu",
                         config: NbestRescoreConfig = NbestRescoreConfig()) -> None:
    """Rescore the lattices of a file with the neural LM, once per output file (a dropout
    sample each, seeded from ``seed`` and the utterance id; one deterministic one without
    ``dropout``): n-best rescoring, `frugal.semisup.lattices.nnlm_rescore`."""
    if not dropout and len(outputs) != 1:
        raise BadValue("samples", len(outputs), "without dropout every sample is the same: take 1")
    if config.nbest < 1:
        raise BadValue("nbest", config.nbest, "must be at least 1")
    lm = NeuralLm.load(nnlm, device=device)
    old = BackoffLm(make_grammar_fst(old_lm, words))
    table = SymbolTable.read(words)
    samples: List[Dict[str, Lattice]] = [{} for _ in outputs]
    lats = read_lattices(lattices)
    for key, lat in lats.items():
        for out, rescored in zip(samples, nnlm_rescore(lat, lm, old, table, len(outputs), utterance_seed(seed, key),
                                                       dropout, config)):
            out[key] = rescored
        jobs.report(1)
    for path, out in zip(outputs, samples):
        write_lattices(path, out)
    log.info("rescored %d lattices %d times: %s", len(lats), len(outputs), " ".join(map(str, outputs)))


def set_cut_texts(cuts: PathLike, texts: Sequence[PathLike], output: PathLike) -> int:
    """A cut manifest whose transcripts are ``texts`` (Kaldi texts, or decode directories
    whose 1-best hyp.J.txt are read): each cut gets one supervision over all of it carrying
    its text (the first old supervision's speaker and language are kept). Every cut needs
    exactly one text, and every text must name a cut. Returns the number of empty texts."""
    if not str(output).endswith(".jsonl.gz"):
        raise BadValue("output", output, "must end in .jsonl.gz")
    cut_list = list(load_cuts(cuts))
    files: List[Path] = []
    for p in map(Path, texts):
        files += DecodeDir.finished(p, "--text").hyp_files() if p.is_dir() else [p]
    ids = {c.id for c in cut_list}
    for f in files:
        for line, uttid in enumerate(read_text(f), 1):  # read_text refuses blank lines: the n-th is line n
            if uttid not in ids:
                raise FrugalError(f"{where(f, line)}: cut {uttid} is not in --cuts {cuts}")
    by_id = read_texts(files)
    missing = [c.id for c in cut_list if c.id not in by_id]
    if missing:
        raise FrugalError(f"--text: {len(missing)} of {len(cut_list)} cuts of --cuts {cuts} have no text, "
                          f"e.g. {missing[0]}")

    def with_text(cut, words: Sequence[str]):
        old = cut.supervisions[0] if cut.supervisions else None
        sup = SupervisionSegment(id=old.id if old is not None else cut.id, recording_id=cut.recording_id,
                                 start=0.0, duration=cut.duration, channel=cut.channel, text=" ".join(words),
                                 language=old.language if old is not None else None,
                                 speaker=old.speaker if old is not None else None)
        return fastcopy(cut, supervisions=[sup])

    write_manifest((with_text(c, by_id[c.id]) for c in cut_list), Path(output))
    empty = sum(not by_id[c.id] for c in cut_list)
    log.info("wrote %s: %d cuts with new texts (%d empty)", output, len(cut_list), empty)
    return empty
