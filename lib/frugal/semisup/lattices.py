"""Lattice combination, neural-LM rescoring under dropout, and n-best error rates of supervisions.

The pieces of the thesis's supervision lattices (ch. 3; Vyas/Tong et al. 2019), which
`frugal.semisup.supervision` puts together into its four kinds (regular, AM, LM, AM+LM).

Combination (Kaldi's lattice-combine, then lattice-union's determinisation): each input is
pruned with ``beam`` and determinised, its cost is *normalised* (below), the inputs are
united by merging their start states (acyclic lattices have no arc into the start state,
so this is the union; where several inputs accept the empty word sequence only its best
final weight is kept, as the determinisation that follows would), and the union is pruned
with ``beam`` and determinised: one path per word sequence, with the weight and alignment
of its best path over all inputs.

Normalisation. Kaldi's lattice-combine adds each lattice's total backward cost (log-sum over
paths) to the graph part of its final weights, so each lattice sums to probability one
(``normalize="total"``). The thesis removes each lattice's own total cost so that every
decoding enters the union on an equal footing; frugal's default ``normalize="best"`` removes
the best path's (graph, acoustic) cost pair component by component, so each input's best
path has cost (0, 0) and every sampled 1-best is a zero-cost path of the union whatever
scales are used later, while costs relative to the best path are untouched. "total" moves
the (scaled) log-sum into the graph cost as Kaldi does.

LM uncertainty rescoring goes through an n-best list, since the TCN LM conditions on up to
15 words: the K best word sequences of the (determinised) lattice are kept, each path's
graph cost loses ``old_lm_scale`` times its n-gram LM cost (`BackoffLm`, the G the lattice
was decoded with) and gains ``new_lm_scale`` times its neural LM cost from one dropout
sample; the K rescored paths form the rescored lattice.

The N-best error rates of the thesis's table 3.4 (:func:`nbest_error_rates`,
:func:`supervision_table`) measure how good a supervision is: the WER and SER of every
path of its n-best list against the reference, averaged per utterance.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np

from frugal.lattice.lattice import Lattice, LatticePath
from frugal.lattice.determinize import determinize_lattice
from frugal.lattice.paths import nbest
from frugal.lattice.rescore import BackoffLm
from frugal.decode.scoring import ErrorCounts, align_words
from frugal.decode.dropout import utterance_seed  # noqa: F401  (the seeds of LM dropout samples)
from frugal.lang.symbols import SymbolTable

NORMALIZE_MODES = ("best", "total", "none")
DEFAULT_BEAM = 4.0


# --------------------------------------------------------------------------- combination
def normalize_lattice(lat: Lattice, mode: str = "best", graph_scale: float = 1.0,
                      acoustic_scale: float = 1.0) -> Lattice:
    """Remove the lattice's cost from its final weights (see the module docstring).

    ``"best"``: subtract the best path's (graph, acoustic) pair, so that path costs (0, 0);
    ``"total"``: subtract the scaled log-sum over all paths from the graph part (divided by
    ``graph_scale``, so that the scaled total becomes 0), as Kaldi's lattice-combine;
    ``"none"``: unchanged. A lattice without a path is returned unchanged.
    """
    if mode not in NORMALIZE_MODES:
        raise ValueError(f"normalize must be one of {NORMALIZE_MODES}, got {mode!r}")
    if mode == "none":
        return lat
    if mode == "best":
        best = lat.best_path(graph_scale, acoustic_scale)
        if best is None:
            return lat
        shift = np.array([best.graph_cost, best.acoustic_cost])
    else:
        _, _, total = lat.forward_backward(graph_scale, acoustic_scale)
        if total == -math.inf:
            return lat
        shift = np.array([-total / graph_scale, 0.0])
    out = lat.copy()
    ok = lat.is_final()
    out.finals[ok] = (lat.finals[ok].astype(np.float64) - shift).astype(np.float32)
    return out


def union_lattices(lats: Sequence[Lattice], graph_scale: float = 1.0, acoustic_scale: float = 1.0) -> Lattice:
    """The union of compact lattices, by merging their start states (see the module docstring)."""
    if not lats:
        raise ValueError("union of no lattices")
    if not all(lat.is_compact for lat in lats):
        raise ValueError("union_lattices takes compact lattices (determinise first)")
    arcs, weights, aligns, finals = [], [], [], [np.full((1, 2), np.inf, dtype=np.float32)]
    final_aligns = {}
    start_final: Optional[Tuple[float, np.ndarray, tuple]] = None
    offset = 1  # state 0 of the union is the common start state
    for lat in lats:
        lat = lat.connect()
        # State s > 0 of this lattice becomes offset + s - 1; its start state becomes 0.
        new_id = np.concatenate([[0], offset + np.arange(lat.num_states - 1)]).astype(np.int64)
        a = lat.arcs.copy()
        a[:, 0], a[:, 1] = new_id[a[:, 0]], new_id[a[:, 1]]
        arcs.append(a)
        weights.append(lat.weights)
        aligns += lat.alignments
        finals.append(lat.finals[1:])
        for s, ali in lat.final_alignments.items():
            if s > 0:
                final_aligns[int(new_id[s])] = ali
        if lat.is_final()[0]:
            cost = float(lat.final_costs(graph_scale, acoustic_scale)[0])
            if start_final is None or cost < start_final[0]:
                start_final = (cost, lat.finals[0], lat.final_alignments.get(0, ()))
        offset += lat.num_states - 1
    finals = np.concatenate(finals)
    if start_final is not None:
        finals[0] = start_final[1]
        if start_final[2]:
            final_aligns[0] = start_final[2]
    return Lattice(np.concatenate(arcs), np.concatenate(weights), finals, aligns, final_aligns)


def combine_lattices(lats: Sequence[Lattice], beam: Optional[float] = DEFAULT_BEAM, normalize: str = "best",
                     determinize: bool = True, graph_scale: float = 1.0, acoustic_scale: float = 1.0,
                     name: str = "lattice") -> Lattice:
    """Prune each lattice with ``beam``, normalise it, unite them and (with ``determinize``)
    prune and determinise the union (see the module docstring). ``beam`` None: no pruning.
    ``name`` (the utterance id) heads determinisation warnings."""
    prepared = [normalize_lattice(determinize_lattice(lat, beam, graph_scale, acoustic_scale, name=name),
                                  normalize, graph_scale, acoustic_scale) for lat in lats]
    union = union_lattices(prepared, graph_scale, acoustic_scale)
    if not determinize:
        return union.connect()
    return determinize_lattice(union, beam, graph_scale, acoustic_scale, name=f"{name} (union)")


# --------------------------------------------------------------------- neural LM rescoring
def ngram_lm_cost(lm: BackoffLm, words: Sequence[int]) -> float:
    """-ln P(<s> words </s>) under a `BackoffLm` (inf if it cannot score a word)."""
    state, cost = lm.start, 0.0
    for w in words:
        step = lm.step(state, w)
        if step is None:
            return math.inf
        state, c = step
        cost += c
    return cost + lm.final(state)


def paths_lattice(det: Lattice, paths: Sequence[LatticePath], graph_deltas: Sequence[float]) -> Lattice:
    """The lattice of some paths of the compact lattice ``det`` (one chain of word arcs a
    path, with its arcs' weights and alignments), each path's graph cost shifted by its
    delta (on its final weight); the chains share the start state."""
    arcs, weights, aligns = [], [], []
    finals = [(math.inf, math.inf)]
    final_aligns = {}
    for path, delta in zip(paths, graph_deltas):
        cur = 0
        for k in path.arcs:
            finals.append((math.inf, math.inf))
            nxt = len(finals) - 1
            arcs.append((cur, nxt, int(det.arcs[k, 2]), int(det.arcs[k, 3])))
            weights.append(tuple(det.weights[k].tolist()))
            aligns.append(det.alignments[k])
            cur = nxt
        end = int(det.arcs[path.arcs[-1], 1]) if path.arcs else 0
        g, a = det.finals[end].tolist()
        finals[cur] = (g + delta, a)  # paths have distinct word sequences: one may be empty
        if det.final_alignments.get(end):
            final_aligns[cur] = det.final_alignments[end]
    return Lattice(np.array(arcs, dtype=np.int32).reshape(-1, 4), np.array(weights, dtype=np.float32).reshape(-1, 2),
                   np.array(finals, dtype=np.float32).reshape(-1, 2), aligns, final_aligns)


@dataclass
class NbestRescoreConfig:
    nbest: int = 100              # K: paths of the n-best list that are rescored
    old_lm_scale: float = 1.0     # weight of the n-gram LM cost removed
    new_lm_scale: float = 1.0     # weight of the neural LM cost added
    graph_scale: float = 1.0      # scales that rank the n-best list
    acoustic_scale: float = 1.0


def nnlm_rescore(lat: Lattice, lm, old_lm: BackoffLm, words: SymbolTable, num_samples: int = 1,
                 seed: Optional[int] = 0, dropout: bool = True,
                 config: NbestRescoreConfig = NbestRescoreConfig()) -> List[Lattice]:
    """``num_samples`` n-best rescorings of ``lat`` with the neural LM ``lm`` (anything with
    `frugal.lm.neural.NeuralLm.sentence_log_probs`), one per dropout sample; see the module
    docstring. Each result is a determinised compact lattice of the K rescored paths. With
    ``dropout=False`` the LM is deterministic and ``num_samples`` must be 1. Paths the
    n-gram LM cannot score are dropped (as `lm_rescore` does)."""
    if not dropout and num_samples != 1:
        raise ValueError("without dropout every sample is the same: use num_samples=1")
    det = determinize_lattice(lat, None, config.graph_scale, config.acoustic_scale)
    paths = [p for p in nbest(det, config.nbest, config.graph_scale, config.acoustic_scale)
             if math.isfinite(ngram_lm_cost(old_lm, p.words))]
    if not paths:
        return [det.subset(np.zeros(det.num_arcs, dtype=bool)) for _ in range(num_samples)]
    old = np.array([ngram_lm_cost(old_lm, p.words) for p in paths])
    sentences = [[words.symbol(w) for w in p.words] for p in paths]
    if dropout:
        log_probs = lm.sentence_log_probs(sentences, dropout=True, seed=seed, num_samples=num_samples)
    else:
        log_probs = lm.sentence_log_probs(sentences)[None]
    log_probs = np.asarray(log_probs.detach().cpu().double().numpy()).reshape(num_samples, len(paths))
    out = []
    for sample in log_probs:
        deltas = -config.old_lm_scale * old - config.new_lm_scale * sample
        out.append(determinize_lattice(paths_lattice(det, paths, deltas.tolist()), None,
                                       config.graph_scale, config.acoustic_scale))
    return out


# --------------------------------------------------------------------- N-best error rates
@dataclass
class NbestErrorRates:
    """Table 3.4 of the thesis: the WER and SER of a supervision's n-best paths, averaged.

    Every utterance counts once: its errors are averaged over its n-best paths, then
    summed over utterances and divided by the reference words (WER); its sentence error
    is the fraction of its paths with an error, averaged over utterances (SER).
    """

    wer: float            # percent
    ser: float            # percent
    num_utts: int
    mean_paths: float     # n-best paths per utterance, on average


def nbest_error_rates(lats: Mapping[str, Lattice], refs: Mapping[str, Sequence[str]], words: SymbolTable,
                      n: int = 10, graph_scale: float = 1.0, acoustic_scale: float = 1.0) -> NbestErrorRates:
    """N-best-average WER and SER of lattices against reference transcripts (word strings)."""
    errors = ref_words = sentence_errors = 0.0
    num_paths = 0
    for key, lat in lats.items():
        if key not in refs:
            raise KeyError(f"no reference for utterance {key!r}")
        ref = list(refs[key])
        paths = nbest(lat, n, graph_scale, acoustic_scale)
        hyps = [[words.symbol(w) for w in p.words] for p in paths] or [[]]  # no path: all deletions
        counts = [ErrorCounts.from_alignment(align_words(ref, hyp)) for hyp in hyps]
        errors += sum(c.errors for c in counts) / len(counts)
        sentence_errors += sum(c.sentence_errors for c in counts) / len(counts)
        ref_words += len(ref)
        num_paths += len(paths)
    num_utts = len(lats)
    wer = 100.0 * errors / ref_words if ref_words else (0.0 if errors == 0 else math.inf)
    ser = 100.0 * sentence_errors / num_utts if num_utts else 0.0
    return NbestErrorRates(wer, ser, num_utts, num_paths / num_utts if num_utts else 0.0)


def supervision_table(rates: Mapping[str, NbestErrorRates], n: int) -> str:
    """A markdown table, one row per supervision kind (e.g. regular, AM, LM, AM+LM)."""
    lines = [f"| supervision | {n}-best WER (%) | {n}-best SER (%) | paths/utt | utterances |",
             "|---|---:|---:|---:|---:|"]
    for name, r in rates.items():
        lines.append(f"| {name} | {r.wer:.2f} | {r.ser:.2f} | {r.mean_paths:.1f} | {r.num_utts} |")
    return "\n".join(lines) + "\n"
