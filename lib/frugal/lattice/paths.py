"""Paths of lattices: n-best lists, the oracle path, word posteriors, times and CTM.

All of them take the (graph, acoustic) split of Kaldi's LatticeWeight into account; a
path's total cost under scales is ``graph_scale * graph + acoustic_scale * acoustic``.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from frugal.lattice.determinize import determinize_lattice
from frugal.lattice.lattice import Lattice, LatticePath, arcs_by_state


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


# ------------------------------------------------------------ frame posteriors
def frame_label_posteriors(lat: Lattice, graph_scale: float = 1.0, acoustic_scale: float = 1.0
                           ) -> List[Dict[int, float]]:
    """Per frame, {input label: posterior} summed over the lattice's arcs (and final
    alignments) that have that label at that frame (Kaldi's lattice-to-post)."""
    alpha, beta, total = lat.forward_backward(graph_scale, acoustic_scale)
    if total == -math.inf:
        return []
    frames = lat.state_frames()
    final_frames = {s: (len(lat.final_alignments.get(s, ())) if lat.is_compact else 0)
                    for s in np.nonzero(lat.is_final())[0].tolist()}
    num_frames = int(max((frames[s] + n for s, n in final_frames.items()), default=0))
    post: List[Dict[int, float]] = [dict() for _ in range(num_frames)]

    def add(start: int, labels, p: float) -> None:
        for i, label in enumerate(labels):
            post[start + i][label] = post[start + i].get(label, 0.0) + p

    arc_post = lat.arc_posteriors(graph_scale, acoustic_scale)
    for k, (src, _, ilabel, _) in enumerate(lat.arcs.tolist()):
        labels = lat.alignments[k] if lat.is_compact else ((ilabel,) if ilabel else ())
        if labels and arc_post[k] > 0:
            add(int(frames[src]), labels, float(arc_post[k]))
    if lat.is_compact:
        final_costs = lat.final_costs(graph_scale, acoustic_scale)
        for s, ali in lat.final_alignments.items():
            add(int(frames[s]), ali, math.exp(alpha[s] - final_costs[s] - total))
    return post


def best_path_frame_weights(lat: Lattice, graph_scale: float = 1.0, acoustic_scale: float = 1.0) -> np.ndarray:
    """Float32 [T]: each frame's posterior of the best path's label there (the summed
    posterior of the lattice arcs whose alignment has that label at that frame, in [0, 1]),
    as Kaldi's best-path derivative weights (steps/best_path_weights.sh); empty for a
    lattice without a path."""
    best = lat.best_path(graph_scale, acoustic_scale)
    if best is None:
        return np.zeros(0, dtype=np.float32)
    post = frame_label_posteriors(lat, graph_scale, acoustic_scale)
    if len(post) != len(best.ilabels):
        raise ValueError(f"lattice paths differ in length ({len(post)} vs {len(best.ilabels)} frames)")
    weights = [min(1.0, post[t].get(label, 0.0)) for t, label in enumerate(best.ilabels)]
    return np.array(weights, dtype=np.float32)
