"""Helpers on plain arc arrays that every graph type shares (Fsa, Lattice): reachability, Graphviz."""
from __future__ import annotations

from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np


def reachable(num_states: int, frm: np.ndarray, to: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
    """Bool [num_states]: states reachable from ``seeds`` following arcs frm -> to."""
    frm = np.asarray(frm, dtype=np.int64)
    order = np.argsort(frm, kind="stable")
    heads = np.searchsorted(frm[order], np.arange(num_states + 1)).tolist()
    targets = np.asarray(to, dtype=np.int64)[order].tolist()
    seen = np.zeros(num_states, dtype=bool)
    stack = list(seeds)
    seen[stack] = True
    while stack:
        s = stack.pop()
        for d in targets[heads[s]:heads[s + 1]]:
            if not seen[d]:
                seen[d] = True
                stack.append(d)
    return seen


def to_dot(title: str, final_labels: Sequence[Optional[str]], arcs: Iterable[Tuple[int, int, str]]) -> str:
    """Graphviz source: state s is a double circle labelled ``s/final_labels[s]`` when that
    label is not None (a final state), else a circle; arcs are (src, dst, label)."""
    out: List[str] = [f'digraph "{title}" {{', "  rankdir = LR;"]
    for s, final in enumerate(final_labels):
        if final is not None:
            out.append(f'  {s} [shape = doublecircle, label = "{s}/{final}"];')
        else:
            out.append(f'  {s} [shape = circle, label = "{s}"];')
    out += [f'  {s} -> {d} [label = "{label}"];' for s, d, label in arcs]
    return "\n".join(out + ["}"]) + "\n"
