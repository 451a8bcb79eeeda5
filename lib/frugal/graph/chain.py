"""LF-MMI training graphs: the pdf expansion of phone graphs, and flat-start (end-to-end) numerators.

Graphs are built directly, without OpenFst, by one construction that expands a
weighted phone acceptor with the left-biphone (or monophone) context and the chain HMM
topology into an epsilon-free graph on pdf ids (`expand_to_pdfs`):

- a state is (phone-graph state q, left context l, current phone p, HMM state k) with
  k = -1 before the first phone; an arc q -p'-> q' of the phone graph becomes an arc into
  (q', p, p', 0) reading the forward pdf of (p, p') (left context 0 at the start, always
  0 for monophones), and each HMM state has its self-loop pdf on a self-loop. This is
  exactly phone graph o C o H of Kaldi with the tree-less `PdfMap` (a context-dependent
  phone is (left, phone), there is no decision tree to merge pdfs).

The denominator graph (`frugal.graph.den_graph`) is the phone LM expanded the same way,
with HMM transition probabilities.

Numerator (Kaldi's chain-e2e, Hadian et al. 2018: compile-train-graphs with
``--transition-scale=0 --self-loop-scale=0`` on L.fst, then chain-make-num-fst-e2e): the
transcript's words with all their pronunciations (weights: pronunciation probabilities of
lexiconp.txt) and optional silence before, between and after the words with Kaldi's L
semantics (probability ``sil_prob`` of L.fst, none after a pronunciation that ends in a
silence phone), expanded without transition weights; then *normalised* like Kaldi's
AddWeightToSupervisionFst: composed on pdf labels with the normalisation FST, which is
the denominator graph entered from a super-initial state with its initial probabilities,
every state final with probability 1. Each numerator path thus carries the denominator
weight of the same pdf sequence (times the lexicon's probabilities, <= 1), so that the
numerator likelihood is at most the denominator likelihood (up to the leaky HMM) and the
objective num - den is <= 0, reaching 0 only for a perfect fit. Paths that the phone LM
does not allow (unseen phone n-grams, e.g. an alternative pronunciation never used for
the LM) drop out, as in Kaldi.

Numerator arcs carry the word id as aux label on the first arc of each word, and in
side arrays the phone of each arc and whether the arc enters a new phone (for alignment).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple

import torch

from frugal.errors import FrugalError
from frugal.fileio import PathLike
from frugal.fsa.fsa import Fsa, FsaVec
from frugal.fsa.leaky_hmm import DenominatorGraph
from frugal.fsa.openfst import fst_arcs, read_fst
from frugal.lang.lang import Lang
from frugal.graph.hmm_topo import PdfMap
from frugal.lang.symbols import SymbolTable

log = logging.getLogger(__name__)

# Transition probabilities of Kaldi's chain topology in the initial transition model
# (the only one a chain model ever has): every HMM state loops with 0.5 and leaves with 0.5.
SELF_LOOP_PROB = 0.5


# --------------------------------------------------------------------------- phone graphs
@dataclass
class PhoneGraph:
    """A weighted epsilon-free phone acceptor: arcs (src, dst, phone, log weight, word id)."""

    num_states: int
    start: int
    arcs: List[Tuple[int, int, int, float, int]]
    finals: Dict[int, float]  # state -> final log weight

    def add_state(self) -> int:
        self.num_states += 1
        return self.num_states - 1

    def arcs_by_src(self) -> List[List[Tuple[int, int, int, float, int]]]:
        out: List[List] = [[] for _ in range(self.num_states)]
        for arc in self.arcs:
            out[arc[0]].append(arc)
        return out


def phone_lm_graph(lm) -> PhoneGraph:
    """A `frugal.lm.phone_lm.PhoneLm` as a phone graph (end of sentence = final weight)."""
    arcs = [(s, dest, p, lp, 0) for s in range(lm.num_states) for p, (lp, dest) in sorted(lm.arcs[s].items())]
    finals = {s: w for s, w in enumerate(lm.final_log_probs) if w > -math.inf}
    return PhoneGraph(lm.num_states, lm.start, arcs, finals)


@dataclass
class PdfGraph:
    """Result of `expand_to_pdfs`: arcs on pdf ids, start state 0, with per-arc phone info."""

    num_states: int
    src: List[int] = field(default_factory=list)
    dst: List[int] = field(default_factory=list)
    pdf: List[int] = field(default_factory=list)
    log_weight: List[float] = field(default_factory=list)
    word: List[int] = field(default_factory=list)
    phone: List[int] = field(default_factory=list)
    phone_start: List[bool] = field(default_factory=list)
    finals: Dict[int, float] = field(default_factory=dict)

    @property
    def num_arcs(self) -> int:
        return len(self.src)

    def add_arc(self, s: int, d: int, pdf: int, w: float, word: int, phone: int, start: bool) -> None:
        self.src.append(s)
        self.dst.append(d)
        self.pdf.append(pdf)
        self.log_weight.append(w)
        self.word.append(word)
        self.phone.append(phone)
        self.phone_start.append(start)


def expand_to_pdfs(graph: PhoneGraph, pdf_map: PdfMap, transition_probs: bool) -> PdfGraph:
    """Phone graph o context o HMM topology (see the module docstring); only accessible
    states are created, the start state is 0. ``transition_probs``: weight self-loops and
    exits with `SELF_LOOP_PROB` (denominator) or not at all (numerator, transition-scale 0).
    """
    topo = pdf_map.topology
    biphone = pdf_map.context_width == 2
    lp_loop = math.log(SELF_LOOP_PROB) if transition_probs else 0.0
    lp_exit = math.log(1.0 - SELF_LOOP_PROB) if transition_probs else 0.0
    out = graph.arcs_by_src()
    ids: Dict[Tuple[int, int, int, int], int] = {}
    stack: List[Tuple[int, int, int, int]] = []

    def state(key: Tuple[int, int, int, int]) -> int:
        sid = ids.get(key)
        if sid is None:
            sid = ids[key] = len(ids)
            stack.append(key)
        return sid

    result = PdfGraph(num_states=0)
    state((graph.start, 0, 0, -1))
    while stack:
        key = stack.pop()
        q, left, phone, k = key
        sid = ids[key]
        exit_w = 0.0
        if k >= 0:
            result.add_arc(sid, sid, pdf_map.pdf(left, phone, topo.self_loop_class(k)), lp_loop,
                           0, phone, False)
            exit_w = lp_exit
            if k < topo.num_states - 1:
                nxt = state((q, left, phone, k + 1))
                result.add_arc(sid, nxt, pdf_map.pdf(left, phone, topo.forward_class(k + 1)), lp_exit,
                               0, phone, False)
                continue
        new_left = phone if biphone else 0
        for _, q2, p2, w, word in out[q]:
            nxt = state((q2, new_left, p2, 0))
            result.add_arc(sid, nxt, pdf_map.pdf(new_left, p2, topo.forward_class(0)), w + exit_w,
                           word, p2, True)
        if q in graph.finals:
            result.finals[sid] = graph.finals[q] + exit_w
    result.num_states = len(ids)
    return result


# --------------------------------------------------------------------------- numerator
@dataclass
class NumeratorGraph:
    """One numerator: an `Fsa` on pdf ids (aux label: word id on a word's first arc) and,
    per arc, its phone and whether it enters a new phone."""

    fsa: Fsa
    arc_phones: torch.Tensor       # int32 [A]
    arc_phone_starts: torch.Tensor  # bool [A]


@dataclass
class NumeratorGraphs:
    """A batch of numerators: an `FsaVec` and the concatenated per-arc phone info."""

    fsas: FsaVec
    arc_phones: torch.Tensor
    arc_phone_starts: torch.Tensor

    @staticmethod
    def from_graphs(graphs: Sequence[NumeratorGraph]) -> "NumeratorGraphs":
        return NumeratorGraphs(FsaVec.from_fsas([g.fsa for g in graphs]),
                               torch.cat([g.arc_phones for g in graphs]),
                               torch.cat([g.arc_phone_starts for g in graphs]))

    def __len__(self) -> int:
        return len(self.fsas)

    def to(self, device) -> "NumeratorGraphs":
        return NumeratorGraphs(self.fsas.to(device), self.arc_phones.to(device),
                               self.arc_phone_starts.to(device))


class _NormalizationFst:
    """The denominator graph as Python lookups for the composition with numerators."""

    def __init__(self, den: DenominatorGraph):
        src = den.arc_src.cpu().tolist()
        dst = den.arc_dst.cpu().tolist()
        pdf = den.arc_pdf.cpu().tolist()
        logw = den.arc_weight.cpu().log().tolist()
        init = den.initial_probs.cpu()
        log_init = init.log().tolist()
        self.out: Dict[Tuple[int, int], List[Tuple[int, float]]] = {}
        # Arcs of the super-initial state after epsilon removal: init(s) * arc, per pdf.
        self.initial: Dict[int, List[Tuple[int, float]]] = {}
        for s, d, p, w in zip(src, dst, pdf, logw):
            self.out.setdefault((s, p), []).append((d, w))
            if log_init[s] > -math.inf:
                self.initial.setdefault(p, []).append((d, w + log_init[s]))


def compose_with_den(num: PdfGraph, norm: _NormalizationFst) -> PdfGraph:
    """num o normalisation FST on pdf labels (Kaldi's AddWeightToSupervisionFst), trimmed."""
    out: List[List[int]] = [[] for _ in range(num.num_states)]
    for a, s in enumerate(num.src):
        out[s].append(a)
    ids: Dict[Tuple[int, int], int] = {}
    stack: List[Tuple[int, int]] = []
    result = PdfGraph(num_states=0)

    def state(key: Tuple[int, int]) -> int:
        sid = ids.get(key)
        if sid is None:
            sid = ids[key] = len(ids) + 1  # 0 is the super-initial state
            stack.append(key)
        return sid

    def add(sid: int, a: int, targets: List[Tuple[int, float]]) -> None:
        n2, w = num.dst[a], num.log_weight[a]
        for d2, dw in targets:
            result.add_arc(sid, state((n2, d2)), num.pdf[a], w + dw, num.word[a], num.phone[a],
                           num.phone_start[a])

    # The numerator's start state 0 is never re-entered (it is the expansion's k = -1 state).
    for a in out[0]:
        add(0, a, norm.initial.get(num.pdf[a], []))
    if 0 in num.finals:
        result.finals[0] = num.finals[0]
    while stack:
        n, d = key = stack.pop()
        sid = ids[key]
        for a in out[n]:
            add(sid, a, norm.out.get((d, num.pdf[a]), []))
        if n in num.finals:
            result.finals[sid] = num.finals[n]
    result.num_states = len(ids) + 1
    return result


def to_numerator(g: PdfGraph) -> NumeratorGraph:
    """A pdf graph (after context/topology expansion and normalisation) as the NumeratorGraph the loss takes."""
    final = torch.full((g.num_states,), -math.inf)
    for s, w in g.finals.items():
        final[s] = w
    arcs = torch.tensor([g.src, g.dst, g.pdf, g.word], dtype=torch.int32).t().reshape(-1, 4).contiguous()
    fsa = Fsa(arcs, torch.tensor(g.log_weight, dtype=torch.float32), final)
    keep_arcs = _connected_arcs(fsa)
    if not bool(keep_arcs.all()):
        connected = fsa.connect()
        return NumeratorGraph(connected, torch.tensor(g.phone, dtype=torch.int32)[keep_arcs],
                              torch.tensor(g.phone_start, dtype=torch.bool)[keep_arcs])
    return NumeratorGraph(fsa, torch.tensor(g.phone, dtype=torch.int32),
                          torch.tensor(g.phone_start, dtype=torch.bool))


def _connected_arcs(fsa: Fsa) -> torch.Tensor:
    """Bool [A]: the arcs `Fsa.connect` keeps (in the same order)."""
    keep = fsa.accessible_states() & fsa.coaccessible_states()
    if not bool(keep[0]):
        return torch.zeros(fsa.num_arcs, dtype=torch.bool)
    return keep[fsa.src.long()] & keep[fsa.dst.long()]


@dataclass
class ChainLexicon:
    """What numerators need from a lang directory: pronunciations by word id, silence."""

    prons: Dict[int, List[Tuple[Tuple[int, ...], float]]]  # word id -> [(phone ids, prob)]
    sil_phone: Optional[int]
    sil_prob: float
    silence_phones: Set[int]
    words: SymbolTable
    phones: SymbolTable
    oov: Optional[str] = None

    @staticmethod
    def from_lang_dir(lang_dir: PathLike) -> "ChainLexicon":
        lang = Lang(lang_dir, need=("phones.txt", "words.txt", "lexiconp.txt", "L.fst", "phones/silence.txt",
                                       "phones/optional_silence.txt"))
        phones, words = lang.phones, lang.words
        prons: Dict[int, List[Tuple[Tuple[int, ...], float]]] = {}
        for p in lang.lexicon().prons:
            prons.setdefault(words[p.word], []).append((tuple(phones[x] for x in p.phones), p.prob))
        opt = lang.dir.phone_class("optional_silence")
        sil_phone = phones[opt[0]] if opt else None
        silence = {phones[s] for s in lang.dir.phone_class("silence")}
        return ChainLexicon(prons, sil_phone, lexicon_sil_prob(read_fst(lang.dir.file("L.fst")), sil_phone),
                            silence, words, phones, lang.oov)

    def word_ids(self, words: Sequence[str], place: str = "transcript") -> List[int]:
        ids = []
        for w in words:
            i = self.words.get(w)
            if i is None or i not in self.prons:
                if self.oov is None:
                    raise FrugalError(f"{place}: word {w!r} is not in the lexicon (no OOV word)")
                i = self.words[self.oov]
            ids.append(i)
        return ids

    def prons_by_word(self) -> Dict[str, List[Tuple[Tuple[int, ...], float]]]:
        return {self.words.symbol(i): p for i, p in self.prons.items()}


def lexicon_sil_prob(L, sil_phone: Optional[int]) -> float:
    """The optional-silence probability L.fst was built with (its start state's silence arc)."""
    if sil_phone is None:
        return 0.0
    a = fst_arcs(L)
    for s, _, i, _, w in a.arcs:
        if s == a.start and i == sil_phone:
            return math.exp(-w)
    return 0.0


def transcript_phone_graph(word_ids: Sequence[int], lexicon: ChainLexicon) -> PhoneGraph:
    """All pronunciations of the words with Kaldi's optional silence (L.fst semantics)."""
    p = lexicon.sil_prob
    sil = lexicon.sil_phone
    lp_sil = math.log(p) if p > 0 else -math.inf
    lp_nosil = math.log1p(-p)
    # State 0: start; then boundaries b_0..b_n (b_i: after word i), allocated as we go.
    g = PhoneGraph(1, 0, [], {})
    arcs, finals, new_state = g.arcs, g.finals, g.add_state

    # Sources of word 1: the start (having skipped the optional silence, epsilon removed)
    # and b_0 after the silence.
    sources: List[Tuple[int, float]] = [(0, lp_nosil if p > 0 else 0.0)]
    if p > 0:
        b0 = new_state()
        arcs.append((0, b0, sil, lp_sil, 0))
        sources.append((b0, 0.0))
    if not word_ids:
        for s, extra in sources:
            finals[s] = extra
        return g
    for word in word_ids:
        b = new_state()
        sil_state = new_state() if p > 0 else -1
        for phones, prob in lexicon.prons[word]:
            for src, extra in sources:
                cur, w, out = src, extra + math.log(prob), word
                for ph in phones[:-1]:
                    nxt = new_state()
                    arcs.append((cur, nxt, ph, w, out))
                    cur, w, out = nxt, 0.0, 0
                last = phones[-1]
                if p == 0 or last in lexicon.silence_phones:
                    arcs.append((cur, b, last, w, out))
                else:
                    arcs.append((cur, b, last, w + lp_nosil, out))
                    arcs.append((cur, sil_state, last, w + lp_sil, out))
        if p > 0:
            arcs.append((sil_state, b, sil, 0.0, 0))
        sources = [(b, 0.0)]
    finals[sources[0][0]] = 0.0
    return g


class NumeratorBuilder:
    """Builds flat-start numerator graphs for transcripts (see the module docstring).

    ``den``: normalise with this denominator graph (Kaldi's e2e numerators); None gives the
    un-normalised numerator (lexicon weights only). Word pronunciation chains are cheap;
    the cost is the expansion and the composition, linear in the transcript length.
    """

    def __init__(self, lexicon: ChainLexicon, pdf_map: PdfMap, den: Optional[DenominatorGraph] = None):
        self.lexicon = lexicon
        self.pdf_map = pdf_map
        self.norm = _NormalizationFst(den) if den is not None else None

    def build(self, words: Sequence[str], place: str = "transcript") -> NumeratorGraph:
        """The numerator of one transcript; a graph without a final state (no path) when
        the normalisation removes every path."""
        g = expand_to_pdfs(transcript_phone_graph(self.lexicon.word_ids(words, place), self.lexicon),
                           self.pdf_map, transition_probs=False)
        if self.norm is not None:
            g = compose_with_den(g, self.norm)
        return to_numerator(g)

    def build_batch(self, transcripts: Sequence[Sequence[str]]) -> NumeratorGraphs:
        return NumeratorGraphs.from_graphs([self.build(t) for t in transcripts])
