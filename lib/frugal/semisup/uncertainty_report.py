"""Word confidences, reference-free WER estimates and error localisation from Monte-Carlo dropout decodes.

The thesis's tables 3.2 and 3.3 (Vyas, ch. 3; Vyas et al., ICASSP 2019) for decode
directories of `frugal decode --dropout-samples N`. Each evaluation set is a decode
directory and the cuts whose supervision texts are its references; the best hypothesis of
an utterance is the dropout-off 1-best (hyp.J.txt), and its alternatives come from two
methods:

  dropout  the 1-bests of the N dropout passes (dropout/k/hyp.J.txt);
  n-best   the N best word sequences of the dropout-off lattice (lat.J.pt; its first entry
           is the 1-best itself), ranked with graph scale 1 and the decode's own acoustic
           scale (acoustic_scale / post_decode_acwt of decode.json). The thesis's baseline.

A word's confidence is the fraction of alternatives that align the identical word to it;
words below a threshold are flagged as errors (table 3.3: IoU, precision and recall of the
flagged words against the true substitutions and insertions). The WER estimate is the mean
of the top-K largest edit distances among all pairs of the N + 1 hypotheses over their
mean length (table 3.2). Both tables are split by reference length (`frugal.semisup.uncertainty`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from frugal.data.cuts import read_transcripts
from frugal.dirs import DecodeDir
from frugal.errors import BadValue, FrugalError
from frugal.fileio import PathLike, atomic_write_text
from frugal.lang.symbols import SymbolTable
from frugal.lang.text import read_texts
from frugal.lattice.io import read_dir_lattices
from frugal.lattice.paths import nbest
from frugal.semisup.uncertainty import DecodedSet, uncertainty_report

log = logging.getLogger(__name__)

METHODS = ("dropout", "n-best")


@dataclass
class SetSpec:
    name: str
    decode_dir: Path
    cuts: str


@dataclass
class DropoutDecode:
    """What a report says of a set besides its tables."""

    spec: SetSpec
    num_utterances: int
    dropout_samples: int
    dropout_proportion: float
    dropout_seed: int
    pass_seeds: List[int]
    nbest_size: int
    nbest_acoustic_scale: float


def check_same_utterances(refs: Dict, hyps: Dict, where: Path, cuts: str) -> None:
    """One-line FrugalError for an utterance of the cuts without a hypothesis, or the reverse."""
    for uttid in refs:
        if uttid not in hyps:
            raise FrugalError(f"{where}: no hypothesis for utterance '{uttid}' of {cuts} "
                              f"({len([u for u in refs if u not in hyps])} missing)")
    for uttid in hyps:
        if uttid not in refs:
            raise FrugalError(f"{where}: utterance '{uttid}' is not in {cuts}: decoded from other cuts?")


def nbest_hypotheses(decode_dir: Path, uttids: Sequence[str], words: SymbolTable, n: int,
                     acoustic_scale: float) -> Dict[str, List[List[str]]]:
    """The ``n`` best word sequences of each utterance's dropout-off lattice, best first
    (graph scale 1, ``acoustic_scale`` on the lattices' acoustic costs); an utterance
    without a lattice (no path survived the search) has none."""
    lattices = read_dir_lattices(decode_dir)
    out: Dict[str, List[List[str]]] = {}
    for uttid in uttids:
        lat = lattices.get(uttid)
        out[uttid] = [] if lat is None else [[words.symbol(w) for w in p.words]
                                             for p in nbest(lat, n, 1.0, acoustic_scale)]
    missing = [u for u in uttids if u not in lattices]
    if missing:
        log.warning("%s: %d utterance(s) have no lattice (so no n-best list), e.g. %s",
                    decode_dir, len(missing), missing[0])
    return out


def load_decoded_set(spec: SetSpec, words: SymbolTable, nbest_size: Optional[int] = None
                     ) -> Tuple[DecodedSet, DropoutDecode]:
    """The references, dropout-off 1-bests, dropout 1-bests and dropout-off n-best lists of
    one decode directory (n-best size: ``nbest_size``, default the number of dropout samples)."""
    refs = read_transcripts(spec.cuts)
    decode = DecodeDir.finished(spec.decode_dir)
    best = read_texts(decode.hyp_files())
    check_same_utterances(refs, best, spec.decode_dir, spec.cuts)
    info = decode.dropout_info()
    num_samples = int(info["dropout_samples"])
    samples: Dict[str, List[List[str]]] = {u: [] for u in refs}
    for k, pass_dir in enumerate(decode.passes(), 1):
        hyps = read_texts(pass_dir.hyp_files())
        check_same_utterances(refs, hyps, pass_dir.path, spec.cuts)
        for u in refs:
            samples[u].append(hyps[u])
    if "post_decode_acwt" not in decode.info:
        raise FrugalError(f"{spec.decode_dir}/decode.json: no post_decode_acwt (not written by frugal decode)")
    # Ranks the lattice's paths as the search did.
    acoustic_scale = decode.lattice_acoustic_scale
    n = nbest_size or num_samples
    nbests = nbest_hypotheses(spec.decode_dir, list(refs), words, n, acoustic_scale)
    ds = DecodedSet(spec.name, refs, best, {"dropout": samples, "n-best": nbests})
    ds.check()
    return ds, DropoutDecode(spec, len(refs), num_samples, float(info["dropout_proportion"]),
                             int(info["dropout_seed"]), [int(s) for s in info["pass_seeds"]], n, acoustic_scale)


def report_header(decodes: Sequence[DropoutDecode], top_k: int, thresholds: Sequence[float]) -> str:
    lines = [
        "# Uncertainty of speech recognition with Monte-Carlo dropout",
        "",
        "Best hypothesis: the dropout-off 1-best. Alternatives: *dropout* = the 1-bests of the N decodes "
        "with dropout active; *n-best* = the N-best list of the dropout-off lattice (its 1-best included). "
        f"WER estimate: mean of the top-K = {top_k} pairwise edit distances among the best hypothesis and "
        "its alternatives over their mean length. Error localisation: words whose confidence (fraction of "
        "alternatives agreeing) is below the threshold "
        f"({', '.join(f'{t:g}' for t in thresholds)}) are flagged.",
        "",
        "| Set | Decode dir | Utts | Dropout samples N | Dropout proportion | Dropout seed | Pass seeds "
        "| N-best size | N-best acoustic scale |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d in decodes:
        lines.append(f"| {d.spec.name} | {d.spec.decode_dir} | {d.num_utterances} | {d.dropout_samples} "
                     f"| {d.dropout_proportion:g} | {d.dropout_seed} | {' '.join(map(str, d.pass_seeds))} "
                     f"| {d.nbest_size} | {d.nbest_acoustic_scale:g} |")
    return "\n".join(lines) + "\n\n"


def write_uncertainty_report(sets: Sequence[SetSpec], words: PathLike, top_k: int,
                             thresholds: Sequence[float] = (0.4, 0.6, 0.8), nbest: Optional[int] = None,
                             output: Optional[PathLike] = None) -> str:
    """The report (markdown) of the module docstring for evaluation sets, each a dropout
    decode directory and the cuts whose transcripts are its references."""
    if top_k < 1:
        raise BadValue("top_k", top_k, "must be at least 1")
    if nbest is not None and nbest < 1:
        raise BadValue("nbest", nbest, "must be at least 1")
    for t in thresholds:
        if not 0.0 <= t <= 1.0:
            raise BadValue("thresholds", t, "confidences lie in [0, 1]")
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise BadValue("sets", " ".join(names), "set names must differ")
    table = SymbolTable.read(words)
    loaded = [load_decoded_set(spec, table, nbest) for spec in sets]
    report = (report_header([d for _, d in loaded], top_k, thresholds)
              + uncertainty_report([ds for ds, _ in loaded], top_k, thresholds))
    if output is not None:
        atomic_write_text(output, report)
    return report
