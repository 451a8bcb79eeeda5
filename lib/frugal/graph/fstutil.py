"""Small helpers around kaldifst: build FSTs from arc lists, read arcs back, sizes, I/O.

FSTs are built through OpenFst's text compiler (one C++ call) rather than one Python
call per arc, and read back through its printer: both are much faster than per-arc
Python bindings for graphs with millions of arcs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Sequence, Set, Tuple

import kaldifst

from frugal.errors import FrugalError
from frugal.fileio import PathLike, atomic_path

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


def read_fst(path: PathLike) -> kaldifst.StdVectorFst:
    if not Path(path).is_file():
        raise FrugalError(f"{path}: no such FST file")
    fst = kaldifst.StdVectorFst.read(str(path))
    if fst is None:
        raise FrugalError(f"{path}: not an OpenFst StdVectorFst")
    return fst


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
