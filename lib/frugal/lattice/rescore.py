"""LM rescoring of lattices with word n-grams used as deterministic on-demand FSTs."""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import numpy as np

from frugal.fsa.openfst import fst_arcs
from frugal.lattice.lattice import Alignment, Lattice, arcs_by_state


# ----------------------------------------------------------------------- LM rescore
class BackoffLm:
    """A word n-gram G (from kaldilm's arpa2fst, as made by make_grammar_fst) used as a
    deterministic on-demand FST: a word missing at a state follows the backoff arc (input
    #0 or epsilon, no output) and is looked up again, which is the ARPA backoff rule
    exactly (plain epsilon composition could also take a backoff path where an explicit
    n-gram exists)."""

    def __init__(self, G):
        a = fst_arcs(G)
        self.start = a.start
        self.arcs: Dict[int, Dict[int, Tuple[int, float]]] = {}
        self.backoff: Dict[int, Tuple[int, float]] = {}
        for s, d, _, o, w in a.arcs:
            if o == 0:
                self.backoff[s] = (d, w)
            else:
                self.arcs.setdefault(s, {})[o] = (d, w)
        self.finals = a.finals

    def step(self, state: int, word: int) -> Optional[Tuple[int, float]]:
        """(next state, cost) of ``word`` after ``state``, or None if the LM lacks it."""
        cost = 0.0
        while True:
            hit = self.arcs.get(state, {}).get(word)
            if hit is not None:
                return hit[0], cost + hit[1]
            if state not in self.backoff:
                return None
            state, c = self.backoff[state]
            cost += c

    def final(self, state: int) -> float:
        cost = 0.0
        while True:
            if state in self.finals:
                return cost + self.finals[state]
            if state not in self.backoff:
                return math.inf
            state, c = self.backoff[state]
            cost += c


def lm_rescore(lat: Lattice, old_lm: BackoffLm, new_lm: BackoffLm, old_scale: float = 1.0,
               new_scale: float = 1.0) -> Lattice:
    """Replace the LM part of the graph costs: each path's graph cost loses
    ``old_scale`` x its old-LM cost and gains ``new_scale`` x its new-LM cost (Kaldi's
    lattice-lmrescore --lm-scale=-1 with the old G, then --lm-scale=1 with the new one).
    States are split by the pair of LM histories. Paths with a word that one of the LMs
    cannot score are dropped."""
    by_src = arcs_by_state(lat)
    start = (0, old_lm.start, new_lm.start)
    index = {start: 0}
    todo = [start]
    arcs, weights, aligns, finals = [], [], [], []
    final_aligns: Dict[int, Alignment] = {}
    while todo:
        q, og, ng = triple = todo.pop()
        i = index[triple]
        while len(finals) <= i:
            finals.append((math.inf, math.inf))
        if lat.is_final()[q]:
            f_old, f_new = old_lm.final(og), new_lm.final(ng)
            if math.isfinite(f_old) and math.isfinite(f_new):
                g, a = lat.finals[q].tolist()
                finals[i] = (g - old_scale * f_old + new_scale * f_new, a)
                if lat.is_compact and lat.final_alignments.get(q):
                    final_aligns[i] = lat.final_alignments[q]
        for k in by_src[q].tolist():
            _, d, il, w = lat.arcs[k].tolist()
            g, a = lat.weights[k].tolist()
            if w == 0:
                nxt = (d, og, ng)
            else:
                so, sn = old_lm.step(og, w), new_lm.step(ng, w)
                if so is None or sn is None:
                    continue
                nxt = (d, so[0], sn[0])
                g = g - old_scale * so[1] + new_scale * sn[1]
            if nxt not in index:
                index[nxt] = len(index)
                todo.append(nxt)
            arcs.append((i, index[nxt], il, w))
            weights.append((g, a))
            if lat.is_compact:
                aligns.append(lat.alignments[k])
    while len(finals) < len(index):
        finals.append((math.inf, math.inf))
    return Lattice(np.array(arcs, dtype=np.int32).reshape(-1, 4), np.array(weights, dtype=np.float32).reshape(-1, 2),
                   np.array(finals, dtype=np.float32).reshape(-1, 2),
                   aligns if lat.is_compact else None, final_aligns if lat.is_compact else None).connect()
