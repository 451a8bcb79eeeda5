"""`Lattice`: Kaldi's lattices (state-level ``Lattice`` and word-level ``CompactLattice``).

Conventions, as in Kaldi:

- States 0..S-1, start state 0. ``arcs`` int32 [A, 4] = (src, dst, ilabel, olabel) with
  OpenFst labels: 0 is epsilon. In a state-level lattice the input label is the decoding
  graph's input label (transition id, pdf id + 1 or token id + 1): every arc with a
  non-zero input label consumes one frame; the output label is a word id (words.txt) or 0.
- ``weights`` float32 [A, 2] = (graph cost, acoustic cost), Kaldi's LatticeWeight: costs
  are negated log-scores; the acoustic cost is *unscaled* (-log-likelihood), as Kaldi's
  decoders write it (they undo the acoustic scale before writing).
- ``finals`` float32 [S, 2]: a state's final weight; (inf, inf) means "not final".
- A compact (word-level) lattice is an acceptor over words (ilabel == olabel) whose arcs
  and final weights also carry a string of input labels, the alignment
  (``alignments[a]``, ``final_alignments[s]``): Kaldi's CompactLatticeWeight. Only
  non-zero input labels are kept in strings, so a string's length is its number of frames.

The total cost of a path under scales is ``graph_scale * graph + acoustic_scale * acoustic``;
"best" means lowest total cost. Lattices are acyclic (decoder output always is).
"""
from __future__ import annotations

import math
import os
import struct
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from frugal.fsa.arcs import reachable, to_dot

Alignment = Tuple[int, ...]

NOT_FINAL = (math.inf, math.inf)


@dataclass
class LatticePath:
    """One path: its arcs (indices), word ids, input labels, and summed weights."""

    arcs: List[int]
    words: List[int]
    ilabels: List[int]          # non-zero input labels in order (the alignment)
    graph_cost: float
    acoustic_cost: float

    def total_cost(self, graph_scale: float = 1.0, acoustic_scale: float = 1.0) -> float:
        return graph_scale * self.graph_cost + acoustic_scale * self.acoustic_cost


class Lattice:
    """A lattice; see the module docstring. Arrays are numpy, on the CPU."""

    def __init__(self, arcs: np.ndarray, weights: np.ndarray, finals: np.ndarray,
                 alignments: Optional[List[Alignment]] = None,
                 final_alignments: Optional[Dict[int, Alignment]] = None):
        arcs = np.asarray(arcs, dtype=np.int32).reshape(-1, 4)
        weights = np.asarray(weights, dtype=np.float32).reshape(-1, 2)
        finals = np.asarray(finals, dtype=np.float32).reshape(-1, 2)
        if weights.shape[0] != arcs.shape[0]:
            raise ValueError(f"{arcs.shape[0]} arcs but {weights.shape[0]} weights")
        if finals.shape[0] < 1:
            raise ValueError("a lattice needs at least the start state")
        if arcs.shape[0] and (arcs[:, :2].min() < 0 or arcs[:, :2].max() >= finals.shape[0]):
            raise ValueError(f"arc states must lie in [0, {finals.shape[0]})")
        if alignments is not None and len(alignments) != arcs.shape[0]:
            raise ValueError(f"{arcs.shape[0]} arcs but {len(alignments)} alignments")
        self.arcs = arcs
        self.weights = weights
        self.finals = finals
        self.alignments = alignments
        # Final alignments: only non-empty ones are stored.
        self.final_alignments = None if alignments is None else \
            {int(s): tuple(a) for s, a in (final_alignments or {}).items() if a}

    # ----------------------------------------------------------------- basics
    @property
    def num_states(self) -> int:
        return self.finals.shape[0]

    @property
    def num_arcs(self) -> int:
        return self.arcs.shape[0]

    @property
    def is_compact(self) -> bool:
        return self.alignments is not None

    def is_final(self) -> np.ndarray:
        return np.isfinite(self.finals).all(axis=1)

    def __repr__(self) -> str:
        kind = "CompactLattice" if self.is_compact else "Lattice"
        return f"{kind}(num_states={self.num_states}, num_arcs={self.num_arcs})"

    def copy(self) -> "Lattice":
        return Lattice(self.arcs.copy(), self.weights.copy(), self.finals.copy(),
                       None if self.alignments is None else list(self.alignments),
                       None if self.final_alignments is None else dict(self.final_alignments))

    def __eq__(self, other) -> bool:
        return (isinstance(other, Lattice) and np.array_equal(self.arcs, other.arcs)
                and np.array_equal(self.weights, other.weights)
                and np.array_equal(self.finals, other.finals)
                and self.alignments == other.alignments
                and self.final_alignments == other.final_alignments)

    def arc_frames(self) -> np.ndarray:
        """Int [A]: frames each arc consumes (1 per non-zero ilabel, or its alignment's length)."""
        if self.is_compact:
            return np.array([len(a) for a in self.alignments], dtype=np.int64)
        return (self.arcs[:, 2] != 0).astype(np.int64)

    # ------------------------------------------------------------ structure
    def topo_order(self) -> np.ndarray:
        """States in a topological order (Kahn); raises ValueError on a cycle."""
        n = self.num_states
        src, dst = self.arcs[:, 0].astype(np.int64), self.arcs[:, 1].astype(np.int64)
        indeg = np.bincount(dst, minlength=n)
        order_by_src = np.argsort(src, kind="stable")
        heads = np.searchsorted(src[order_by_src], np.arange(n + 1))
        dst_sorted = dst[order_by_src].tolist()
        heads = heads.tolist()
        indeg = indeg.tolist()
        stack = [s for s in range(n) if indeg[s] == 0]
        order = []
        while stack:
            s = stack.pop()
            order.append(s)
            for d in dst_sorted[heads[s]:heads[s + 1]]:
                indeg[d] -= 1
                if indeg[d] == 0:
                    stack.append(d)
        if len(order) != n:
            raise ValueError("the lattice has a cycle")
        return np.array(order, dtype=np.int64)

    def state_frames(self) -> np.ndarray:
        """Int [S]: frames consumed before each state (the same on every path in a lattice
        from a decoder; for others, the value on the path reached last in topological order)."""
        frames = np.zeros(self.num_states, dtype=np.int64)
        arc_frames = self.arc_frames()
        by_src = arcs_by_state(self)
        for s in self.topo_order().tolist():
            for a in by_src[s]:
                frames[self.arcs[a, 1]] = frames[s] + arc_frames[a]
        return frames

    def subset(self, keep_arcs: np.ndarray, keep_finals: Optional[np.ndarray] = None) -> "Lattice":
        """The lattice with only the given arcs (bool [A]) and final states (bool [S]),
        trimmed to states on a successful path and renumbered in topological order."""
        finals = self.finals.copy()
        if keep_finals is not None:
            finals[~keep_finals] = math.inf
        arcs = self.arcs[keep_arcs]
        weights = self.weights[keep_arcs]
        aligns = None if self.alignments is None else [a for a, k in zip(self.alignments, keep_arcs) if k]
        return Lattice(arcs, weights, finals, aligns, self.final_alignments).connect()

    def connect(self) -> "Lattice":
        """Keep states on a path from the start to a final state; renumber them in
        topological order (start state first)."""
        n = self.num_states
        fwd = reachable(n, self.arcs[:, 0], self.arcs[:, 1], [0])
        bwd = reachable(n, self.arcs[:, 1], self.arcs[:, 0], np.nonzero(self.is_final())[0].tolist())
        keep = fwd & bwd
        if not keep[0]:
            return Lattice(np.zeros((0, 4)), np.zeros((0, 2)), np.full((1, 2), math.inf),
                           [] if self.is_compact else None)
        arc_keep = keep[self.arcs[:, 0]] & keep[self.arcs[:, 1]]
        sub = Lattice(self.arcs[arc_keep], self.weights[arc_keep], self.finals,
                      None if self.alignments is None else
                      [a for a, k in zip(self.alignments, arc_keep) if k], self.final_alignments)
        order = [s for s in sub.topo_order().tolist() if keep[s]]
        if order[0] != 0:  # state 0 has no incoming arcs, so it can go first
            order.remove(0)
            order.insert(0, 0)
        new_id = np.full(n, -1, dtype=np.int64)
        new_id[order] = np.arange(len(order))
        arcs = sub.arcs.copy()
        arcs[:, 0] = new_id[arcs[:, 0]]
        arcs[:, 1] = new_id[arcs[:, 1]]
        # Arcs grouped by source state in the new numbering (stable within a state).
        perm = np.argsort(arcs[:, 0], kind="stable")
        final_aligns = None
        if sub.final_alignments is not None:
            final_aligns = {int(new_id[s]): a for s, a in sub.final_alignments.items()
                            if new_id[s] >= 0 and a}
        return Lattice(arcs[perm], sub.weights[perm], self.finals[order],
                       None if sub.alignments is None else [sub.alignments[i] for i in perm.tolist()],
                       final_aligns)

    # ---------------------------------------------------------------- costs
    def arc_costs(self, graph_scale: float = 1.0, acoustic_scale: float = 1.0) -> np.ndarray:
        w = self.weights.astype(np.float64)
        return graph_scale * w[:, 0] + acoustic_scale * w[:, 1]

    def final_costs(self, graph_scale: float = 1.0, acoustic_scale: float = 1.0) -> np.ndarray:
        f = self.finals.astype(np.float64)
        out = np.full(self.num_states, math.inf)
        ok = self.is_final()
        out[ok] = graph_scale * f[ok, 0] + acoustic_scale * f[ok, 1]
        return out

    def scale(self, graph_scale: float = 1.0, acoustic_scale: float = 1.0) -> "Lattice":
        """Multiply graph costs by ``graph_scale`` and acoustic costs by ``acoustic_scale``
        (Kaldi's lattice-scale); non-final states stay non-final."""
        out = self.copy()
        out.weights = (self.weights * np.array([graph_scale, acoustic_scale], dtype=np.float32))
        ok = self.is_final()
        out.finals[ok] = self.finals[ok] * np.array([graph_scale, acoustic_scale], dtype=np.float32)
        return out

    def forward_backward(self, graph_scale: float = 1.0, acoustic_scale: float = 1.0,
                         viterbi: bool = False) -> Tuple[np.ndarray, np.ndarray, float]:
        """(alpha [S], beta [S], total) as log-scores (negated costs), float64, in the log
        semiring (or tropical with ``viterbi``); total = log-sum over successful paths."""
        costs = -self.arc_costs(graph_scale, acoustic_scale)
        finals = -self.final_costs(graph_scale, acoustic_scale)
        order = self.topo_order().tolist()
        by_src = arcs_by_state(self)
        by_dst = arcs_by_state(self, column=1)
        combine = np.maximum if viterbi else np.logaddexp
        src, dst = self.arcs[:, 0], self.arcs[:, 1]
        alpha = np.full(self.num_states, -math.inf)
        for s in order:
            arcs = by_dst[s]
            init = [0.0] if s == 0 else [-math.inf]
            alpha[s] = combine.reduce(np.concatenate([init, alpha[src[arcs]] + costs[arcs]]))
        beta = finals.copy()
        for s in reversed(order):
            arcs = by_src[s]
            if arcs.size:
                beta[s] = combine.reduce(np.concatenate([[beta[s]], costs[arcs] + beta[dst[arcs]]]))
        total = float(beta[0])
        return alpha, beta, total

    def arc_posteriors(self, graph_scale: float = 1.0, acoustic_scale: float = 1.0) -> np.ndarray:
        """Float64 [A]: posterior probability of each arc (forward-backward, log semiring)."""
        alpha, beta, total = self.forward_backward(graph_scale, acoustic_scale)
        if total == -math.inf:
            return np.zeros(self.num_arcs)
        src, dst = self.arcs[:, 0], self.arcs[:, 1]
        return np.exp(alpha[src] - self.arc_costs(graph_scale, acoustic_scale) + beta[dst] - total)

    def best_through(self, graph_scale: float = 1.0, acoustic_scale: float = 1.0
                     ) -> Tuple[np.ndarray, np.ndarray, float]:
        """(arcs [A], finals [S], best): the log-score (negated scaled cost) of the best
        path through each arc and ending in each state, and of the best path overall."""
        alpha, beta, best = self.forward_backward(graph_scale, acoustic_scale, viterbi=True)
        src, dst = self.arcs[:, 0], self.arcs[:, 1]
        through = alpha[src] - self.arc_costs(graph_scale, acoustic_scale) + beta[dst]
        return through, alpha - self.final_costs(graph_scale, acoustic_scale), best

    def prune(self, beam: float, graph_scale: float = 1.0, acoustic_scale: float = 1.0) -> "Lattice":
        """Keep arcs on some path within ``beam`` (in scaled cost) of the best path (Kaldi's
        lattice-prune); beam is in the scaled cost domain."""
        through, finals_through, best = self.best_through(graph_scale, acoustic_scale)
        if best == -math.inf:
            return self.subset(np.zeros(self.num_arcs, dtype=bool))
        return self.subset(through >= best - beam, finals_through >= best - beam)

    def best_path(self, graph_scale: float = 1.0, acoustic_scale: float = 1.0) -> Optional[LatticePath]:
        """The lowest-cost successful path, or None if there is none."""
        alpha, beta, best = self.forward_backward(graph_scale, acoustic_scale, viterbi=True)
        if best == -math.inf:
            return None
        costs = -self.arc_costs(graph_scale, acoustic_scale)
        finals = -self.final_costs(graph_scale, acoustic_scale)
        by_src = arcs_by_state(self)
        dst = self.arcs[:, 1]
        path, s = [], 0
        # Follow, from the start, an arc whose alpha + cost + beta is the best total.
        while True:
            if beta[s] == finals[s]:
                break
            arcs = by_src[s]
            a = int(arcs[np.argmax(costs[arcs] + beta[dst[arcs]])])
            path.append(a)
            s = int(dst[a])
        return self.make_path(path, final_state=s)

    def make_path(self, arcs: Sequence[int], final_state: int) -> LatticePath:
        arcs = list(arcs)
        w = self.weights[arcs].astype(np.float64).sum(axis=0) if arcs else np.zeros(2)
        f = self.finals[final_state].astype(np.float64)
        words = [int(self.arcs[a, 3]) for a in arcs if self.arcs[a, 3] != 0]
        if self.is_compact:
            ilabels = [x for a in arcs for x in self.alignments[a]]
            ilabels += list(self.final_alignments.get(final_state, ()))
        else:
            ilabels = [int(self.arcs[a, 2]) for a in arcs if self.arcs[a, 2] != 0]
        return LatticePath(arcs, words, ilabels, float(w[0] + f[0]), float(w[1] + f[1]))

    # ------------------------------------------------------------- kaldifst
    def to_kaldifst(self):
        """A kaldifst.Lattice (state-level lattices only: kaldifst has no CompactLattice)."""
        import kaldifst
        if self.is_compact:
            raise ValueError("kaldifst has no CompactLattice type; convert a state-level lattice")
        lat = kaldifst.Lattice()
        for _ in range(self.num_states):
            lat.add_state()
        lat.start = 0
        for (s, d, i, o), (g, a) in zip(self.arcs.tolist(), self.weights.tolist()):
            lat.add_arc(s, kaldifst.LatticeArc(i, o, kaldifst.LatticeWeight(g, a), d))
        for s in np.nonzero(self.is_final())[0].tolist():
            g, a = self.finals[s].tolist()
            lat.set_final(s, kaldifst.LatticeWeight(g, a))
        return lat

    @staticmethod
    def from_kaldifst(lat) -> "Lattice":
        """From a kaldifst.Lattice (its start state becomes state 0), exactly: the weights
        are read from OpenFst's binary form (its text form rounds them to 6 digits)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "lat.fst")
            if not lat.write(path):
                raise RuntimeError("kaldifst could not write the lattice")
            with open(path, "rb") as f:
                data = f.read()
        return _parse_openfst_lattice(data)

    def renumber_start(self, start: int) -> "Lattice":
        """Swap state ``start`` and state 0 so that ``start`` becomes the start state."""
        if start == 0:
            return self
        perm = np.arange(self.num_states)
        perm[[0, start]] = [start, 0]
        arcs = self.arcs.copy()
        arcs[:, :2] = perm[arcs[:, :2]]
        finals = self.finals[perm]
        fa = None if self.final_alignments is None else {int(perm[s]): a for s, a in self.final_alignments.items()}
        return Lattice(arcs, self.weights, finals, self.alignments, fa)


_OPENFST_MAGIC = 2125659606
_ARC_DTYPE = np.dtype([("ilabel", "<i4"), ("olabel", "<i4"), ("graph", "<f4"), ("acoustic", "<f4"), ("dst", "<i4")])


def _parse_openfst_lattice(data: bytes) -> Lattice:
    """Parse OpenFst's binary VectorFst of Kaldi LatticeArc ("lattice4") without symbol tables:
    header (magic, fst type, arc type, version, flags, properties, start, #states, #arcs),
    then per state its final weight (2 floats), its number of arcs (int64) and its arcs
    (ilabel, olabel: int32; weight: 2 floats; next state: int32)."""
    pos = 0

    def take(fmt):
        nonlocal pos
        out = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return out

    def string():
        (n,) = take("<i")
        return take(f"<{n}s")[0].decode()

    (magic,) = take("<i")
    fst_type, arc_type = string(), string()
    if magic != _OPENFST_MAGIC or fst_type != "vector" or arc_type != "lattice4":
        raise ValueError(f"not a VectorFst of lattice4 arcs (magic {magic}, {fst_type}, {arc_type})")
    _version, flags, _props, start, num_states, _num_arcs = take("<iiQqqq")
    if flags & 3:
        raise ValueError("lattices with symbol tables are not supported")
    if num_states == 0:
        return Lattice(np.zeros((0, 4)), np.zeros((0, 2)), np.full((1, 2), math.inf))
    finals = np.empty((num_states, 2), dtype=np.float32)
    arcs, weights = [], []
    for s in range(num_states):
        finals[s] = take("<ff")
        (n,) = take("<q")
        a = np.frombuffer(data, dtype=_ARC_DTYPE, count=n, offset=pos)
        pos += n * _ARC_DTYPE.itemsize
        arcs.append(np.stack([np.full(n, s), a["dst"], a["ilabel"], a["olabel"]], 1))
        weights.append(np.stack([a["graph"], a["acoustic"]], 1))
    return Lattice(np.concatenate(arcs), np.concatenate(weights), finals).renumber_start(start)


def arcs_by_state(lat: Lattice, column: int = 0) -> List[np.ndarray]:
    """Arc indices grouped by source state (or by destination state with ``column=1``)."""
    src = lat.arcs[:, column].astype(np.int64)
    order = np.argsort(src, kind="stable")
    heads = np.searchsorted(src[order], np.arange(lat.num_states + 1))
    return [order[heads[s]:heads[s + 1]] for s in range(lat.num_states)]


def lattice_to_dot(lat: Lattice, word=str, title: str = "lattice") -> str:
    """Graphviz source of a lattice: arcs ``word/graph,acoustic`` (``ilabel:word/...`` for a
    state-level lattice), final states labelled with their weights; ``word`` names word ids."""
    is_final = lat.is_final()
    finals = [f"{lat.finals[s, 0]:.3g},{lat.finals[s, 1]:.3g}" if is_final[s] else None for s in range(lat.num_states)]
    arcs = []
    for (s, d, i, o), (g, a) in zip(lat.arcs.tolist(), lat.weights.tolist()):
        label = word(o) if o else "<eps>"
        arcs.append((s, d, f"{label}/{g:.3g},{a:.3g}" if lat.is_compact else f"{i}:{label}/{g:.3g},{a:.3g}"))
    return to_dot(title, finals, arcs)
