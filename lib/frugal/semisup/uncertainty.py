"""Uncertainty of a recognised word sequence from alternative hypotheses.

Vyas et al., "Analyzing uncertainties in speech recognition using dropout" (ICASSP 2019),
and ch. 3 of Vyas, "Efficient Transformer-Based Speech Recognition" (EPFL 2022): decode an
utterance once with dropout off (the *best* hypothesis, the system's output) and N times with
dropout on; how much the N samples disagree with each other and with the best hypothesis
tells where the best hypothesis is wrong, and how wrong, without a reference. Every function
here takes any list of alternatives, so the same measures computed from an N-best list of the
dropout-off lattice serve as the baseline.

- Word confidence (:func:`word_confidences`): for each word of the best hypothesis, the
  fraction of alternatives that, aligned to the best hypothesis with minimum edit distance,
  put the identical word at that position.
- Error localisation (:func:`localise_errors`): words whose confidence is below a threshold
  are flagged; the flagged positions are compared with the true error positions, the words
  of the best hypothesis that are substitutions or insertions w.r.t. the reference
  (:func:`error_positions`). A deletion has no word in the hypothesis, so it cannot be
  flagged: deletions are counted beside, not in, the position sets.
- WER estimation (:func:`estimate_wer`): the mean of the K largest edit distances among all
  pairs of the N+1 hypotheses (the best one and the N alternatives), divided by their mean
  length. All pairs rather than only (best, sample) pairs, because the best hypothesis is
  itself one draw of the model's output distribution and every pair measures its spread;
  the K largest because a model that is wrong is usually wrong in only some of its samples.
  Over a set, distances and lengths are summed before dividing (:class:`WerEstimate`).
- :func:`uncertainty_report` makes the thesis's tables 3.2 (true vs estimated WER) and 3.3
  (error localisation IoU, precision, recall by threshold), split by reference length.

Positions are 0-based indices into the best hypothesis.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence, Set, Tuple

import kaldialign

from frugal.decode.scoring import EPS, ErrorCounts, align_words
from frugal.errors import FrugalError

Words = Sequence[str]
Bucket = Tuple[int, Optional[int]]  # inclusive word-count range; None: no upper bound
DEFAULT_BUCKETS: Tuple[Bucket, ...] = ((1, 5), (6, 10), (11, 20), (21, None))


def word_confidences(best: Words, alternatives: Sequence[Words]) -> List[float]:
    """Fraction of ``alternatives`` that align the identical word to each word of ``best``.

    With no alternatives every word has confidence 1 (nothing disagrees).
    """
    if not alternatives:
        return [1.0] * len(best)
    agree = [0] * len(best)
    for alt in alternatives:
        pos = 0
        for b, a in align_words(best, alt):
            if b == EPS:  # a word of the alternative that the best hypothesis lacks
                continue
            agree[pos] += a == b
            pos += 1
    return [n / len(alternatives) for n in agree]


def error_positions(hyp: Words, ref: Words) -> Tuple[Set[int], int]:
    """Positions of ``hyp`` that are substitutions or insertions w.r.t. ``ref``, and the
    number of deletions (reference words the hypothesis lacks)."""
    positions, deletions, pos = set(), 0, 0
    for r, h in align_words(ref, hyp):
        if h == EPS:
            deletions += 1
            continue
        if r != h:
            positions.add(pos)
        pos += 1
    return positions, deletions


def flagged_positions(confidences: Sequence[float], threshold: float) -> Set[int]:
    """Positions whose confidence is strictly below ``threshold``."""
    return {i for i, c in enumerate(confidences) if c < threshold}


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


@dataclass
class Localisation:
    """Flagged vs true error positions of one utterance, or summed over many (``+``).

    Rates over a set are pooled: summed intersections over summed unions (IoU), over
    summed flagged words (precision), over summed error words (recall). A rate whose
    denominator is 0 is nan (e.g. precision when nothing is flagged).
    """

    hits: int = 0  # flagged and wrong
    flagged: int = 0
    errors: int = 0  # substituted or inserted words of the hypothesis
    deletions: int = 0

    def __add__(self, other: "Localisation") -> "Localisation":
        return Localisation(self.hits + other.hits, self.flagged + other.flagged,
                            self.errors + other.errors, self.deletions + other.deletions)

    @property
    def union(self) -> int:
        return self.flagged + self.errors - self.hits

    @property
    def iou(self) -> float:
        return _ratio(self.hits, self.union)

    @property
    def precision(self) -> float:
        return _ratio(self.hits, self.flagged)

    @property
    def recall(self) -> float:
        return _ratio(self.hits, self.errors)


def localise_errors(best: Words, alternatives: Sequence[Words], ref: Words,
                    threshold: float) -> Localisation:
    """Compare the words of ``best`` flagged at ``threshold`` with its true errors."""
    flagged = flagged_positions(word_confidences(best, alternatives), threshold)
    wrong, deletions = error_positions(best, ref)
    return Localisation(len(flagged & wrong), len(flagged), len(wrong), deletions)


@dataclass
class WerEstimate:
    """Reference-free WER estimate of one utterance, or summed over many (``+``)."""

    distance: float = 0.0  # mean of the top-K pairwise edit distances
    length: float = 0.0  # mean length of the hypotheses

    def __add__(self, other: "WerEstimate") -> "WerEstimate":
        return WerEstimate(self.distance + other.distance, self.length + other.length)

    @property
    def wer(self) -> float:
        """Estimated WER in percent (0 when every hypothesis is empty: they cannot differ)."""
        if self.length == 0:
            return 0.0
        return 100.0 * self.distance / self.length


def pairwise_distances(hyps: Sequence[Words]) -> List[int]:
    """Edit distances of all unordered pairs of ``hyps``."""
    return [kaldialign.edit_distance(list(a), list(b))["total"]
            for a, b in itertools.combinations(hyps, 2)]


def estimate_wer(best: Words, alternatives: Sequence[Words], top_k: int) -> WerEstimate:
    """Mean of the ``top_k`` largest pairwise edit distances among ``[best, *alternatives]``
    (all pairs when there are fewer), with the mean length of those hypotheses."""
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, not {top_k}")
    hyps = [best, *alternatives]
    top = sorted(pairwise_distances(hyps), reverse=True)[:top_k]
    distance = sum(top) / len(top) if top else 0.0
    return WerEstimate(distance, sum(len(h) for h in hyps) / len(hyps))


@dataclass
class DecodedSet:
    """One evaluation set: references, the dropout-off hypotheses, and for each method
    (e.g. ``dropout``, ``n-best``) the alternative hypotheses of each utterance."""

    name: str
    refs: Mapping[str, Words]
    best: Mapping[str, Words]
    alternatives: Mapping[str, Mapping[str, Sequence[Words]]]

    def check(self) -> None:
        """FrugalError naming the set, method and utterance of the first missing hypothesis."""
        for uttid in self.refs:
            if uttid not in self.best:
                raise FrugalError(f"set {self.name}: utterance '{uttid}' has no best hypothesis")
            for method, alts in self.alternatives.items():
                if uttid not in alts:
                    raise FrugalError(f"set {self.name}: utterance '{uttid}' has no "
                                      f"{method} hypotheses")


def _bucket_name(bucket: Bucket) -> str:
    lo, hi = bucket
    return f"{lo}+" if hi is None else f"{lo}-{hi}"


def _groups(ds: DecodedSet, buckets: Sequence[Bucket]) -> List[Tuple[str, List[str]]]:
    """("all", every uttid) and (bucket name, uttids whose reference length is in it)."""
    uttids = sorted(ds.refs)
    groups = [("all", uttids)]
    for lo, hi in buckets:
        groups.append((_bucket_name((lo, hi)),
                       [u for u in uttids if lo <= len(ds.refs[u]) and (hi is None or len(ds.refs[u]) <= hi)]))
    return groups


def _fmt(x: float, digits: int = 2) -> str:
    return "-" if math.isnan(x) else f"{x:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def wer_estimation_table(sets: Sequence[DecodedSet], top_k: int,
                         buckets: Sequence[Bucket] = DEFAULT_BUCKETS) -> str:
    """Thesis table 3.2: true %WER of the best hypotheses vs the estimate of each method,
    per set and per reference-length bucket (a markdown table)."""
    methods = _methods(sets)
    header = ["Set", "Length", "Utts", "True %WER"] + [f"Est. %WER ({m})" for m in methods]
    rows = []
    for ds in sets:
        ds.check()
        true = {u: ErrorCounts.from_alignment(align_words(ds.refs[u], ds.best[u])) for u in ds.refs}
        est = {m: {u: estimate_wer(ds.best[u], ds.alternatives[m][u], top_k) for u in ds.refs}
               for m in methods}
        for group, uttids in _groups(ds, buckets):
            if not uttids:
                continue
            counts = sum((true[u] for u in uttids), ErrorCounts())
            row = [ds.name, group, str(len(uttids)), _fmt(counts.wer)]
            row += [_fmt(sum((est[m][u] for u in uttids), WerEstimate()).wer) for m in methods]
            rows.append(row)
    return _table(header, rows)


def localisation_table(sets: Sequence[DecodedSet], thresholds: Sequence[float],
                       buckets: Sequence[Bucket] = DEFAULT_BUCKETS) -> str:
    """Thesis table 3.3: IoU, precision and recall (percent) of the flagged words of each
    method at each confidence threshold, per set and reference-length bucket; beside them
    the number of wrong (substituted or inserted) words, and of deletions, which no
    position of the hypothesis can flag."""
    methods = _methods(sets)
    header = ["Set", "Length", "Threshold", "Wrong words (del.)"]
    for m in methods:
        header += [f"IoU ({m})", f"Prec. ({m})", f"Recall ({m})"]
    rows = []
    for ds in sets:
        ds.check()
        truth = {u: error_positions(ds.best[u], ds.refs[u]) for u in ds.refs}
        conf = {m: {u: word_confidences(ds.best[u], ds.alternatives[m][u]) for u in ds.refs}
                for m in methods}
        for group, uttids in _groups(ds, buckets):
            if not uttids:
                continue
            wrong_words = sum(len(truth[u][0]) for u in uttids)
            deleted = sum(truth[u][1] for u in uttids)
            for threshold in thresholds:
                row = [ds.name, group, f"{threshold:g}", f"{wrong_words} ({deleted})"]
                for m in methods:
                    loc = Localisation()
                    for u in uttids:
                        flagged = flagged_positions(conf[m][u], threshold)
                        wrong, deletions = truth[u]
                        loc = loc + Localisation(len(flagged & wrong), len(flagged), len(wrong), deletions)
                    row += [_fmt(100 * loc.iou), _fmt(100 * loc.precision), _fmt(100 * loc.recall)]
                rows.append(row)
    return _table(header, rows)


def _methods(sets: Sequence[DecodedSet]) -> List[str]:
    """Methods in the order of the first set; every set must have the same ones."""
    methods = list(sets[0].alternatives) if sets else []
    for ds in sets:
        if sorted(ds.alternatives) != sorted(methods):
            raise FrugalError(f"set {ds.name} has hypotheses of {sorted(ds.alternatives)}, "
                              f"set {sets[0].name} of {sorted(methods)}")
    return methods


def uncertainty_report(sets: Sequence[DecodedSet], top_k: int,
                       thresholds: Sequence[float] = (0.4, 0.6, 0.8),
                       buckets: Sequence[Bucket] = DEFAULT_BUCKETS) -> str:
    """Both tables as a markdown section (length buckets count reference words)."""
    return (f"## WER estimation without references (top-{top_k} pairwise edit distances)\n\n"
            + wer_estimation_table(sets, top_k, buckets)
            + "\n## Error localisation (words with confidence < threshold flagged)\n\n"
            + localisation_table(sets, thresholds, buckets))
