"""Helpers shared by tests/test_fsa_*.py: random graphs, brute-force path enumeration."""
from __future__ import annotations

import math
from typing import List, Tuple

import pytest
import torch

from frugal.fsa import Fsa

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
]


def random_fsa(gen: torch.Generator, num_states: int, num_arcs: int, num_labels: int,
               num_final: int = 2, unique_aux: bool = False) -> Fsa:
    """Random epsilon-free FSA; arcs go anywhere (cycles, self-loops, unreachable states).

    With ``unique_aux`` the aux label of arc i is i + 1, so that a path's aux labels
    name its arcs.
    """
    src = torch.randint(0, num_states, (num_arcs,), generator=gen)
    dst = torch.randint(0, num_states, (num_arcs,), generator=gen)
    src[0] = 0  # at least one arc leaves the start state
    labels = torch.randint(0, num_labels, (num_arcs,), generator=gen)
    aux = torch.arange(1, num_arcs + 1) if unique_aux else torch.randint(0, 5, (num_arcs,), generator=gen)
    arcs = torch.stack([src, dst, labels, aux], dim=1).int()
    scores = torch.randn(num_arcs, generator=gen)
    final_scores = torch.full((num_states,), -math.inf)
    finals = torch.randperm(num_states, generator=gen)[:num_final]
    final_scores[finals] = torch.randn(len(finals), generator=gen)
    return Fsa(arcs, scores, final_scores)


def enumerate_paths(fsa: Fsa, dense: torch.Tensor) -> List[Tuple[float, List[int]]]:
    """All successful paths of ``len(dense)`` arcs with their float64 scores (brute force)."""
    arcs = fsa.arcs.tolist()
    scores = fsa.scores.double().tolist()
    finals = fsa.final_scores.double().tolist()
    frames = dense.double().tolist()
    out = []

    def walk(state: int, t: int, score: float, path: List[int]) -> None:
        if t == len(frames):
            if finals[state] > -math.inf:
                out.append((score + finals[state], list(path)))
            return
        for i, (s, d, label, _) in enumerate(arcs):
            if s == state:
                path.append(i)
                walk(d, t + 1, score + scores[i] + frames[t][label], path)
                path.pop()

    walk(0, 0, 0.0, [])
    return out


def logsumexp(values: List[float]) -> float:
    if not values:
        return -math.inf
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))
