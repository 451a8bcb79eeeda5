"""The lexicon transducer L (phones -> words) with optional silence, as Kaldi builds it.

Kaldi's make_lexicon_fst.pl semantics, with p = sil_prob (0 <= p < 1):

- a start state 0, a loop state 1 (the only final state, cost 0) and a silence state 2;
- 0 -> 1 by <eps> with cost -log(1-p), or by the silence phone with cost -log(p)
  (an utterance starts with optional silence);
- each pronunciation is a chain of arcs from the loop state; its first arc outputs the
  word and carries the pronunciation cost -log(prob); after its last phone the chain
  returns to the loop state with cost -log(1-p) or to the silence state with cost
  -log(p), from which the silence phone (cost 0) leads to the loop state. A
  pronunciation that ends with a silence phone returns to the loop state only.
- p = 0 gives a single start/final state and no optional silence.

L_disambig additionally has each pronunciation's disambiguation symbol after its
phones, the symbol #k_sil between the optional silence and the loop state (so that
"silence" and "no silence" differ), and #0:#0 self-loops that let the LM's backoff
symbol pass through when L_disambig is composed with G.
"""
from __future__ import annotations

import math
from typing import Iterable, List, Optional, Sequence, Set, Tuple

import kaldifst

from frugal.errors import BadValue, FrugalError
from frugal.fsa.openfst import Arc, build_fst

# (word id, phone ids (with the disambiguation symbol last, for L_disambig), pron prob)
LexEntry = Tuple[int, Sequence[int], float]


def make_lexicon_fst(entries: Iterable[LexEntry], sil_phone: Optional[int], sil_prob: float,
                     silence_phones: Set[int] = frozenset(),
                     sil_disambig: Optional[int] = None) -> kaldifst.StdVectorFst:
    """Build L (or L_disambig without the #0 self-loops, if ``sil_disambig`` is given).

    Arcs are sorted by output label, as composition with G needs.
    """
    if not 0.0 <= sil_prob < 1.0:
        raise BadValue("sil_prob", sil_prob, "must be in [0, 1)")
    if sil_prob > 0 and sil_phone is None:
        raise FrugalError("a silence phone is needed when --sil-prob > 0")
    arcs: List[Arc] = []
    if sil_prob == 0:
        start = loop = 0
        next_state = 1
        sil_cost = nosil_cost = 0.0
    else:
        start, loop, sil_state = 0, 1, 2
        sil_cost, nosil_cost = -math.log(sil_prob), -math.log(1.0 - sil_prob)
        arcs.append((start, loop, 0, 0, nosil_cost))
        if sil_disambig is None:
            arcs.append((start, loop, sil_phone, 0, sil_cost))
            arcs.append((sil_state, loop, sil_phone, 0, 0.0))
            next_state = 3
        else:
            # Silence goes through an extra state whose exit carries #k_sil.
            dis_state = 3
            arcs.append((start, dis_state, sil_phone, 0, sil_cost))
            arcs.append((sil_state, dis_state, sil_phone, 0, 0.0))
            arcs.append((dis_state, loop, sil_disambig, 0, 0.0))
            next_state = 4
    for word, phones, prob in entries:
        if not phones:
            raise ValueError(f"word id {word}: empty pronunciation")
        cost = -math.log(prob)
        src, out = loop, word
        for k, ph in enumerate(phones):
            if k < len(phones) - 1:
                arcs.append((src, next_state, ph, out, cost))
                src, out, cost = next_state, 0, 0.0
                next_state += 1
            elif sil_prob == 0 or ph in silence_phones:
                arcs.append((src, loop, ph, out, cost))
            else:
                arcs.append((src, loop, ph, out, cost + nosil_cost))
                arcs.append((src, sil_state, ph, out, cost + sil_cost))
    fst = build_fst(arcs, {loop: 0.0}, start)
    kaldifst.arcsort(fst, sort_type="olabel")
    return fst


def add_disambig_self_loops(fst: kaldifst.StdVectorFst, phone_disambig0: int,
                            word_disambig0: int) -> None:
    """Add #0:#0 self-loops where words are output or at final states (in place)."""
    kaldifst.add_self_loops(fst, isyms=[phone_disambig0], osyms=[word_disambig0])
    kaldifst.arcsort(fst, sort_type="olabel")
