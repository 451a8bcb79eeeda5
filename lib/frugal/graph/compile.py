"""Decoding graphs: G from ARPA, LG, HLG (CTC) and HCLG (chain), compiled with OpenFst.

The recipe is Kaldi's mkgraph.sh: LG = minimize(determinize*(L_disambig o G)) with the
disambiguation symbols still in place; for CTC, the disambiguation symbols are then
removed, epsilons too, and the CTC topology composed on the left. For chain models, the
context transducer C is composed on the left of LG (kaldifst.compose_context), then H
without self-loops; the result is determinized, its disambiguation symbols removed,
minimized, and the HMM self-loops added last (adding them earlier would make
determinization much slower).

Label conventions of the results: output labels are word ids (words.txt); input labels
are token id + 1 (HLG) or pdf id + 1 (HCLG), so that 0 stays epsilon. Both graphs may
keep a few input-epsilon arcs that output words (where a word's identity was only
known at its disambiguation symbol, e.g. for homophones) and keep the LM's backoff
arcs as input-epsilon (non-emitting) arcs, as Kaldi's HCLG does: removing them would
copy a backoff state's arcs into every state that backs off to it.
"""
from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import kaldifst
import kaldilm

from frugal.dirs import GraphFile
from frugal.errors import BadValue, FrugalError
from frugal.fileio import PathLike
from frugal.graph.ctc_topo import ctc_topo
from frugal.graph.fingerprint import den_graph_fingerprint, file_sha256, text_sha256
from frugal.fsa.openfst import (build_fst, fst_size, map_ilabels_to_epsilon, num_input_epsilon_arcs, read_fst,
                                 write_fst)
from frugal.lang.lang import Lang
from frugal.lang.symbols import SymbolTable
from frugal.lm.arpa import BOS, EOS, ArpaLm, read_arpa
from frugal.graph.hmm_topo import (CHAIN_TOPOLOGY, HmmTopology, PdfMap, add_hmm_self_loops,
                                   make_h_without_self_loops)

log = logging.getLogger(__name__)

# Quantization of weights when minimizing: small enough that graph costs stay exact to
# ~1e-5 (Kaldi's default 1/1024 shifts LM costs by up to 5e-4).
MINIMIZE_DELTA = 1e-5


@dataclass
class CompileInfo:
    """Sizes and times of each compilation step, for logs and the graph's info file."""

    steps: List[Dict] = field(default_factory=list)
    _t0: float = field(default_factory=time.perf_counter)

    def record(self, name: str, fst, started: float) -> None:
        states, arcs = fst_size(fst)
        seconds = time.perf_counter() - started
        self.steps.append({"step": name, "states": states, "arcs": arcs, "seconds": round(seconds, 3)})
        log.info("%-28s %9d states %10d arcs %8.2f s", name, states, arcs, seconds)

    def as_dict(self) -> Dict:
        final = self.steps[-1] if self.steps else {}
        return {"states": final.get("states"), "arcs": final.get("arcs"),
                "seconds": round(time.perf_counter() - self._t0, 3), "steps": self.steps}


def _special_word(word: str) -> bool:
    """<eps>, #0, <s>, </s> and the bracketed non-speech words (<UNK>, <SIL>, [noise]): no LM needs them."""
    return word.startswith("#") or word[:1] + word[-1:] in ("<>", "[]")


def make_grammar_fst(arpa: PathLike, words_txt: PathLike, info: Optional[CompileInfo] = None):
    """G from an ARPA LM with kaldilm: backoff arcs carry #0 on the input, <s>/</s> become
    epsilon; n-grams with words outside words.txt are left out (the LM's ``<unk>`` among
    them: the unknown word is not decoded), said in one line, not one kaldilm warning an
    n-gram. Words of words.txt the LM lacks can never be decoded: warned about."""
    if not Path(arpa).is_file():
        raise FrugalError(f"{arpa}: no such ARPA file")
    # kaldilm aborts the process on a malformed file (no file name, no exception), and
    # compiles one whose \\data\\ counts are wrong: frugal's reader checks it first.
    lm = read_arpa(arpa)
    words = SymbolTable.read(words_txt)
    outside = [w for w in lm.vocab if w not in words and w not in (BOS, EOS)]
    if outside:
        lm = ArpaLm([{g: v for g, v in table.items() if not set(g) & set(outside)} for table in lm.ngrams])
        log.info("%s: %d word(s) not in %s left out of G with their n-grams: %s", arpa, len(outside), words_txt,
                 " ".join(outside[:10]) + (" ..." if len(outside) > 10 else ""))
    unreachable = [w for w in words.symbols() if w not in lm and not _special_word(w)]
    if unreachable:
        log.warning("%d word(s) of %s are not in the LM %s and can never be decoded, e.g. %s", len(unreachable),
                    words_txt, arpa, " ".join(unreachable[:10]))
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        g_path = Path(tmp) / "G.fst"
        if outside:
            arpa_in = Path(tmp) / "G.arpa"
            lm.write(arpa_in)
        else:
            arpa_in = Path(arpa)
        try:
            kaldilm.arpa2fst(str(arpa_in), str(g_path), disambig_symbol="#0",
                             read_symbol_table=str(words_txt))
        except Exception as e:  # kaldilm raises RuntimeError with its parser's message
            raise FrugalError(f"{arpa}: cannot read ARPA LM: {e}") from None
        G = read_fst(g_path)
    if G.num_states == 0:
        raise FrugalError(f"{arpa}: the LM has no path with words of {words_txt}")
    kaldifst.arcsort(G, sort_type="ilabel")
    if info is not None:
        info.record("G", G, t)
    return G


def compile_lg(lang: Lang, G, info: CompileInfo):
    """min(det*(L_disambig o G)), disambiguation symbols kept."""
    t = time.perf_counter()
    LG = kaldifst.compose(read_fst(lang.dir.file("L_disambig.fst")), G)
    info.record("L_disambig o G", LG, t)
    t = time.perf_counter()
    if kaldifst.determinize_star(LG, use_log=True):
        raise RuntimeError("determinize_star stopped early")
    info.record("determinize", LG, t)
    t = time.perf_counter()
    kaldifst.minimize_encoded(LG, delta=MINIMIZE_DELTA)
    info.record("minimize", LG, t)
    return LG


def compile_hlg(lang: Lang, G, compact: bool = False, remove_epsilons: bool = False,
                info: Optional[CompileInfo] = None):
    """HLG for CTC over the lang's phones (or tokens); blank is id 0.

    The LM's backoff arcs become input epsilons (non-emitting arcs), as in Kaldi's
    graphs. ``remove_epsilons`` removes those that output nothing; this copies the
    arcs of backoff states into every state that backs off to them, so it multiplies
    the size of graphs with large LMs (about 8x for a 20k-word trigram).
    """
    info = info or CompileInfo()
    LG = compile_lg(lang, G, info)
    t = time.perf_counter()
    LG = map_ilabels_to_epsilon(LG, set(lang.disambig))
    if remove_epsilons:
        kaldifst.rmepsilon(LG)
    kaldifst.arcsort(LG, sort_type="ilabel")
    info.record("remove disambig" + (", epsilons" if remove_epsilons else ""), LG, t)
    t = time.perf_counter()
    H = ctc_topo(lang.units(), compact=compact)
    HLG = kaldifst.compose(H, LG)
    kaldifst.arcsort(HLG, sort_type="ilabel")
    info.record("H o LG" + (" (compact)" if compact else ""), HLG, t)
    return HLG


def compile_hclg(lang: Lang, G, context_width: int = 2,
                 topology: HmmTopology = CHAIN_TOPOLOGY,
                 info: Optional[CompileInfo] = None) -> Tuple[kaldifst.StdVectorFst, PdfMap]:
    """HCLG for chain models with the tree-less biphone (or monophone) pdf map."""
    info = info or CompileInfo()
    LG = compile_lg(lang, G, info)
    t = time.perf_counter()
    if context_width == 2:
        CLG, ilabels = kaldifst.compose_context(lang.disambig, 2, 1, LG)
    else:
        CLG = LG
        dis = set(lang.disambig)
        ilabels = [[] if i == 0 else ([-i] if i in dis else [i])
                   for i in range(lang.phones.max_id + 1)]
    kaldifst.arcsort(CLG, sort_type="ilabel")
    info.record("C o LG" if context_width == 2 else "C o LG (mono: C = I)", CLG, t)

    t = time.perf_counter()
    pdf_map = PdfMap(lang.units(), topology, context_width)
    disambig_base = pdf_map.num_pdfs + 1
    ha_arcs, loop_of, disambig_inputs = make_h_without_self_loops(ilabels, pdf_map, disambig_base)
    Ha = build_fst(ha_arcs, {0: 0.0})
    kaldifst.arcsort(Ha, sort_type="olabel")
    HCLG = kaldifst.compose(Ha, CLG)
    info.record("Ha o CLG", HCLG, t)
    t = time.perf_counter()
    if kaldifst.determinize_star(HCLG, use_log=True):
        raise RuntimeError("determinize_star stopped early")
    info.record("determinize", HCLG, t)
    t = time.perf_counter()
    HCLG = map_ilabels_to_epsilon(HCLG, disambig_inputs)
    kaldifst.minimize_encoded(HCLG, delta=MINIMIZE_DELTA)
    info.record("remove disambig, minimize", HCLG, t)
    t = time.perf_counter()
    HCLG = add_hmm_self_loops(HCLG, loop_of)
    kaldifst.connect(HCLG)
    kaldifst.arcsort(HCLG, sort_type="ilabel")
    info.record("add self-loops", HCLG, t)
    return HCLG, pdf_map


def compile_graph(lang_dir: PathLike, arpa: PathLike, topo: str, output: PathLike, ctc_compact: bool = False,
                  remove_epsilons: bool = False, context: Optional[str] = None, hmm_states: Optional[int] = None,
                  den_graph: Optional[PathLike] = None) -> Dict:
    """HLG (``topo`` ctc) or HCLG (chain) of a lang directory and an ARPA LM into ``output``,
    with OUTPUT.json (sizes, times, the fingerprint of `frugal.graph.fingerprint` and the
    SHA-256 of the lang's words.txt) and, for chain, pdf_map.txt beside it. A chain
    graph takes its context (biphone or mono, default biphone) and HMM states (default 1)
    from ``den_graph``'s info when given, so that it suits models trained on that den graph."""
    if topo not in ("ctc", "chain"):
        raise BadValue("topo", topo, "must be ctc or chain")
    if topo == "ctc" and (context or hmm_states or den_graph):
        raise BadValue("topo", topo, "context, HMM states and a den graph apply to chain graphs only")
    if topo == "chain" and (ctc_compact or remove_epsilons):
        raise BadValue("topo", topo, "the compact topology and epsilon removal apply to ctc graphs only")
    if den_graph:
        info = GraphFile(den_graph).require("context", "hmm_states", option="--den-graph")
        for name, given in (("context", context), ("hmm_states", hmm_states)):
            if given is not None and given != info[name]:
                raise BadValue(name, given, f"disagrees with den graph {den_graph}, whose {name} is {info[name]}")
        context, hmm_states = info["context"], info["hmm_states"]
    context, hmm_states = context or "biphone", hmm_states or 1
    lang = Lang(lang_dir, need=("phones.txt", "words.txt", "phones/disambig.txt", "L_disambig.fst"))
    topology = HmmTopology(num_states=hmm_states, separate_self_loop_pdf=hmm_states == 1)
    context_width = 2 if context == "biphone" else 1
    if den_graph:  # before compiling: a den graph of another lang gives pdf ids of other phones
        ours = text_sha256(PdfMap(lang.units(), topology, context_width).to_text(lang.phones))
        theirs = den_graph_fingerprint(den_graph).get("pdf_map_sha256")
        if theirs is not None and theirs != ours:
            raise BadValue("den_graph", den_graph, f"has another pdf map (sha256 {theirs[:12]}) than lang "
                                                   f"{lang_dir} gives (sha256 {ours[:12]}): made from another lang")
    info = CompileInfo()
    G = make_grammar_fst(arpa, lang.dir.file("words.txt"), info)
    out = Path(output)
    # words_sha256: decode refuses a words.txt other than the one the graph's word ids are of.
    meta = {"lang": str(lang.path), "arpa": str(arpa), "topo": topo,
            "words_sha256": file_sha256(lang.dir.file("words.txt"))}
    if topo == "ctc":
        graph = compile_hlg(lang, G, compact=ctc_compact, remove_epsilons=remove_epsilons, info=info)
        meta.update(ctc_compact=ctc_compact, input_labels="token id + 1")
    else:
        graph, pdf_map = compile_hclg(lang, G, context_width=context_width, topology=topology, info=info)
        pdf_map.write(GraphFile(out).pdf_map_path, lang.phones)
        meta.update(context=context, hmm_states=hmm_states, num_pdfs=pdf_map.num_pdfs,
                    pdf_map_sha256=file_sha256(GraphFile(out).pdf_map_path), input_labels="pdf id + 1")
    write_fst(graph, out)
    meta.update(info.as_dict())
    meta["input_epsilon_arcs"] = num_input_epsilon_arcs(graph)
    GraphFile(out).write_info(meta)
    log.info("wrote %s: %d states, %d arcs, %.1f s", out, meta["states"], meta["arcs"], meta["seconds"])
    return meta
