"""Word-level lattice determinisation (Kaldi's lattice-determinize), with its memory budget.

Costs are the (graph, acoustic) pairs of Kaldi's LatticeWeight; paths are compared by
``graph_scale * graph + acoustic_scale * acoustic``.
"""
from __future__ import annotations

import heapq
import logging
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from frugal.lattice.lattice import Alignment, Lattice, LatticePath, arcs_by_state

log = logging.getLogger(__name__)

# Budget of determinize_lattice (as Kaldi's --max-mem), in subset elements: about 0.35 KB
# each with their keys and their share of the string trie, so 6M is about 2 GB. The
# largest seen in egs/mini (stage 18's union of 5 lattices) is 3.6M; with no budget, a
# model decoded with a graph of another HMM topology went past 20 GB. Beyond it the
# lattice is pruned to DETERMINIZE_BEAM_RATIO of its width and determinised again (Kaldi's
# --beam-ratio).
DETERMINIZE_MAX_ELEMENTS = 6_000_000
DETERMINIZE_BEAM_RATIO = 0.5
# Residual weights of determinisation subsets are compared after rounding to this step
# (OpenFst's and Kaldi's determinisation also use a comparison delta).
DETERMINIZE_DELTA = 1e-4


# ------------------------------------------------------------------ determinisation
def determinize_lattice(lat: Lattice, beam: Optional[float] = None, graph_scale: float = 1.0,
                        acoustic_scale: float = 1.0, max_elements: int = DETERMINIZE_MAX_ELEMENTS,
                        name: str = "lattice") -> Lattice:
    """Word-level determinisation, as Kaldi's lattice-determinize: a compact lattice with
    exactly one path per word sequence of ``lat``, whose weight is the (graph, acoustic)
    pair of the best path (lowest scaled total) with that word sequence and whose
    alignment is that path's input labels. With ``beam``, ``lat`` is first pruned.

    The algorithm is the subset construction in the lattice-weight x string semiring
    (Kaldi's DeterminizeLattice): a subset is a set of (state, residual weight, residual
    string) elements, words are the symbols, arcs without a word are followed inside a
    subset (epsilon closure) and only the best element per state is kept. A compact
    lattice is expanded and rebuilt even when it already is deterministic: pruning and
    rebuilding it place its weights as a fresh determinisation does, which the union
    of frugal.semisup.lattices relies on for reproducible supervision lattices.

    Determinisation can blow up (paths of one word sequence with many distinct alignments
    make many subsets). As Kaldi's lattice-determinize with --max-mem, when the subsets hold
    more than ``max_elements`` elements in all, the lattice is pruned to
    DETERMINIZE_BEAM_RATIO of its current width (the cost spread of its paths) and
    determinised again, with a warning; if even the best paths alone (width 0) exceed it,
    the result is the single best path. ``name`` (e.g. the utterance id) heads the warnings.
    """
    if lat.is_compact:
        lat = _expand_compact(lat)
    if beam is not None:
        lat = lat.prune(beam, graph_scale, acoustic_scale)
    while True:
        try:
            return _determinize(lat, graph_scale, acoustic_scale, max_elements)
        except _DeterminizeTooLarge:
            pass
        width = _path_cost_width(lat, graph_scale, acoustic_scale)
        if width <= DETERMINIZE_DELTA:
            log.warning("%s: determinisation exceeds %d elements even at width 0: keeping "
                        "its best path only", name, max_elements)
            best = lat.best_path(graph_scale, acoustic_scale)
            return _determinize(_single_path(lat, best), graph_scale, acoustic_scale, None)
        log.warning("%s: determinisation exceeds %d elements: pruning the lattice from width "
                    "%.3g to %.3g", name, max_elements, width, width * DETERMINIZE_BEAM_RATIO)
        lat = lat.prune(width * DETERMINIZE_BEAM_RATIO, graph_scale, acoustic_scale)


class _DeterminizeTooLarge(Exception):
    """Raised inside _determinize when its subsets exceed the element budget."""


def _path_cost_width(lat: Lattice, graph_scale: float, acoustic_scale: float) -> float:
    """How much worse than the best path the worst path through any arc is (scaled cost)."""
    through, _, best = lat.best_through(graph_scale, acoustic_scale)
    if best == -math.inf:
        return 0.0
    through = through[np.isfinite(through)]
    return float(best - through.min()) if through.size else 0.0


def _single_path(lat: Lattice, path: Optional[LatticePath]) -> Lattice:
    """``lat`` restricted to the arcs (and final state) of ``path``; empty when None."""
    keep = np.zeros(lat.num_arcs, dtype=bool)
    keep_finals = np.zeros(lat.num_states, dtype=bool)
    if path is not None:
        keep[list(path.arcs)] = True
        keep_finals[int(lat.arcs[path.arcs[-1], 1]) if path.arcs else 0] = True
    return lat.subset(keep, keep_finals)


def _determinize(lat: Lattice, graph_scale: float, acoustic_scale: float,
                 max_elements: Optional[int]) -> Lattice:
    """The subset construction of determinize_lattice on a state-level lattice; raises
    _DeterminizeTooLarge when its subsets hold more than ``max_elements`` elements in all
    (None: no limit). Residual strings are ids of a _StringTrie."""
    by_src = arcs_by_state(lat)
    arcs = lat.arcs.tolist()
    weights = lat.weights.astype(np.float64).tolist()
    finals = lat.finals.astype(np.float64).tolist()
    is_final = lat.is_final().tolist()
    rank = np.empty(lat.num_states, dtype=np.int64)
    rank[lat.topo_order()] = np.arange(lat.num_states)
    rank = rank.tolist()
    trie = _StringTrie(int(lat.arcs[:, 2].max(initial=0)) + 1)

    def total(g: float, a: float) -> float:
        return graph_scale * g + acoustic_scale * a

    def better(x, y) -> bool:  # x, y = (g, a, string id): by total cost, graph cost, string
        tx, ty = total(x[0], x[1]), total(y[0], y[1])
        if tx != ty:
            return tx < ty
        if x[0] != y[0]:
            return x[0] < y[0]
        return x[2] != y[2] and trie.string(x[2]) < trie.string(y[2])

    def closure(elems: Dict[int, Tuple[float, float, int]]):
        heap = [(rank[q], q) for q in elems]
        heapq.heapify(heap)
        done = set()
        while heap:
            _, q = heapq.heappop(heap)
            if q in done:
                continue
            done.add(q)
            g, a, s = elems[q]
            for k in by_src[q].tolist():
                _, d, il, ol = arcs[k]
                if ol != 0:
                    continue
                cand = (g + weights[k][0], a + weights[k][1], trie.append(s, il) if il else s)
                if d not in elems or better(cand, elems[d]):
                    elems[d] = cand
                    heapq.heappush(heap, (rank[d], d))
        return elems

    # Every subset made keeps its key (the index of the output states): (state, rounded
    # graph, rounded acoustic, string id) rows in state order, packed into 32 bytes a row.
    def key(elems) -> bytes:
        rows = [(q, round(g / DETERMINIZE_DELTA), round(a / DETERMINIZE_DELTA), s)
                for q, (g, a, s) in sorted(elems.items())]
        return np.array(rows, dtype=np.int64).tobytes()

    start = closure({0: (0.0, 0.0, _StringTrie.EMPTY)})
    subsets = [start]
    index = {key(start): 0}
    held = len(start)
    out_arcs, out_weights, out_aligns = [], [], []
    out_finals: List[Tuple[float, float]] = []
    out_final_aligns: Dict[int, Alignment] = {}
    i = 0
    while i < len(subsets):
        elems, subsets[i] = subsets[i], None  # only its key in index is needed from now on
        best_final = None
        for q, (g, a, s) in elems.items():
            if is_final[q]:
                cand = (g + finals[q][0], a + finals[q][1], s)
                if best_final is None or better(cand, best_final):
                    best_final = cand
        out_finals.append((best_final[0], best_final[1]) if best_final else (math.inf, math.inf))
        if best_final and best_final[2] != _StringTrie.EMPTY:
            out_final_aligns[i] = trie.string(best_final[2])
        by_word: Dict[int, Dict[int, Tuple[float, float, int]]] = {}
        for q in sorted(elems):
            g, a, s = elems[q]
            for k in by_src[q].tolist():
                _, d, il, ol = arcs[k]
                if ol == 0:
                    continue
                cand = (g + weights[k][0], a + weights[k][1], trie.append(s, il) if il else s)
                nxt = by_word.setdefault(ol, {})
                if d not in nxt or better(cand, nxt[d]):
                    nxt[d] = cand
        for word in sorted(by_word):
            nxt = closure(by_word[word])
            best = None
            for e in nxt.values():
                if best is None or better(e, best):
                    best = e
            prefix = trie.common_prefix([e[2] for e in nxt.values()])
            residual = {q: (g - best[0], a - best[1], trie.suffix(s, prefix)) for q, (g, a, s) in nxt.items()}
            k = key(residual)
            if k not in index:
                index[k] = len(subsets)
                subsets.append(residual)
                held += len(residual)
                if max_elements is not None and held > max_elements:
                    raise _DeterminizeTooLarge
            out_arcs.append((i, index[k], word, word))
            out_weights.append((best[0], best[1]))
            out_aligns.append(trie.string(prefix))
        i += 1
    return Lattice(np.array(out_arcs, dtype=np.int32).reshape(-1, 4),
                   np.array(out_weights, dtype=np.float32).reshape(-1, 2),
                   np.array(out_finals, dtype=np.float32).reshape(-1, 2),
                   out_aligns, out_final_aligns).connect()


class _StringTrie:
    """The residual strings of determinisation as nodes of a trie (Kaldi's
    LatticeStringRepository): a string is the id of its node, appending a label is one dict
    look-up, and equal strings are one id. As tuples, the long residual strings of a lattice
    with many alignments per word sequence took about 1 KB an element of each subset."""

    EMPTY = 0

    def __init__(self, label_bound: int) -> None:
        self.label_bound = label_bound  # labels are < label_bound: a child's key is id * bound + label
        self.parent = [-1]
        self.label = [0]
        self.depth = [0]
        self.first = [0]   # the node of a string's first label: strings with different ones share no prefix
        self.children: Dict[int, int] = {}

    def append(self, s: int, label: int) -> int:
        k = s * self.label_bound + label
        child = self.children.get(k)
        if child is None:
            child = self.children[k] = len(self.parent)
            self.parent.append(s)
            self.label.append(label)
            self.depth.append(self.depth[s] + 1)
            self.first.append(child if s == self.EMPTY else self.first[s])
        return child

    def string(self, s: int) -> Alignment:
        labels = []
        while s != self.EMPTY:
            labels.append(self.label[s])
            s = self.parent[s]
        return tuple(reversed(labels))

    def common_prefix(self, strings: Sequence[int]) -> int:
        """The longest common prefix of ``strings``: their deepest common ancestor."""
        parent, depth, first = self.parent, self.depth, self.first
        p = strings[0]
        if any(first[s] != first[p] for s in strings):
            return self.EMPTY  # the usual case: walking up long strings would take most of the time
        for s in strings[1:]:
            while depth[s] > depth[p]:
                s = parent[s]
            while depth[p] > depth[s]:
                p = parent[p]
            while s != p:
                s, p = parent[s], parent[p]
        return p

    def suffix(self, s: int, prefix: int) -> int:
        """``s`` without ``prefix`` (an ancestor of it)."""
        if prefix == self.EMPTY:
            return s
        labels = []
        while s != prefix:
            labels.append(self.label[s])
            s = self.parent[s]
        out = self.EMPTY
        for label in reversed(labels):
            out = self.append(out, label)
        return out


def _expand_compact(lat: Lattice) -> Lattice:
    """A compact lattice as a state-level one: each arc becomes a chain of arcs reading its
    alignment (the word and the weight on the first arc); a final alignment becomes a
    chain to a new final state."""
    arcs, weights = [], []
    finals = [tuple(f) for f in lat.finals.tolist()]

    def chain(src: int, dst: Optional[int], ilabels: Sequence[int], word: int, weight) -> int:
        labels = list(ilabels) or [0]
        cur = src
        for k, il in enumerate(labels):
            if k + 1 == len(labels) and dst is not None:
                nxt = dst
            else:
                nxt = len(finals)
                finals.append((math.inf, math.inf))
            arcs.append((cur, nxt, il, word if k == 0 else 0))
            weights.append(weight if k == 0 else (0.0, 0.0))
            cur = nxt
        return cur

    for k, ((s, d, w, _), wt) in enumerate(zip(lat.arcs.tolist(), lat.weights.tolist())):
        chain(s, d, lat.alignments[k], w, wt)
    for s, ali in lat.final_alignments.items():
        if ali:
            end = chain(s, None, ali, 0, (0.0, 0.0))
            finals[end] = finals[s]
            finals[s] = (math.inf, math.inf)
    return Lattice(np.array(arcs, dtype=np.int32).reshape(-1, 4), np.array(weights, dtype=np.float32).reshape(-1, 2),
                   np.array(finals, dtype=np.float32).reshape(-1, 2))
