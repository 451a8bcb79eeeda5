"""CTC graphs for label sequences, built directly as tensors (graph CTC, alignment).

The graph of tokens l_1..l_U has the 2U+1 CTC positions (blank, l_1, blank, ..., l_U,
blank) as states 1..2U+1 plus a start state 0 that has consumed no frame. Entering
position k emits that position's symbol, so every arc consumes one frame: a self-loop
on each position, an arc to the next position, and a skip from l_i to l_{i+1} over the
blank between them when l_i != l_{i+1}. The last blank and l_U are final. Arc scores
are 0 and aux labels are the token on the first frame of each token, 0 elsewhere, so
that a best path's aux labels read back the tokens.
"""
from __future__ import annotations

from typing import Sequence

import torch

from frugal.fsa.fsa import Fsa, FsaVec


def ctc_graph(tokens: Sequence[int], blank: int = 0) -> Fsa:
    tokens = [int(t) for t in tokens]
    if any(t == blank or t < 0 for t in tokens):
        raise ValueError(f"tokens must be >= 0 and differ from the blank {blank}: {tokens}")
    symbols = [blank]
    for t in tokens:
        symbols += [t, blank]
    arcs = []

    def enter(src: int, pos: int, first: bool) -> None:
        sym = symbols[pos]
        arcs.append([src, pos + 1, sym, sym if first and sym != blank else 0])

    enter(0, 0, True)
    if tokens:
        enter(0, 1, True)
    for pos in range(len(symbols)):
        enter(pos + 1, pos, False)  # self-loop: repeats of the same symbol
        if pos + 1 < len(symbols):
            enter(pos + 1, pos + 1, True)
        if pos % 2 == 1 and pos + 2 < len(symbols) and symbols[pos] != symbols[pos + 2]:
            enter(pos + 1, pos + 2, True)
    num_states = len(symbols) + 1
    final_scores = torch.full((num_states,), float("-inf"))
    final_scores[num_states - 1] = 0.0
    if tokens:
        final_scores[num_states - 2] = 0.0
    else:
        final_scores[0] = 0.0  # the empty sequence of zero frames
    return Fsa(torch.tensor(arcs, dtype=torch.int32), torch.zeros(len(arcs)), final_scores)


def ctc_graphs(token_seqs: Sequence[Sequence[int]], blank: int = 0) -> FsaVec:
    """One `ctc_graph` per sequence, as an FsaVec."""
    return FsaVec.from_fsas([ctc_graph(t, blank) for t in token_seqs])
