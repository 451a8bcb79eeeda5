"""Conversion between `Fsa` and OpenFst's StdVectorFst (through kaldifst).

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
"""
from __future__ import annotations

import math

import kaldifst
import torch

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
