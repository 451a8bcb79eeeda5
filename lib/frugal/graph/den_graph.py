"""The LF-MMI denominator graph: the phone LM of the training transcripts, expanded.

Kaldi's flat-start recipe (chain-est-phone-lm, chain-make-den-fst): transcripts -> phone
sequences (most probable pronunciation, random optional silence) -> un-smoothed phone
n-gram LM (`frugal.lm.phone_lm`) -> biphone (or monophone) context and chain HMM topology
-> den graph with leaky-HMM initial probabilities. `frugal.graph.chain` has the expansion
and the numerators that are normalised by this graph.

Phone sequences for the phone LM come from the transcripts through the lexicon, as
Kaldi's flat-start recipe (steps/nnet3/chain/e2e/text_to_phones.py) does: one
pronunciation a word (frugal: the most probable one, the first on ties; Kaldi's script
takes the last listed) and the optional silence inserted at random, with probability
``edge_sil_prob`` (0.8) at the start and the end and ``between_sil_prob`` (0.2) between
words, from a seeded generator so that the graph is reproducible.

The expansion with HMM transition probabilities (self-loop 0.5, exit 0.5: the chain
topology's initial transition model, transition-scale 1) keeps the phone LM's stochastic
normalisation, which is what Kaldi's weight pushing produces; Kaldi then minimises
den.fst, frugal does not (the same distribution over pdf sequences on a few more
states). The initial probabilities are Kaldi's leaky-HMM distribution
(`kaldi_initial_probs`, 100 iterations from the start state); every state is final with
probability 1, as in Kaldi's DenominatorGraph.
"""
from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from frugal.data.cuts import read_transcripts
from frugal.dirs import GraphFile
from frugal.errors import BadValue, FrugalError
from frugal.fileio import PathLike, load_weights_only, save_weights_only
from frugal.fsa.leaky_hmm import DenominatorGraph, kaldi_initial_probs
from frugal.graph.chain import ChainLexicon, expand_to_pdfs, phone_lm_graph
from frugal.graph.hmm_topo import HmmTopology, PdfMap
from frugal.lang.lang import Lang
from frugal.lm.phone_lm import estimate_phone_lm

log = logging.getLogger(__name__)


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
        save_weights_only(path, d)

    @staticmethod
    def load(path: PathLike) -> "ChainDenGraph":
        d = load_weights_only(path, "a saved denominator graph (frugal make-den-graph)", ("kind", "ChainDenGraph"))
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


def den_graph_info(den: ChainDenGraph, lm) -> Dict:
    return {"phone_lm_states": lm.num_states, "phone_lm_arcs": lm.num_arcs,
            "den_states": den.graph.num_states, "den_arcs": den.graph.num_arcs,
            "num_pdfs": den.num_pdfs, "context_width": den.pdf_map.context_width,
            "hmm_states": den.pdf_map.topology.num_states}


def build_den_graph(lang_dir: PathLike, sources: Sequence[Tuple[PathLike, float]], output: PathLike,
                    ngram_order: int = 4, no_prune_ngram_order: int = 3, num_extra_states: int = 2000,
                    hmm_states: int = 1, context: str = "biphone", edge_sil_prob: float = 0.8,
                    between_sil_prob: float = 0.2, seed: int = 0) -> Dict:
    """The den graph of the transcripts of cut manifests (``sources``: (manifest, weight),
    each manifest's transcripts counted ``weight`` times) into ``output`` (den.pt), with
    phone_lm.fst, pdf_map.txt and OUTPUT.json (sizes, options, times) beside it."""
    for name, value in (("edge_sil_prob", edge_sil_prob), ("between_sil_prob", between_sil_prob)):
        if not 0.0 <= value <= 1.0:
            raise BadValue(name, value, "must be in [0, 1]")
    if context not in ("biphone", "mono"):
        raise BadValue("context", context, "must be biphone or mono")
    if hmm_states not in (1, 2):
        raise BadValue("hmm_states", hmm_states, "must be 1 or 2")
    t0 = time.perf_counter()
    lang = Lang(lang_dir)
    lexicon = ChainLexicon.from_lang_dir(lang.path)
    prons = lexicon.prons_by_word()
    seq_sources = []
    for k, (path, weight) in enumerate(sources):
        texts = [words for words in read_transcripts(path).values() if words]
        if not texts:
            log.warning("%s: no cut has a transcript", path)
        seqs = phone_lm_training_sequences(texts, prons, lexicon.sil_phone, edge_sil_prob, between_sil_prob,
                                           lexicon.oov, seed + k)
        log.info("%s: %d transcripts, weight %g", path, len(seqs), weight)
        seq_sources.append((weight, seqs))
    if not any(seqs for _, seqs in seq_sources):
        raise FrugalError(f"no transcripts in {', '.join(str(p) for p, _ in sources)}: no phone LM to estimate")
    lm = estimate_phone_lm(seq_sources, ngram_order, no_prune_ngram_order, num_extra_states)
    topology = HmmTopology(num_states=hmm_states, separate_self_loop_pdf=hmm_states == 1)
    phones = lang.units()
    pdf_map = PdfMap(phones, topology, 2 if context == "biphone" else 1)
    den = make_den_graph(lm, pdf_map, phones)
    out = GraphFile(output)
    den.save(out.path)
    lm.write_fst(out.path.parent / "phone_lm.fst")
    pdf_map.write(out.pdf_map_path, lexicon.phones)
    info = den_graph_info(den, lm)
    info.update(lang=str(lang_dir), cuts=[f"{p}:{w:g}" for p, w in sources], ngram_order=ngram_order,
                no_prune_ngram_order=no_prune_ngram_order, num_extra_states=num_extra_states, context=context,
                edge_sil_prob=edge_sil_prob, between_sil_prob=between_sil_prob, seed=seed,
                seconds=round(time.perf_counter() - t0, 3))
    out.write_info(info)
    log.info("wrote %s: %d states, %d arcs, %d pdfs (phone LM %d states, %d arcs)", out.path, info["den_states"],
             info["den_arcs"], info["num_pdfs"], info["phone_lm_states"], info["phone_lm_arcs"])
    return info
