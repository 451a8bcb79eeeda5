"""The bridge to OpenFst (through kaldifst): `Fsa` conversion, FST building, reading, I/O.

`from_openfst` / `to_openfst` convert between `Fsa` and OpenFst's StdVectorFst.
Weights: an OpenFst tropical weight is a cost, so ``weight = -score`` both ways; a
non-final OpenFst state (weight Zero = +inf) has final score -inf.

Labels: OpenFst reserves ilabel 0 for epsilon, while every frugal arc consumes a frame
and label 0 is an ordinary column (e.g. the CTC blank). ``label_offset`` says how they
map: OpenFst ilabel ``i`` <-> frugal label ``i - label_offset``. With ``label_offset=1``
the CTC blank 0 is OpenFst ilabel 1 and an OpenFst epsilon becomes label -1 (which
`intersect_dense` rejects: remove epsilons first). Aux labels map to olabels shifted by
``aux_label_offset`` (default 0: aux label 0 = olabel 0 = no output).

OpenFst's start state may be any state; frugal's is 0, so the start state is swapped
with state 0 on the way in (other states keep their numbers).

The other helpers build FSTs through OpenFst's text compiler (one C++ call) rather than
one Python call per arc, and read them back through its printer: both are much faster
than per-arc Python bindings for graphs with millions of arcs.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Sequence, Set, Tuple

import kaldifst
import torch

from frugal.errors import FrugalError
from frugal.fileio import PathLike, atomic_path
from frugal.fsa.fsa import Fsa


def from_openfst(fst: "kaldifst.StdVectorFst", *, label_offset: int, aux_label_offset: int = 0) -> Fsa:
    """Convert an OpenFst StdVectorFst; see the module docstring for labels and weights."""
    num_states = fst.num_states
    if num_states == 0 or fst.start < 0:
        raise ValueError("cannot convert an OpenFst FST without states or start state")
    start = fst.start

    def renumber(s: int) -> int:
        return 0 if s == start else (start if s == 0 else s)

    arcs, scores = [], []
    final_scores = [-math.inf] * num_states
    for new_s in range(num_states):  # in frugal's numbering, so that arcs come grouped by src
        s = renumber(new_s)  # the swap is its own inverse
        for arc in kaldifst.ArcIterator(fst, s):
            arcs.append([new_s, renumber(arc.nextstate),
                         arc.ilabel - label_offset, arc.olabel - aux_label_offset])
            scores.append(-arc.weight.value)
        w = fst.final(s).value
        if w != math.inf:
            final_scores[new_s] = -w
    return Fsa(torch.tensor(arcs, dtype=torch.int32).reshape(-1, 4),
               torch.tensor(scores, dtype=torch.float32),
               torch.tensor(final_scores, dtype=torch.float32))


def to_openfst(fsa: Fsa, *, label_offset: int, aux_label_offset: int = 0) -> "kaldifst.StdVectorFst":
    """Convert to an OpenFst StdVectorFst with start state 0.

    OpenFst stores arcs per source state, so arcs come back from `from_openfst` grouped
    by source state, in their original order within a state (the same FSA exactly when
    it is arc-sorted).
    """
    fst = kaldifst.StdVectorFst()
    for _ in range(fsa.num_states):
        fst.add_state()
    fst.start = 0
    for (s, d, l, a), w in zip(fsa.arcs.tolist(), fsa.scores.tolist()):
        ilabel, olabel = l + label_offset, a + aux_label_offset
        if ilabel < 0 or olabel < 0:
            raise ValueError(f"arc {s}->{d} label {l}:{a} maps to a negative OpenFst label "
                             f"(label_offset={label_offset}, aux_label_offset={aux_label_offset})")
        fst.add_arc(s, kaldifst.StdArc(ilabel, olabel, -w, d))
    for s, w in enumerate(fsa.final_scores.tolist()):
        if w > -math.inf:
            fst.set_final(s, -w)
    return fst


# (src, dst, ilabel, olabel, weight) with the weight a tropical cost (-log prob).
Arc = Tuple[int, int, int, int, float]


@dataclass
class FstArcs:
    """An FST as plain Python data: start state, arcs, final costs."""

    start: int
    arcs: List[Arc]
    finals: Dict[int, float]

    @property
    def num_states(self) -> int:
        states = {self.start} | set(self.finals)
        for s, d, *_ in self.arcs:
            states.add(s)
            states.add(d)
        return max(states) + 1


def build_fst(arcs: Iterable[Arc], finals: Dict[int, float], start: int = 0) -> kaldifst.StdVectorFst:
    """An StdVectorFst with the given arcs and final costs; states keep their numbers."""
    arcs = list(arcs)
    lines = [f"{s} {d} {i} {o} {w!r}" for s, d, i, o, w in arcs if s == start]
    if not lines:
        # OpenFst's compiler takes the first line's source as the start state.
        w = finals.get(start, math.inf)
        lines.append(f"{start} {'Infinity' if math.isinf(w) else repr(w)}")
    lines += [f"{s} {d} {i} {o} {w!r}" for s, d, i, o, w in arcs if s != start]
    lines += [f"{s} {w!r}" for s, w in finals.items() if not math.isinf(w)]
    return kaldifst.compile("\n".join(lines) + "\n", keep_state_numbering=True)


def fst_arcs(fst) -> FstArcs:
    """All arcs and final costs of an FST, parsed from OpenFst's text form."""
    arcs: List[Arc] = []
    finals: Dict[int, float] = {}
    text = fst.to_str(show_weight_one=True)
    for line in text.splitlines():
        f = line.split()
        if len(f) == 5:
            arcs.append((int(f[0]), int(f[1]), int(f[2]), int(f[3]), float(f[4])))
        elif len(f) == 2:
            finals[int(f[0])] = float(f[1])
        elif len(f) == 1:
            finals[int(f[0])] = 0.0
        elif f:
            raise RuntimeError(f"unexpected fstprint line {line!r}")
    return FstArcs(start=fst.start, arcs=arcs, finals=finals)


def fst_size(fst) -> Tuple[int, int]:
    """(number of states, number of arcs)."""
    n = fst.num_states
    return n, sum(fst.num_arcs(s) for s in range(n))


def num_input_epsilon_arcs(fst) -> int:
    """Arcs that consume no input (non-emitting arcs of a decoding graph)."""
    return sum(fst.num_input_epsilons(s) for s in range(fst.num_states))


def map_ilabels_to_epsilon(fst, labels: Set[int]) -> kaldifst.StdVectorFst:
    """A copy of ``fst`` whose input labels in ``labels`` become epsilon (Kaldi's fstrmsymbols)."""
    a = fst_arcs(fst)
    arcs = [(s, d, 0 if i in labels else i, o, w) for s, d, i, o, w in a.arcs]
    return build_fst(arcs, a.finals, a.start)


def write_fst(fst, path: PathLike) -> None:
    """Write an FST in OpenFst binary form, atomically."""
    with atomic_path(path) as tmp:
        if not fst.write(str(tmp)):
            raise FrugalError(f"{path}: cannot write FST")


_FST_MAGIC = (2125659606).to_bytes(4, "little")  # OpenFst's kFstMagicNumber, native byte order


def read_fst(path: PathLike) -> kaldifst.StdVectorFst:
    if not Path(path).is_file():
        raise FrugalError(f"{path}: no such FST file")
    with open(path, "rb") as f:  # OpenFst would print its own error line for a foreign file
        if f.read(4) != _FST_MAGIC:
            raise FrugalError(f"{path}: not an OpenFst binary FST (wrong magic number)")
    with _captured_stderr() as said:  # OpenFst's own "ERROR: ..." line would come before ours
        fst = kaldifst.StdVectorFst.read(str(path))
    if fst is None:
        reason = said().strip().splitlines()
        raise FrugalError(f"{path}: not a readable OpenFst StdVectorFst (truncated?)"
                          + (f": {reason[-1]}" if reason else ""))
    return fst


@contextlib.contextmanager
def _captured_stderr():
    """File descriptor 2 into a temporary file while the block runs (C++ libraries write
    there directly); yields a function that returns what was written."""
    said: List[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lambda: "".join(said)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            said.append(tmp.read().decode(errors="replace"))


def iter_paths(fst, max_arcs: int) -> Iterator[Tuple[List[int], List[int], float]]:
    """Every successful path with at most ``max_arcs`` arcs: (ilabels, olabels, cost).

    Epsilons (0) are dropped from the label sequences; the cost is the path's arc costs
    plus the final cost. Brute force (exponential): for checking small graphs.
    """
    a = fst_arcs(fst)
    out: Dict[int, List[Arc]] = {}
    for arc in a.arcs:
        out.setdefault(arc[0], []).append(arc)

    def walk(state: int, ilabels: List[int], olabels: List[int], cost: float, depth: int):
        if state in a.finals:
            yield [x for x in ilabels if x], [x for x in olabels if x], cost + a.finals[state]
        if depth == max_arcs:
            return
        for _, dst, i, o, w in out.get(state, []):
            yield from walk(dst, ilabels + [i], olabels + [o], cost + w, depth + 1)

    if a.start >= 0:
        yield from walk(a.start, [], [], 0.0, 0)


def linear_fst(labels: Sequence[int]) -> kaldifst.StdVectorFst:
    """A linear acceptor of ``labels`` (ilabel == olabel)."""
    arcs = [(k, k + 1, x, x, 0.0) for k, x in enumerate(labels)]
    return build_fst(arcs, {len(labels): 0.0})
