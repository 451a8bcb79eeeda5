"""Decoding cuts into a decode directory: model -> frame scores -> beam search -> lattices, 1-best.

The library call behind ``frugal decode``, in the manner of Kaldi's ``steps/nnet3/decode.sh``:

- the cuts are split into ``nj`` contiguous jobs (`frugal.jobs.split`), each run in its own
  process with one torch thread (the decoder is many small tensor operations, which extra
  threads only slow down);
- first the model, the graph and the words file are checked against each other by content
  (`frugal.decode.acoustic`; with ``skip_checks`` a mismatch only warns);
- a job loads the model and the graph, computes the network output in batches of
  utterances sorted by length and searches it (`frugal.decode.decoder`);
- job J writes lat.J.pt (word-determinised lattices), optionally lat.J.txt, hyp.J.txt and
  log/decode.J.log into the `frugal.dirs.DecodeDir`; its done-marker (the job's
  fingerprint: cuts, options, and the model, graph and words files) is written last, so a
  killed job is redone and a finished one skipped on the next run;
- while it runs, a job keeps its finished batches in partial.J/ (`PartialResults`, every
  20 s, logging its progress), so the re-run of a killed job decodes only the rest.

Monte-Carlo dropout (`frugal.decode.dropout`), with ``dropout_samples`` N > 0: every
utterance is decoded once with dropout off, written as above, and N more times with the
model's dropout active, pass k into ``dropout/k/`` (a decode directory of its own);
dropout.json records N, the proportion and the seeds. The dropout-off pass is the normal
batched forward; the N + 1 score matrices of a batch are searched in one decoder call, and
the batch size counts those utterance-passes. A job is done only when the files of all
N + 1 passes are written.

As Kaldi's chain decoding does (``--acwt 1.0 --post-decode-acwt 10.0``), the acoustic costs
in the saved lattices are multiplied by ``post_decode_acwt``, so that the LM-weight sweep of
scoring is centred on 10: the lattice's best path with graph scale 1 and acoustic scale
``acoustic_scale / post_decode_acwt`` is the decoder's 1-best.
"""
from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch

from frugal import jobs
from frugal.data.cmvn import require_cmvn
from frugal.data.cuts import load_cuts
from frugal.data.dataset import FeatureDataset
from frugal.decode.acoustic import (AcousticModel, check_graph_matches_model, check_output_range,
                                   load_acoustic_model, load_graph)
from frugal.decode.decoder import DecodeResult, Decoder, DecoderConfig
from frugal.decode.graph import DecodingGraph
from frugal.decode.dropout import dropout_active, dropout_samples, pass_seeds, set_dropout
from frugal.dirs import DecodeDir
from frugal.errors import BadValue, FrugalError
from frugal.fileio import atomic_write_text
from frugal.lang.symbols import SymbolTable
from frugal.lang.text import write_text
from frugal.lattice.determinize import determinize_lattice
from frugal.lattice.io import read_lattices, write_lattices
from frugal.lattice.lattice import Lattice
from frugal.logs import log_to_file
from frugal.models import set_attention
from frugal.models.attention import KINDS as ATTENTION_KINDS

log = logging.getLogger("frugal.decode")

# Batches hold at most this many (utterance, graph state) pairs: the decoder keeps a few
# dense per-pair arrays (about 25 bytes a pair).
MAX_BATCH_STATES = 20_000_000
# Utterance-passes per decoder call without a batch size. On CPU, larger batches gained
# nothing in tools/bench/decode_bench.py and made lattices slower per utterance (a batch's
# raw lattice is pruned at once); a GPU needs large batches to keep busy.
MAX_AUTO_BATCH = {"cpu": 8, "cuda": 32}


@dataclass
class DecodeOptions:
    """Everything that decides a decode directory's contents besides the cuts."""

    model: str
    graph: str
    words: str
    beam: float = DecoderConfig.beam
    max_active: int = DecoderConfig.max_active
    lattice_beam: float = DecoderConfig.lattice_beam
    acoustic_scale: float = DecoderConfig.acoustic_scale
    post_decode_acwt: float = 10.0
    batch_size: int = 0          # utterance-passes per decoder call; 0: automatic (MAX_AUTO_BATCH, MAX_BATCH_STATES)
    device: str = "cpu"
    text_lattices: bool = False
    dropout_samples: int = 0     # N: passes with dropout active besides the dropout-off one
    dropout_proportion: float = 0.1
    dropout_seed: int = 0
    skip_checks: bool = False    # a graph without metadata, or disagreeing with model or words: warn only
    # Self-attention swapped into a transformer after loading (frugal.models.set_attention):
    # "" keeps the model's own; clusters / topk None keep the model config's.
    attention: str = ""
    clusters: Optional[int] = None
    topk: Optional[int] = None

    @property
    def num_passes(self) -> int:
        return 1 + self.dropout_samples

    def decoder_config(self) -> DecoderConfig:
        return DecoderConfig(beam=self.beam, max_active=self.max_active,
                             lattice_beam=self.lattice_beam, acoustic_scale=self.acoustic_scale)

    def validate(self) -> None:
        for name in ("beam", "lattice_beam", "acoustic_scale", "post_decode_acwt"):
            if not getattr(self, name) > 0:
                raise BadValue(name, getattr(self, name), "must be positive")
        if self.max_active < 1:
            raise BadValue("max_active", self.max_active, "must be at least 1")
        if self.batch_size < 0:
            raise BadValue("batch_size", self.batch_size, "must be 0 (automatic) or more")
        if self.dropout_samples < 0:
            raise BadValue("dropout_samples", self.dropout_samples, "must be 0 (no dropout) or more")
        if self.dropout_samples > 0 and not self.dropout_proportion > 0:
            raise BadValue("dropout_proportion", self.dropout_proportion,
                           f"must be positive with {self.dropout_samples} dropout samples (0 makes every "
                           f"sample the dropout-off decode)")
        if self.device not in ("cpu", "cuda"):
            raise BadValue("device", self.device, "must be cpu or cuda")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise BadValue("device", self.device, "CUDA is not available")
        if self.attention and self.attention not in ATTENTION_KINDS:
            raise BadValue("attention", self.attention, f"must be one of {', '.join(ATTENTION_KINDS)}")
        for name, least in (("clusters", 1), ("topk", 0)):
            value = getattr(self, name)
            if value is not None and not self.attention:
                raise BadValue(name, value, "needs an attention kind (--attention) to apply to")
            if value is not None and value < least:
                raise BadValue(name, value, f"must be at least {least}")
        for name in ("model", "graph", "words"):
            if not Path(getattr(self, name)).is_file():
                raise BadValue(name, getattr(self, name), "no such file")

    def record(self) -> Dict:
        """The options as decode.json and done-markers record them; without dropout samples
        the dropout options are left out (they change nothing), and so are the attention options
        without an attention kind (the records of decodes from before they existed stay valid)."""
        record = asdict(self)
        if self.dropout_samples == 0:
            for name in ("dropout_samples", "dropout_proportion", "dropout_seed"):
                del record[name]
        if not self.attention:
            for name in ("attention", "clusters", "topk"):
                del record[name]
        else:
            for name in ("clusters", "topk"):
                if record[name] is None:
                    del record[name]
        return record

    def fingerprint(self, cut_ids: List[str]) -> str:
        """What a job's done-marker holds: it is reused only for the same cuts, options and
        model, graph and words files."""
        opts = {k: v for k, v in self.record().items() if k not in ("device", "batch_size", "skip_checks")}
        return jobs.fingerprint(cut_ids, opts, {name: getattr(self, name) for name in ("model", "graph", "words")})


def load_checked(options: DecodeOptions, check: bool = True) -> Tuple[AcousticModel, DecodingGraph]:
    """Model and graph of ``options``, checked against each other and the words file
    (`check_graph_matches_model`; without ``check`` only what would crash the search) and,
    with dropout samples, the model's dropout. With ``attention`` the model's self-attention
    is swapped first (a model without one, TDNN-F, is a FrugalError)."""
    am = load_acoustic_model(options.model, options.device)
    if options.attention:
        set_attention(am.model, options.attention, clusters=options.clusters, topk=options.topk)
    graph = load_graph(options.graph, options.device)
    if check:
        check_graph_matches_model(graph, options.graph, am, options.words, options.skip_checks)
    else:
        check_output_range(graph, options.graph, am)
    if options.dropout_samples > 0:
        set_dropout(am.model, options.dropout_proportion, active=False, where=options.model)
    return am, graph


def auto_batch_size(graph: DecodingGraph) -> int:
    return max(1, min(MAX_AUTO_BATCH[graph.device.type], MAX_BATCH_STATES // max(1, graph.num_states)))


# ----------------------------------------------------------------------- one job
@dataclass
class UttOutput:
    """What a job keeps of one utterance."""

    words: List[int]
    lattice: Optional[Lattice]    # word-determinised, acoustic costs scaled by post_decode_acwt
    reached_final: bool


def word_lattice(result: DecodeResult, options: DecodeOptions, name: str = "lattice") -> Optional[Lattice]:
    """The decoder's raw lattice determinised on words (one path per word sequence, with its
    best alignment) and its acoustic costs scaled by ``post_decode_acwt``; None when no
    token survived."""
    raw = result.lattice
    if raw is None or raw.num_arcs == 0:
        return None
    det = determinize_lattice(raw, acoustic_scale=options.acoustic_scale, name=name)
    return det.scale(1.0, options.post_decode_acwt)


class PassTimes:
    """Seconds spent per kind of work of a job (dropout off / on), for its log."""

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, what: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[what] = self.seconds.get(what, 0.0) + time.perf_counter() - t0

    def summary(self) -> str:
        return ", ".join(f"{what} {s:.1f} s" for what, s in self.seconds.items())


def decode_cuts(cuts, options: DecodeOptions, am: AcousticModel, graph: DecodingGraph,
                times: Optional[PassTimes] = None, done: Optional[List[Dict[str, UttOutput]]] = None,
                on_batch: Optional[Callable[[List[Dict[str, UttOutput]]], None]] = None) -> List[Dict[str, UttOutput]]:
    """Decode a CutSet (features precomputed) in batches of similar lengths; returns per pass
    (the dropout-off one, then the dropout passes) cut id -> output, in the cuts' order.
    Batches whose cuts are all in ``done`` (per pass, from an earlier run) are taken from
    it; ``on_batch`` gets each decoded batch's outputs. The batches depend on the cuts and
    options only, so a resumed run decodes the others exactly as a whole run would.
    Progress (utterance-passes) goes to `frugal.jobs.report`."""
    decoder = Decoder(graph, options.decoder_config())
    num_passes = options.num_passes
    seeds = pass_seeds(options.dropout_seed, options.dropout_samples)
    # The decoder call holds the N + 1 passes of each utterance of a batch.
    batch_size = max(1, (options.batch_size or auto_batch_size(graph)) // num_passes)
    times = times if times is not None else PassTimes()
    cut_list = sorted(cuts, key=lambda c: (c.num_frames or 0, c.id))
    dataset = FeatureDataset()
    out: List[Dict[str, UttOutput]] = [{} for _ in range(num_passes)]
    for start in range(0, len(cut_list), batch_size):
        ids = [c.id for c in cut_list[start:start + batch_size]]
        if done and all(i in done[0] for i in ids):
            for k in range(num_passes):
                out[k].update((i, done[k][i]) for i in ids)
            jobs.report(len(ids) * num_passes)
            continue
        batch = dataset[cut_list[start:start + batch_size]]
        features = batch["features"].to(options.device)
        feature_lens = batch["feature_lens"].to(options.device)
        with times("forward (dropout off)"):
            scores, lengths = am.log_likelihoods(features, feature_lens)
        if num_passes > 1:
            with times("forward (dropout on)"), dropout_active(am.model, options.dropout_proportion, features.device):
                per_utt = [dropout_samples(lambda x, n: am.log_likelihoods(x, n)[0], features[i],
                                           int(feature_lens[i]), cut_id, seeds)
                           for i, cut_id in enumerate(batch["cut_ids"])]
            # Pass-major: rows k * B .. (k + 1) * B - 1 are pass k.
            padded = scores.new_zeros((num_passes,) + tuple(scores.shape))
            padded[0] = scores
            for i, utt_passes in enumerate(per_utt):
                for k, s in enumerate(utt_passes, 1):
                    padded[k, i, : s.shape[0]] = s
            scores = padded.flatten(0, 1)
            lengths = lengths.repeat(num_passes)
        with times("search"):
            results = decoder.decode(scores, lengths, lattice=True)
        B = len(batch["cut_ids"])
        for k in range(num_passes):
            with times("word lattices (dropout off)" if k == 0 else "word lattices (dropout on)"):
                for cut_id, r in zip(batch["cut_ids"], results[k * B:(k + 1) * B]):
                    name = cut_id if k == 0 else f"{cut_id} (dropout pass {k})"
                    out[k][cut_id] = UttOutput(r.words, word_lattice(r, options, name), r.reached_final)
        if on_batch is not None:
            on_batch([{i: out[k][i] for i in batch["cut_ids"]} for k in range(num_passes)])
        jobs.report(len(results))
    order = {c.id: k for k, c in enumerate(cuts)}
    return [dict(sorted(o.items(), key=lambda kv: order[kv[0]])) for o in out]


def write_pass(decode_dir: DecodeDir, job: int, outputs: Dict[str, UttOutput], words: SymbolTable,
               text_lattices: bool, what: str = "") -> None:
    """One pass's lat.J.pt (and lat.J.txt) and hyp.J.txt (each written atomically)."""
    no_final = [u for u, o in outputs.items() if not o.reached_final]
    no_lattice = [u for u, o in outputs.items() if o.lattice is None]
    if no_final:
        log.warning("%s%d utterance(s) reached no final state (partial 1-best kept), e.g. %s",
                    what, len(no_final), no_final[0])
    if no_lattice:
        log.warning("%s%d utterance(s) have no surviving path (no lattice), e.g. %s",
                    what, len(no_lattice), no_lattice[0])
    lattices = {u: o.lattice for u, o in outputs.items() if o.lattice is not None}
    files = decode_dir.job(job)
    write_lattices(files.lattices, lattices)
    if text_lattices:
        write_lattices(files.text_lattices, lattices)
    write_text(files.hyp, {u: [words.symbol(w) for w in o.words] for u, o in outputs.items()}, sort=False)


class PartialResults:
    """A running job's finished batches on disk, so that a killed job's re-run decodes only
    the rest: every ``FLUSH_SECONDS`` the batches decoded since the last flush go into chunk
    K of the job's ``partial.J/`` directory (``lat.K.P.pt`` per pass P, then
    ``chunk.K.json`` with the job's fingerprint, the words and whether the final state was
    reached, written last). A re-run takes the chunks of the same fingerprint; the directory
    goes when the job is done. Each flush logs the job's progress."""

    FLUSH_SECONDS = 20.0

    def __init__(self, path: Path, fingerprint: str, num_passes: int, num_cuts: int, job: int):
        self.path, self.fingerprint, self.num_passes = Path(path), fingerprint, num_passes
        self.num_cuts, self.job = num_cuts, job
        self.pending: List[Dict[str, UttOutput]] = [{} for _ in range(num_passes)]
        self.num_done, self.next_chunk = 0, 0
        self.t0 = self.last_flush = time.perf_counter()

    def load(self) -> List[Dict[str, UttOutput]]:
        """The outputs of the chunks an earlier run of this job left (per pass)."""
        done: List[Dict[str, UttOutput]] = [{} for _ in range(self.num_passes)]
        for marker in sorted(self.path.glob("chunk.*.json"), key=lambda p: int(p.name.split(".")[1])):
            k = int(marker.name.split(".")[1])
            self.next_chunk = max(self.next_chunk, k + 1)
            try:
                record = json.loads(marker.read_text())
                if record.get("fingerprint") != self.fingerprint or len(record["passes"]) != self.num_passes:
                    continue
                for p, utts in enumerate(record["passes"]):
                    lattices = read_lattices(self.path / f"lat.{k}.{p}.pt")
                    for cut_id, r in utts.items():
                        done[p][cut_id] = UttOutput(r["words"], lattices.get(cut_id), r["final"])
            except (OSError, ValueError, KeyError, FrugalError) as e:
                log.warning("job %d: partial results %s unreadable (%s): those cuts are decoded again",
                            self.job, marker, e)
        if done[0]:
            log.info("job %d: resuming: %d of %d cuts were decoded by an earlier run (%s)", self.job,
                     len(done[0]), self.num_cuts, self.path)
        self.num_done = len(done[0])
        return done

    def add(self, batch: List[Dict[str, UttOutput]]) -> None:
        for p, utts in enumerate(batch):
            self.pending[p].update(utts)
        self.num_done += len(batch[0])
        if time.perf_counter() - self.last_flush >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if not self.pending[0]:
            return
        k = self.next_chunk
        self.path.mkdir(parents=True, exist_ok=True)
        for p, utts in enumerate(self.pending):
            write_lattices(self.path / f"lat.{k}.{p}.pt",
                           {u: o.lattice for u, o in utts.items() if o.lattice is not None})
        record = {"fingerprint": self.fingerprint,
                  "passes": [{u: {"words": o.words, "final": o.reached_final} for u, o in utts.items()}
                             for utts in self.pending]}
        atomic_write_text(self.path / f"chunk.{k}.json", json.dumps(record))
        self.next_chunk += 1
        self.pending = [{} for _ in range(self.num_passes)]
        self.last_flush = time.perf_counter()
        log.info("job %d: %d of %d cuts decoded (%.0f s); partial results in %s", self.job, self.num_done,
                 self.num_cuts, self.last_flush - self.t0, self.path)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


@dataclass
class Job:
    """One job of a decode directory: what a worker process gets."""

    number: int
    cuts_path: str
    cut_ids: List[str]
    options: DecodeOptions
    output_dir: str
    fingerprint: str


def run_job(job: Job) -> None:
    """Decode one job's cuts and write its files (see the module docstring)."""
    out = DecodeDir(job.output_dir)
    log_file = out.job(job.number).log
    options = job.options
    with log_to_file(log_file, mode="w"):
        try:
            t0 = time.perf_counter()
            log.info("job %d: %d cuts, %s", job.number, len(job.cut_ids), json.dumps(asdict(options)))
            # decode() checked the files' fit before starting the jobs (its warnings once, not per job).
            am, graph = load_checked(options, check=False)
            cuts = load_cuts(job.cuts_path).subset(cut_ids=job.cut_ids)
            words = SymbolTable.read(options.words)
            times = PassTimes()
            partial = PartialResults(out.job(job.number).partial, job.fingerprint, options.num_passes,
                                     len(job.cut_ids), job.number)
            passes = decode_cuts(cuts, options, am, graph, times, partial.load(), partial.add)
            missing = [c for c in job.cut_ids if c not in passes[0]]
            if missing:
                raise FrugalError(f"{job.cuts_path}: cut {missing[0]} not found")
            for k, outputs in enumerate(passes):
                write_pass(out.pass_dir(k), job.number, outputs, words, options.text_lattices,
                           "" if k == 0 else f"dropout pass {k}: ")
            seconds = time.perf_counter() - t0
            audio = sum(c.duration for c in cuts)
            log.info("job %d done: %d utterances, %.1f s of audio in %.1f s (real-time factor %.3f)",
                     job.number, len(passes[0]), audio, seconds, seconds / max(audio, 1e-9))
            if options.dropout_samples:
                log.info("job %d: %d utterance-passes (1 dropout-off + %d dropout); %s", job.number,
                         len(passes[0]) * len(passes), options.dropout_samples, times.summary())
            # Last: the job counts as done only when the files of every pass are in place.
            out.job_done(job.number, job.fingerprint)
            partial.remove()
        except FrugalError as e:
            log.error("%s", e)
            raise FrugalError(f"decode job {job.number} failed: {e}; see {log_file}") from None
        except Exception as e:  # a crash: its traceback goes to the job's log
            log.exception("job %d crashed", job.number)
            raise FrugalError(f"decode job {job.number} failed: {type(e).__name__}: {e}; "
                              f"see {log_file}") from None


# -------------------------------------------------------------------- whole directory
def decode(cuts_path: str, output_dir: str, options: DecodeOptions, nj: int = 1,
           show_progress: bool = True) -> List[int]:
    """Decode ``cuts_path`` into the decode directory ``output_dir`` with ``nj`` jobs; returns
    the jobs run (those already done with the same cuts and options are skipped)."""
    options.validate()
    cuts = load_cuts(cuts_path, features=True)
    splits = jobs.split([c.id for c in cuts], nj, "cuts to decode")
    am, _ = load_checked(DecodeOptions(**{**asdict(options), "device": "cpu"}))  # fail early, in one line
    require_cmvn(am.cmvn, cuts, f"model {options.model}", cuts_path)
    out = DecodeDir(output_dir)
    seeds = pass_seeds(options.dropout_seed, options.dropout_samples)
    dropout = None
    if options.dropout_samples:
        dropout = {"dropout_samples": options.dropout_samples, "dropout_proportion": options.dropout_proportion,
                   "dropout_seed": options.dropout_seed, "pass_seeds": seeds,
                   "pass_dirs": [f"{DecodeDir.DROPOUT}/{k}" for k in range(1, options.num_passes)]}
        log.info("Monte-Carlo dropout: %d samples at proportion %g, seed %d (pass seeds %s), in %s/%s/1..%d",
                 options.dropout_samples, options.dropout_proportion, options.dropout_seed,
                 " ".join(map(str, seeds)), out.path, DecodeDir.DROPOUT, options.dropout_samples)
    out.prepare(nj, {"cuts": str(cuts_path), "nj": nj, **options.record()}, dropout)
    todo = [Job(j, str(cuts_path), ids, options, str(out.path), options.fingerprint(ids))
            for j, ids in enumerate(splits, 1)]
    todo = [job for job in todo if not out.job_is_done(job.number, job.fingerprint, options.num_passes,
                                                           options.text_lattices)]
    if len(todo) < nj:
        log.info("%d of %d jobs are done already (same cuts and options): skipped", nj - len(todo), nj)
    t0 = time.perf_counter()
    total = sum(len(job.cut_ids) for job in todo) * options.num_passes
    # One torch thread a job, in this process too: the search is many small tensor operations.
    jobs.run(run_job, todo, nj, desc="decode", unit="utt" if options.num_passes == 1 else "utt-pass",
             total=total, threads_here=1, show_progress=show_progress)
    if todo:
        what = "utterances" if options.num_passes == 1 else f"utterance-passes ({options.num_passes} a cut)"
        log.info("decoded %d %s in %d job(s) in %.1f s", total, what, len(todo), time.perf_counter() - t0)
    out.finish(options.num_passes)
    return [job.number for job in todo]
