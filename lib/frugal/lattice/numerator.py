"""LF-MMI numerators from supervision lattices (semi-supervised LF-MMI).

Manohar et al. 2018 with the flat-start machinery of `frugal.graph.chain`:

1. the word lattice is pruned with ``prune_beam`` (Kaldi's lattice-prune before
   chain-get-supervision) and determinised, so that it is an epsilon-free word acceptor;
2. its weights become sequence-level log weights: ``-lattice_lm_scale * graph cost`` (Kaldi's
   ``--lattice-lm-scale``; the acoustic costs are dropped), shifted so that the path with
   the lowest graph cost has weight 1 (log 0): every path weight is then <= 1, as in a
   flat-start numerator, and a one-path lattice gives exactly the transcript's numerator;
3. each word arc becomes the alternatives of the word's pronunciations (weights: the
   lexicon's pronunciation probabilities), with optional silence at the start, between
   words and at the end with L.fst's semantics (probability ``sil_prob``; none after a
   pronunciation that ends in a silence phone), as `frugal.graph.chain.transcript_phone_graph`
   does for one word sequence;
4. the phone graph goes through the same biphone/HMM expansion and denominator
   normalisation as flat-start numerators (`expand_to_pdfs`, `compose_with_den`).

The lattice's graph cost already holds the pronunciation and silence probabilities of its
best path's pronunciation (HCLG contains L), and step 3 multiplies in the lexicon's
probabilities of each alternative again: the lattice weight ranks word sequences, the
lexicon weights the pronunciations inside one, as in the flat-start numerator. The
lattice's alignments (time information) are not used: the numerator constrains word
sequences, not word times, like the flat-start numerator (Kaldi's lattice supervision
constrains phone times with a tolerance instead).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from frugal.errors import FrugalError
from frugal.graph.chain import (ChainLexicon, NumeratorBuilder, NumeratorGraph, NumeratorGraphs, PhoneGraph,
                                compose_with_den, expand_to_pdfs, to_numerator)
from frugal.lattice.determinize import determinize_lattice
from frugal.lattice.lattice import Lattice

DEFAULT_LATTICE_LM_SCALE = 0.5


def word_lattice(lat: Lattice, prune_beam: Optional[float] = None, acoustic_scale: float = 1.0) -> Lattice:
    """An epsilon-free, word-deterministic compact lattice (pruned first with ``prune_beam``
    in the cost domain ``graph + acoustic_scale * acoustic``)."""
    return determinize_lattice(lat, prune_beam, 1.0, acoustic_scale)


def lattice_phone_graph(lat: Lattice, lexicon: ChainLexicon,
                        lattice_lm_scale: float = DEFAULT_LATTICE_LM_SCALE) -> PhoneGraph:
    """Steps 2 and 3 of the module docstring for an epsilon-free word lattice (e.g. the
    output of :func:`word_lattice`). Word ids without pronunciations map to the lexicon's
    OOV word; without one, they raise FrugalError."""
    if bool((lat.arcs[:, 3] == 0).any()):
        raise ValueError("the lattice has epsilon arcs: determinise it first (word_lattice)")
    p, sil = lexicon.sil_prob, lexicon.sil_phone
    use_sil = p > 0 and sil is not None
    lp_sil = math.log(p) if use_sil else -math.inf
    lp_nosil = math.log1p(-p) if use_sil else 0.0
    graph_costs = lat.weights[:, 0].astype(np.float64)
    final_graph = lat.finals[:, 0].astype(np.float64)
    # Graph-only Viterbi: best = -(lowest graph cost of a path); adding it to the graph
    # costs gives that path cost 0.
    _, _, best = lat.forward_backward(1.0, 0.0, viterbi=True)
    shift = best if math.isfinite(best) else 0.0

    g = PhoneGraph(1, 0, [], {})
    arcs, finals, new_state = g.arcs, g.finals, g.add_state

    # Per lattice state q > 0: B(q), reached after a word, and S(q), after a word that is
    # followed by the optional silence (S(q) -sil-> B(q)). The start has two entry points:
    # the start itself (no initial silence) and b0 after it.
    boundary = [0] + [new_state() for _ in range(1, lat.num_states)]
    pending_sil = [-1] * lat.num_states
    if use_sil:
        for q in range(1, lat.num_states):
            pending_sil[q] = new_state()
            arcs.append((pending_sil[q], boundary[q], sil, 0.0, 0))
    start_sources = [(0, lp_nosil)]
    if use_sil:
        b0 = new_state()
        arcs.append((0, b0, sil, lp_sil, 0))
        start_sources.append((b0, 0.0))

    def sources(q: int) -> List[Tuple[int, float]]:
        return start_sources if q == 0 else [(boundary[q], 0.0)]

    prons = _pronunciations(lat, lexicon)
    for k, (q, q2, _, word) in enumerate(lat.arcs.tolist()):
        w_lat = -lattice_lm_scale * graph_costs[k]
        for phones, prob in prons[word]:
            for src, extra in sources(q):
                cur, w, out = src, extra + math.log(prob) + w_lat, word
                for ph in phones[:-1]:
                    nxt = new_state()
                    arcs.append((cur, nxt, ph, w, out))
                    cur, w, out = nxt, 0.0, 0
                last = phones[-1]
                if not use_sil or last in lexicon.silence_phones:
                    arcs.append((cur, boundary[q2], last, w, out))
                else:
                    arcs.append((cur, boundary[q2], last, w + lp_nosil, out))
                    arcs.append((cur, pending_sil[q2], last, w + lp_sil, out))
    for q in np.nonzero(lat.is_final())[0].tolist():
        w_final = -lattice_lm_scale * (final_graph[q] + shift)
        for s, extra in sources(q):
            finals[s] = extra + w_final
    return g


def _pronunciations(lat: Lattice, lexicon: ChainLexicon) -> Dict[int, List[Tuple[Tuple[int, ...], float]]]:
    out = {}
    for word in np.unique(lat.arcs[:, 3]).tolist():
        prons = lexicon.prons.get(word)
        if not prons:
            if lexicon.oov is None or not lexicon.prons.get(lexicon.words.get(lexicon.oov)):
                raise FrugalError(f"lattice word id {word} has no pronunciation in the lexicon (and no OOV word)")
            prons = lexicon.prons[lexicon.words[lexicon.oov]]
        out[word] = prons
    return out


class LatticeNumeratorBuilder:
    """Numerators from supervision lattices (see the module docstring), with the lexicon,
    pdf map and normalisation of a flat-start `NumeratorBuilder`."""

    def __init__(self, builder: NumeratorBuilder, lattice_lm_scale: float = DEFAULT_LATTICE_LM_SCALE,
                 prune_beam: Optional[float] = None, acoustic_scale: float = 1.0):
        self.builder = builder
        self.lattice_lm_scale = lattice_lm_scale
        self.prune_beam = prune_beam
        self.acoustic_scale = acoustic_scale

    def build(self, lat: Lattice) -> NumeratorGraph:
        """The numerator of one lattice; a graph without a final state when the lattice has
        no path or the normalisation removes every path."""
        words = word_lattice(lat, self.prune_beam, self.acoustic_scale)
        phone_graph = lattice_phone_graph(words, self.builder.lexicon, self.lattice_lm_scale)
        g = expand_to_pdfs(phone_graph, self.builder.pdf_map, transition_probs=False)
        if self.builder.norm is not None:
            g = compose_with_den(g, self.builder.norm)
        return to_numerator(g)

    def build_batch(self, lats: Sequence[Lattice]) -> NumeratorGraphs:
        return NumeratorGraphs.from_graphs([self.build(lat) for lat in lats])
