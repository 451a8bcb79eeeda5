"""CTC topologies H as epsilon-free transducers: frame labels -> tokens.

Label conventions (shared with HLG): the *input* label of an arc is ``token id + 1``, so
that the blank (token 0) is input label 1 and input label 0 stays OpenFst's epsilon; every
arc consumes exactly one frame. The *output* label is the token id, with blank and
repeated frames output as epsilon (0). All states are final.

- standard: a blank state and one state per token ("last frame was this token"); a token
  may last several frames (self-loop), two equal tokens in a row need a blank between
  them. (N + 1)^2 arcs for N tokens.
- compact: one state; each token occupies exactly one frame (no repeat self-loop) and
  blanks fill the frames around and between tokens, so equal tokens in a row need no
  blank. N + 1 arcs; this trades CTC's repeat rule for a graph linear in N.
"""
from __future__ import annotations

from typing import List, Sequence

import kaldifst

from frugal.fsa.openfst import Arc, build_fst


def ctc_topo(tokens: Sequence[int], compact: bool = False) -> kaldifst.StdVectorFst:
    """H for the non-blank ``tokens`` (ids >= 1; the blank is id 0), arcs sorted by output label."""
    if any(t <= 0 for t in tokens):
        raise ValueError("CTC tokens must be ids >= 1 (0 is the blank)")
    tokens = sorted(set(tokens))
    arcs: List[Arc] = []
    if compact:
        arcs.append((0, 0, 1, 0, 0.0))
        arcs += [(0, 0, t + 1, t, 0.0) for t in tokens]
        finals = {0: 0.0}
    else:
        # State 0: after a blank (or at the start); state k: after a frame of tokens[k-1].
        state = {t: k + 1 for k, t in enumerate(tokens)}
        for src in [0] + list(state.values()):
            arcs.append((src, 0, 1, 0, 0.0))
            for t in tokens:
                arcs.append((src, state[t], t + 1, 0 if src == state[t] else t, 0.0))
        finals = {s: 0.0 for s in range(len(tokens) + 1)}
    fst = build_fst(arcs, finals)
    kaldifst.arcsort(fst, sort_type="olabel")
    return fst
