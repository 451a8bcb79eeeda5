"""LF-MMI training graphs: the denominator graph and flat-start (end-to-end) numerators.

Both graphs are built directly, without OpenFst, by one construction that expands a
weighted phone acceptor with the left-biphone (or monophone) context and the chain HMM
topology into an epsilon-free graph on pdf ids (`expand_to_pdfs`):

- a state is (phone-graph state q, left context l, current phone p, HMM state k) with
  k = -1 before the first phone; an arc q -p'-> q' of the phone graph becomes an arc into
  (q', p, p', 0) reading the forward pdf of (p, p') (left context 0 at the start, always
  0 for monophones), and each HMM state has its self-loop pdf on a self-loop. This is
  exactly phone graph o C o H of Kaldi with the tree-less `PdfMap` (a context-dependent
  phone is (left, phone), there is no decision tree to merge pdfs).

Denominator (Kaldi's chain-make-den-fst): the phone LM (`frugal.lm.phone_lm`) expanded
with HMM transition probabilities: self-loop 0.5, exit 0.5 (the chain topology's
initial transition model, transition-scale 1). The phone LM is stochastic (each state's
arc and end-of-sentence probabilities sum to 1), so the expanded graph is stochastic too:
this is what Kaldi's weight pushing (``PushInLog<REWEIGHT_TO_INITIAL>``) produces. Kaldi
then minimises den.fst; frugal does not (the HMM is the same distribution over pdf
sequences, on a few more states). The initial probabilities are Kaldi's leaky-HMM
distribution (`kaldi_initial_probs`, 100 iterations from the start state); every state is
final with probability 1, as in Kaldi's DenominatorGraph.

Phone sequences for the phone LM come from the transcripts through the lexicon, as
Kaldi's flat-start recipe (steps/nnet3/chain/e2e/text_to_phones.py) does: one
pronunciation a word (frugal: the most probable one, the first on ties; Kaldi's script
takes the last listed) and the optional silence inserted at random, with probability
``edge_sil_prob`` (0.8) at the start and the end and ``between_sil_prob`` (0.2) between
words, from a seeded generator so that the graph is reproducible.

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
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import torch

from frugal.errors import FrugalError
from frugal.fileio import PathLike, atomic_path
from frugal.fsa.fsa import Fsa, FsaVec
from frugal.fsa.leaky_hmm import DenominatorGraph, kaldi_initial_probs
from frugal.fsa.openfst import fst_arcs, read_fst
from frugal.graph.hmm_topo import HmmTopology, PdfMap
from frugal.lang.lexicon import read_lexicon
from frugal.lang.symbols import SymbolTable, read_symbol_list

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


# --------------------------------------------------------------------------- denominator
def phone_lm_training_sequences(transcripts: Iterable[Sequence[str]], lexicon_prons: Dict[str, List[Tuple[Tuple[int, ...], float]]],
                                sil_phone: Optional[int], edge_sil_prob: float = 0.8,
                                between_sil_prob: float = 0.2, oov: Optional[str] = None,
                                seed: int = 0) -> List[List[int]]:
    """Phone sequences of the transcripts for the phone LM (see the module docstring).

    ``lexicon_prons[word]`` lists (phone ids, prob); the most probable pronunciation is
    used (the first of equally probable ones).
    """
    rng = random.Random(seed)
    best = {w: max(prons, key=lambda pp: pp[1])[0] for w, prons in lexicon_prons.items() if prons}
    seqs = []
    for words in transcripts:
        seq: List[int] = []
        if sil_phone is not None and rng.random() < edge_sil_prob:
            seq.append(sil_phone)
        for i, w in enumerate(words):
            if w not in best:
                if oov is None or oov not in best:
                    raise FrugalError(f"word {w!r} is not in the lexicon (and no OOV word)")
                w = oov
            seq.extend(best[w])
            prob = between_sil_prob if i < len(words) - 1 else edge_sil_prob
            if sil_phone is not None and rng.random() < prob:
                seq.append(sil_phone)
        seqs.append(seq)
    return seqs


@dataclass
class ChainDenGraph:
    """The denominator graph with what numerators need to match it."""

    graph: DenominatorGraph
    pdf_map: PdfMap
    phones: List[int]   # the phone ids of the pdf map
    start: int = 0

    @property
    def num_pdfs(self) -> int:
        return self.pdf_map.num_pdfs

    def save(self, path: PathLike) -> None:
        """torch.save of plain tensors and numbers (readable with ``weights_only=True``)."""
        g = self.graph
        topo = self.pdf_map.topology
        d = {"kind": "ChainDenGraph", "num_states": g.num_states, "num_pdfs": g.num_pdfs,
             "arc_src": g.arc_src.cpu(), "arc_dst": g.arc_dst.cpu(), "arc_pdf": g.arc_pdf.cpu(),
             "arc_log_weight": g.arc_weight.cpu().log(), "initial_log_probs": g.initial_probs.cpu().log(),
             "final_log_probs": g.final_probs.cpu().log(), "start": self.start,
             "phones": torch.tensor(self.phones, dtype=torch.int64),
             "hmm_states": topo.num_states, "separate_self_loop_pdf": topo.separate_self_loop_pdf,
             "context_width": self.pdf_map.context_width}
        with atomic_path(path) as tmp:
            torch.save(d, tmp)

    @staticmethod
    def load(path: PathLike) -> "ChainDenGraph":
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises several types for a corrupt or foreign file
            raise FrugalError(f"{path}: not a saved denominator graph: {e}") from None
        if not isinstance(d, dict) or d.get("kind") != "ChainDenGraph":
            raise FrugalError(f"{path}: not a saved denominator graph (frugal make-den-graph)")
        topo = HmmTopology(int(d["hmm_states"]), bool(d["separate_self_loop_pdf"]))
        phones = d["phones"].tolist()
        pdf_map = PdfMap(phones, topo, int(d["context_width"]))
        graph = DenominatorGraph.from_log_weights(
            d["arc_src"], d["arc_dst"], d["arc_pdf"], d["arc_log_weight"], d["initial_log_probs"],
            d["final_log_probs"], int(d["num_states"]), int(d["num_pdfs"]))
        return ChainDenGraph(graph, pdf_map, phones, int(d["start"]))


def make_den_graph(phone_lm, pdf_map: PdfMap, phones: Sequence[int]) -> ChainDenGraph:
    """The denominator graph of a phone LM (see the module docstring)."""
    g = expand_to_pdfs(phone_lm_graph(phone_lm), pdf_map, transition_probs=True)
    src = torch.tensor(g.src, dtype=torch.int64)
    dst = torch.tensor(g.dst, dtype=torch.int64)
    weight = torch.tensor(g.log_weight, dtype=torch.float64).exp()
    final = torch.zeros(g.num_states, dtype=torch.float64)
    for s, w in g.finals.items():
        final[s] = math.exp(w)
    init = kaldi_initial_probs(g.num_states, src, dst, weight, start_state=0, final_probs=final)
    graph = DenominatorGraph(src, dst, torch.tensor(g.pdf, dtype=torch.int64), weight, init,
                             torch.ones(g.num_states, dtype=torch.float64), g.num_states,
                             pdf_map.num_pdfs)
    return ChainDenGraph(graph, pdf_map, list(phones), 0)


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
    def from_lang_dir(lang: PathLike) -> "ChainLexicon":
        lang = Path(lang)
        for name in ("phones.txt", "words.txt", "lexiconp.txt", "L.fst", "phones/silence.txt",
                     "phones/optional_silence.txt"):
            if not (lang / name).is_file():
                raise FrugalError(f"{lang}: not a lang directory (no {name}); run frugal prepare-lang")
        phones = SymbolTable.read(lang / "phones.txt")
        words = SymbolTable.read(lang / "words.txt")
        lexicon = read_lexicon(lang / "lexiconp.txt", with_probs=True)
        prons: Dict[int, List[Tuple[Tuple[int, ...], float]]] = {}
        for p in lexicon.prons:
            prons.setdefault(words[p.word], []).append((tuple(phones[x] for x in p.phones), p.prob))
        opt = read_symbol_list(lang / "phones/optional_silence.txt")
        sil_phone = phones[opt[0]] if opt else None
        silence = {phones[s] for s in read_symbol_list(lang / "phones/silence.txt")}
        oov_file = lang / "oov.txt"
        oov = oov_file.read_text().split()[0] if oov_file.is_file() else None
        return ChainLexicon(prons, sil_phone, lexicon_sil_prob(read_fst(lang / "L.fst"), sil_phone),
                            silence, words, phones, oov)

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
    arcs: List[Tuple[int, int, int, float, int]] = []
    # State 0: start; then boundaries b_0..b_n (b_i: after word i), allocated as we go.
    num_states = 1
    finals: Dict[int, float] = {}

    def new_state() -> int:
        nonlocal num_states
        num_states += 1
        return num_states - 1

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
        return PhoneGraph(num_states, 0, arcs, finals)
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
    return PhoneGraph(num_states, 0, arcs, finals)


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


def den_graph_info(den: ChainDenGraph, lm) -> Dict:
    return {"phone_lm_states": lm.num_states, "phone_lm_arcs": lm.num_arcs,
            "den_states": den.graph.num_states, "den_arcs": den.graph.num_arcs,
            "num_pdfs": den.num_pdfs, "context_width": den.pdf_map.context_width,
            "hmm_states": den.pdf_map.topology.num_states}
