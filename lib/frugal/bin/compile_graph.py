"""Compile a decoding graph: HLG (CTC) or HCLG (chain) from a lang dir and an ARPA LM."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import List, Optional

from frugal.errors import FrugalError
from frugal.fileio import atomic_write_text
from frugal.graph.compile import CompileInfo, LangDir, compile_hclg, compile_hlg, make_grammar_fst
from frugal.graph.fstutil import num_input_epsilon_arcs, write_fst
from frugal.graph.hmm_topo import HmmTopology

log = logging.getLogger("frugal.compile_graph")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="frugal compile-graph", description=__doc__,
        epilog="Input labels are token id + 1 (ctc) or pdf id + 1 (chain); output labels are "
               "word ids. Writes OUTPUT (OpenFst binary), OUTPUT.json (sizes, times) and, for "
               "chain, pdf_map.txt beside it (left phone, phone, pdf class, pdf id).")
    p.add_argument("--lang", required=True, help="lang directory (frugal prepare-lang / prepare-units)")
    p.add_argument("--arpa", required=True, help="word ARPA language model")
    p.add_argument("--topo", choices=["ctc", "chain"], required=True)
    p.add_argument("--ctc-compact", action="store_true",
                   help="ctc: compact topology (one frame a token, linear size) instead of the standard one")
    p.add_argument("--remove-epsilons", action="store_true",
                   help="ctc: remove the LM's backoff epsilons (large graphs with large LMs)")
    p.add_argument("--context", choices=["biphone", "mono"], default="biphone",
                   help="chain: phonetic context (default biphone)")
    p.add_argument("--hmm-states", type=int, choices=[1, 2], default=1,
                   help="chain: 1 = forward + self-loop pdfs a phone (default); "
                        "2 = two states, one pdf each")
    p.add_argument("--output", required=True, help="graph file, e.g. exp/graph/HCLG.fst")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.topo == "ctc" and (args.context != "biphone" or args.hmm_states != 1):
        raise FrugalError("--context and --hmm-states apply to --topo chain only")
    if args.topo == "chain" and (args.ctc_compact or args.remove_epsilons):
        raise FrugalError("--ctc-compact and --remove-epsilons apply to --topo ctc only")
    lang = LangDir.read(args.lang)
    info = CompileInfo()
    G = make_grammar_fst(args.arpa, lang.path / "words.txt", info)
    out = Path(args.output)
    meta = {"lang": str(lang.path), "arpa": str(args.arpa), "topo": args.topo}
    if args.topo == "ctc":
        graph = compile_hlg(lang, G, compact=args.ctc_compact,
                            remove_epsilons=args.remove_epsilons, info=info)
        meta.update(ctc_compact=args.ctc_compact, input_labels="token id + 1")
    else:
        topology = HmmTopology(num_states=args.hmm_states,
                               separate_self_loop_pdf=args.hmm_states == 1)
        graph, pdf_map = compile_hclg(lang, G, context_width=2 if args.context == "biphone" else 1,
                                      topology=topology, info=info)
        pdf_map.write(out.parent / "pdf_map.txt", lang.phones)
        meta.update(context=args.context, hmm_states=args.hmm_states, num_pdfs=pdf_map.num_pdfs,
                    input_labels="pdf id + 1")
    write_fst(graph, out)
    meta.update(info.as_dict())
    meta["input_epsilon_arcs"] = num_input_epsilon_arcs(graph)
    atomic_write_text(f"{out}.json", json.dumps(meta, indent=1) + "\n")
    log.info("wrote %s: %d states, %d arcs, %.1f s", out, meta["states"], meta["arcs"], meta["seconds"])
    return 0
