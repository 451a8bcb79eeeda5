"""Lattice algorithms: determinisation, n-best, oracle, word posteriors and times, LM rescoring.

All of them take the (graph, acoustic) split of Kaldi's LatticeWeight into account; a
path's total cost under scales is ``graph_scale * graph + acoustic_scale * acoustic``.
"""
from __future__ import annotations

import heapq
import logging
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from frugal.decode.lattice import Alignment, Lattice, LatticePath, arcs_by_state
from frugal.graph.fstutil import fst_arcs

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


def word_sequences(lat: Lattice, max_paths: int = 100000) -> List[Tuple[int, ...]]:
    """The word sequences of all successful paths, one per path (brute force, for checks)."""
    by_src = arcs_by_state(lat)
    is_final = lat.is_final()
    out: List[Tuple[int, ...]] = []
    stack = [(0, ())]
    while stack:
        s, words = stack.pop()
        if is_final[s]:
            out.append(words)
            if len(out) > max_paths:
                raise ValueError(f"more than {max_paths} paths")
        for k in by_src[s].tolist():
            w = int(lat.arcs[k, 3])
            stack.append((int(lat.arcs[k, 1]), words + (w,) if w else words))
    return out


# ---------------------------------------------------------------------------- n-best
def nbest(lat: Lattice, n: int, graph_scale: float = 1.0, acoustic_scale: float = 1.0) -> List[LatticePath]:
    """The ``n`` best distinct word sequences, best first (after determinisation, every
    path has its own word sequence); exact A* search with the backward costs as heuristic."""
    det = lat if _is_word_deterministic(lat) else determinize_lattice(lat, None, graph_scale, acoustic_scale)
    _, beta, best = det.forward_backward(graph_scale, acoustic_scale, viterbi=True)
    if best == -math.inf:
        return []
    costs = det.arc_costs(graph_scale, acoustic_scale)
    fcosts = det.final_costs(graph_scale, acoustic_scale)
    by_src = arcs_by_state(det)
    heap = [(-beta[0], 0.0, 0, False, ())]  # (priority, cost so far, state, ended, arcs)
    out: List[LatticePath] = []
    while heap and len(out) < n:
        _, cost, s, ended, path = heapq.heappop(heap)
        if ended:
            out.append(det.make_path(list(path), final_state=s))
            continue
        if math.isfinite(fcosts[s]):
            heapq.heappush(heap, (cost + fcosts[s], cost + fcosts[s], s, True, path))
        for k in by_src[s].tolist():
            d = int(det.arcs[k, 1])
            if beta[d] > -math.inf:
                c = cost + costs[k]
                heapq.heappush(heap, (c - beta[d], c, d, False, path + (k,)))
    return out


def _is_word_deterministic(lat: Lattice) -> bool:
    if not lat.is_compact or bool((lat.arcs[:, 3] == 0).any()):
        return False
    pairs = lat.arcs[:, 0].astype(np.int64) * (1 << 32) + lat.arcs[:, 3]
    return np.unique(pairs).size == pairs.size


# ---------------------------------------------------------------------------- oracle
@dataclass
class OraclePath:
    words: List[int]
    errors: int
    path: LatticePath


def oracle_path(lat: Lattice, ref: Sequence[int], graph_scale: float = 1.0,
                acoustic_scale: float = 1.0) -> Optional[OraclePath]:
    """The lattice path with the fewest word errors (Levenshtein, unit costs) against the
    reference word ids ``ref``; ties go to the lower lattice cost. Dynamic programming over
    (lattice state, reference position) in topological order (Kaldi's lattice-oracle
    composes with an edit-distance transducer; this is the same search)."""
    N = len(ref)
    ref_arr = np.asarray(ref, dtype=np.int64)
    S = lat.num_states
    INF = math.inf
    err = np.full((S, N + 1), INF)
    cost = np.full((S, N + 1), INF)
    # Back-pointers: previous state, previous position, arc (-1: deletion inside a state).
    bp_state = np.full((S, N + 1), -1, dtype=np.int64)
    bp_pos = np.full((S, N + 1), -1, dtype=np.int64)
    bp_arc = np.full((S, N + 1), -1, dtype=np.int64)
    err[0, 0] = 0.0
    cost[0, 0] = 0.0
    arc_costs = lat.arc_costs(graph_scale, acoustic_scale)
    by_src = arcs_by_state(lat)

    def relax(d, js, e, c, s, prev_js, k):
        better = (e < err[d, js]) | ((e == err[d, js]) & (c < cost[d, js]))
        js, prev_js = js[better], prev_js[better]
        err[d, js], cost[d, js] = e[better], c[better]
        bp_state[d, js], bp_pos[d, js], bp_arc[d, js] = s, prev_js, k

    all_j = np.arange(N + 1)
    for s in lat.topo_order().tolist():
        for j in range(1, N + 1):  # deletions of reference words
            e, c = err[s, j - 1] + 1, cost[s, j - 1]
            if (e, c) < (err[s, j], cost[s, j]):
                err[s, j], cost[s, j] = e, c
                bp_state[s, j], bp_pos[s, j], bp_arc[s, j] = s, j - 1, -1
        for k in by_src[s].tolist():
            d, w = int(lat.arcs[k, 1]), int(lat.arcs[k, 3])
            c = cost[s] + arc_costs[k]
            if w == 0:
                relax(d, all_j, err[s], c, s, all_j, k)
                continue
            relax(d, all_j, err[s] + 1, c, s, all_j, k)  # insertion
            if N:
                relax(d, all_j[1:], err[s, :-1] + (ref_arr != w), c[:-1], s, all_j[:-1], k)
    fc = lat.final_costs(graph_scale, acoustic_scale)
    cands = [(err[s, N], cost[s, N] + fc[s], s) for s in range(S) if math.isfinite(fc[s]) and err[s, N] < INF]
    if not cands:
        return None
    e, _, s = min(cands)
    arcs, j, final_state = [], N, s
    while not (s == 0 and j == 0):
        k, ps, pj = bp_arc[s, j], bp_state[s, j], bp_pos[s, j]
        if k >= 0:
            arcs.append(int(k))
        s, j = int(ps), int(pj)
    arcs.reverse()
    path = lat.make_path(arcs, final_state)
    return OraclePath(path.words, int(e), path)


# --------------------------------------------------------- posteriors, times, CTM
@dataclass
class WordArc:
    word: int
    start_frame: int
    num_frames: int
    posterior: float


def word_posteriors(lat: Lattice, graph_scale: float = 1.0, acoustic_scale: float = 1.0) -> List[WordArc]:
    """Posterior of each (word, start frame, number of frames) over the lattice's arcs that
    carry a word, summed over arcs with the same triple (Kaldi's lattice-arc-post). The
    start frame is the frames consumed before the arc; the frames are the arc's own (1
    for an emitting arc of a state-level lattice, its alignment's length in a compact one)."""
    post = lat.arc_posteriors(graph_scale, acoustic_scale)
    frames = lat.state_frames()
    arc_frames = lat.arc_frames()
    agg: Dict[Tuple[int, int, int], float] = {}
    for k in np.nonzero(lat.arcs[:, 3] != 0)[0].tolist():
        key = (int(lat.arcs[k, 3]), int(frames[lat.arcs[k, 0]]), int(arc_frames[k]))
        agg[key] = agg.get(key, 0.0) + float(post[k])
    return [WordArc(w, s, n, p) for (w, s, n), p in sorted(agg.items(), key=lambda x: (x[0][1], x[0][0]))]


@dataclass
class CtmWord:
    word: int
    start_frame: float
    num_frames: float
    confidence: float


def lattice_to_ctm(lat: Lattice, graph_scale: float = 1.0, acoustic_scale: float = 1.0) -> List[CtmWord]:
    """Words of the best path with times (in frames) and confidences.

    A word starts at the frame where the best path emits it (the frames consumed before
    its arc) and lasts until the next word starts (the last word: until the end of the
    path); words emitted at the same frame share that span equally. Its confidence is the
    posterior mass of lattice arcs with the same word that start inside its span (capped
    at 1). Times follow where the decoding graph puts word labels (for HLG/HCLG, at or
    near the word's first frame; a homophone's label can come at its end): they are not
    lattice-align-words boundaries.
    """
    best = lat.best_path(graph_scale, acoustic_scale)
    if best is None:
        return []
    frames = lat.state_frames()
    arc_frames = lat.arc_frames()
    starts, words, pos = [], [], 0
    for k in best.arcs:
        if lat.arcs[k, 3] != 0:
            words.append(int(lat.arcs[k, 3]))
            starts.append(pos)
        pos += int(arc_frames[k])
    end = len(best.ilabels)  # frames of the whole path, final alignment included
    post = lat.arc_posteriors(graph_scale, acoustic_scale)
    word_arcs = np.nonzero(lat.arcs[:, 3] != 0)[0]
    arc_start = frames[lat.arcs[word_arcs, 0]]
    out = []
    i = 0
    while i < len(words):
        j = i
        while j < len(words) and starts[j] == starts[i]:
            j += 1
        s = starts[i]
        e = starts[j] if j < len(words) else end
        share = (e - s) / (j - i)
        for k in range(i, j):
            m = (lat.arcs[word_arcs, 3] == words[k]) & (arc_start >= s) & (arc_start < max(e, s + 1))
            out.append(CtmWord(words[k], s + (k - i) * share, share, float(min(1.0, post[word_arcs[m]].sum()))))
        i = j
    return out


# ----------------------------------------------------------------------- LM rescore
class BackoffLm:
    """A word n-gram G (from kaldilm's arpa2fst, as made by make_grammar_fst) used as a
    deterministic on-demand FST: a word missing at a state follows the backoff arc (input
    #0 or epsilon, no output) and is looked up again, which is the ARPA backoff rule
    exactly (plain epsilon composition could also take a backoff path where an explicit
    n-gram exists)."""

    def __init__(self, G):
        a = fst_arcs(G)
        self.start = a.start
        self.arcs: Dict[int, Dict[int, Tuple[int, float]]] = {}
        self.backoff: Dict[int, Tuple[int, float]] = {}
        for s, d, _, o, w in a.arcs:
            if o == 0:
                self.backoff[s] = (d, w)
            else:
                self.arcs.setdefault(s, {})[o] = (d, w)
        self.finals = a.finals

    def step(self, state: int, word: int) -> Optional[Tuple[int, float]]:
        """(next state, cost) of ``word`` after ``state``, or None if the LM lacks it."""
        cost = 0.0
        while True:
            hit = self.arcs.get(state, {}).get(word)
            if hit is not None:
                return hit[0], cost + hit[1]
            if state not in self.backoff:
                return None
            state, c = self.backoff[state]
            cost += c

    def final(self, state: int) -> float:
        cost = 0.0
        while True:
            if state in self.finals:
                return cost + self.finals[state]
            if state not in self.backoff:
                return math.inf
            state, c = self.backoff[state]
            cost += c


def lm_rescore(lat: Lattice, old_lm: BackoffLm, new_lm: BackoffLm, old_scale: float = 1.0,
               new_scale: float = 1.0) -> Lattice:
    """Replace the LM part of the graph costs: each path's graph cost loses
    ``old_scale`` x its old-LM cost and gains ``new_scale`` x its new-LM cost (Kaldi's
    lattice-lmrescore --lm-scale=-1 with the old G, then --lm-scale=1 with the new one).
    States are split by the pair of LM histories. Paths with a word that one of the LMs
    cannot score are dropped."""
    by_src = arcs_by_state(lat)
    start = (0, old_lm.start, new_lm.start)
    index = {start: 0}
    todo = [start]
    arcs, weights, aligns, finals = [], [], [], []
    final_aligns: Dict[int, Alignment] = {}
    while todo:
        q, og, ng = triple = todo.pop()
        i = index[triple]
        while len(finals) <= i:
            finals.append((math.inf, math.inf))
        if lat.is_final()[q]:
            f_old, f_new = old_lm.final(og), new_lm.final(ng)
            if math.isfinite(f_old) and math.isfinite(f_new):
                g, a = lat.finals[q].tolist()
                finals[i] = (g - old_scale * f_old + new_scale * f_new, a)
                if lat.is_compact and lat.final_alignments.get(q):
                    final_aligns[i] = lat.final_alignments[q]
        for k in by_src[q].tolist():
            _, d, il, w = lat.arcs[k].tolist()
            g, a = lat.weights[k].tolist()
            if w == 0:
                nxt = (d, og, ng)
            else:
                so, sn = old_lm.step(og, w), new_lm.step(ng, w)
                if so is None or sn is None:
                    continue
                nxt = (d, so[0], sn[0])
                g = g - old_scale * so[1] + new_scale * sn[1]
            if nxt not in index:
                index[nxt] = len(index)
                todo.append(nxt)
            arcs.append((i, index[nxt], il, w))
            weights.append((g, a))
            if lat.is_compact:
                aligns.append(lat.alignments[k])
    while len(finals) < len(index):
        finals.append((math.inf, math.inf))
    return Lattice(np.array(arcs, dtype=np.int32).reshape(-1, 4), np.array(weights, dtype=np.float32).reshape(-1, 2),
                   np.array(finals, dtype=np.float32).reshape(-1, 2),
                   aligns if lat.is_compact else None, final_aligns if lat.is_compact else None).connect()
