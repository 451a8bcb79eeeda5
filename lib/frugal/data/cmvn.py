"""Cepstral mean (and variance) normalisation per speaker, as Kaldi's compute-cmvn-stats / apply-cmvn.

The statistics of a speaker's frames (all the cuts of that speaker in a manifest) are kept
in each cut (``cut.custom["cmvn"]``: the mean and, with variance normalisation, the
standard deviation) and applied where features are loaded (`frugal.data.dataset`), so the
feature archives stay as computed and every tool that reads features sees the same input.
A speed-perturbed copy (``utt_sp0.9``) is another speaker for this purpose (Kaldi's
``sp0.9-`` speaker prefix): its frames differ from the original's. Per-utterance
statistics are the same with each cut its own group.

A model records the kind of normalisation it was trained on (``none``, ``speaker``,
``utterance``, with ``+vars``), and decoding refuses cuts normalised otherwise.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from typing import Dict, Optional

import numpy as np
from lhotse import CutSet
from tqdm import tqdm

from frugal.data.cuts import load_cuts, source_id
from frugal.data.jsonl import write_manifest
from frugal.errors import BadValue, FrugalError
from frugal.fileio import PathLike

log = logging.getLogger(__name__)

KEY = "cmvn"
GROUPINGS = ("speaker", "utterance")
VAR_FLOOR = 1e-10


def _group(cut, per: str) -> str:
    if per == "utterance":
        return cut.id
    speakers = {s.speaker for s in cut.supervisions}
    if len(speakers) != 1 or None in speakers:
        raise FrugalError(f"cut {cut.id}: per-speaker CMVN needs one speaker a cut (its supervisions have "
                          f"{sorted(map(str, speakers))})")
    return speakers.pop() + cut.id[len(source_id(cut.id)):]  # the perturbation suffix: its own speaker


def compute_cmvn(cuts_in: PathLike, cuts_out: PathLike, per: str = "speaker", norm_vars: bool = False) -> Dict:
    """Write ``cuts_out``: the cuts of ``cuts_in`` with their group's CMVN statistics; returns
    {"groups": n, "kind": ...}."""
    if per not in GROUPINGS:
        raise BadValue("per", per, f"must be one of {', '.join(GROUPINGS)}")
    cuts = load_cuts(cuts_in, "--cuts-in", features=True)
    sums: Dict[str, np.ndarray] = defaultdict(lambda: 0.0)
    squares: Dict[str, np.ndarray] = defaultdict(lambda: 0.0)
    counts: Dict[str, int] = defaultdict(int)
    for cut in tqdm(cuts, desc="cmvn stats", unit="cut", disable=None):
        feats = cut.load_features().astype(np.float64)
        g = _group(cut, per)
        sums[g] = sums[g] + feats.sum(0)
        squares[g] = squares[g] + (feats ** 2).sum(0)
        counts[g] += feats.shape[0]
    stats = {}
    for g, n in counts.items():
        mean = sums[g] / max(n, 1)
        entry = {"per": per, "mean": [float(x) for x in mean]}
        if norm_vars:
            var = np.maximum(squares[g] / max(n, 1) - mean ** 2, VAR_FLOOR)
            entry["std"] = [float(x) for x in np.sqrt(var)]
        stats[g] = entry
    out = CutSet.from_cuts(cut.with_custom(KEY, stats[_group(cut, per)]) for cut in cuts)
    write_manifest(out, cuts_out)
    kind = per + ("+vars" if norm_vars else "")
    log.info("%s: %s CMVN of %d cuts in %d group(s)", cuts_out, kind, len(out), len(stats))
    return {"groups": len(stats), "kind": kind}


def cmvn_of(cut) -> Optional[Dict]:
    custom = cut.custom or {}
    return custom.get(KEY)


def kind_of(cut) -> str:
    entry = cmvn_of(cut)
    if entry is None:
        return "none"
    return entry["per"] + ("+vars" if "std" in entry else "")


def cmvn_kind(cuts, where: str) -> str:
    """The one kind of normalisation of a cut set; mixed kinds are an error."""
    kinds = {}
    for cut in cuts:
        kinds.setdefault(kind_of(cut), cut.id)
    if len(kinds) > 1:
        raise FrugalError(f"{where}: cuts with different CMVN ({', '.join(f'{k}: e.g. {c}' for k, c in kinds.items())})")
    return next(iter(kinds), "none")


def require_cmvn(model_kind: str, cuts, model: str, where: str) -> None:
    """Cuts must be normalised as the model's training cuts were (``model`` names them)."""
    kind = cmvn_kind(cuts, where)
    if kind != model_kind:
        raise FrugalError(f"{where}: cuts with CMVN '{kind}', but {model} had CMVN '{model_kind}' "
                          f"(frugal compute-cmvn)")


def normalize(cut, feats: np.ndarray) -> np.ndarray:
    """The cut's features with its CMVN statistics applied (unchanged without them)."""
    entry = cmvn_of(cut)
    if entry is None:
        return feats
    mean = np.asarray(entry["mean"], dtype=np.float32)
    if mean.shape[0] != feats.shape[1]:
        raise FrugalError(f"cut {cut.id}: CMVN statistics of dimension {mean.shape[0]} for features of "
                          f"dimension {feats.shape[1]}")
    out = feats - mean
    if "std" in entry:
        out = out / np.asarray(entry["std"], dtype=np.float32)
    return out
