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
from frugal.fsa.openfst import num_input_epsilon_arcs, write_fst
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
    p.add_argument("--context", choices=["biphone", "mono"], default=None,
                   help="chain: phonetic context (default biphone)")
    p.add_argument("--hmm-states", type=int, choices=[1, 2], default=None,
                   help="chain: 1 = forward + self-loop pdfs a phone (default); "
                        "2 = two states, one pdf each")
    p.add_argument("--den-graph", default=None,
                   help="chain: take --context and --hmm-states from this den graph's JSON "
                        "(frugal make-den-graph), so that the graph suits models trained on it")
    p.add_argument("--output", required=True, help="graph file, e.g. exp/graph/HCLG.fst")
    return p


def den_topology(args: argparse.Namespace) -> None:
    """Set args.context and args.hmm_states from --den-graph's JSON; options given as well
    must agree with it."""
    path = Path(f"{args.den_graph}.json")
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise FrugalError(f"--den-graph {args.den_graph}: no {path} (written by frugal make-den-graph)") from None
    except json.JSONDecodeError as e:
        raise FrugalError(f"{path}: not JSON: {e}") from None
    for field in ("context", "hmm_states"):
        if field not in info:
            raise FrugalError(f"{path}: no '{field}' (not written by frugal make-den-graph?)")
        given = getattr(args, field)
        if given is not None and given != info[field]:
            raise FrugalError(f"--{field.replace('_', '-')} {given} disagrees with --den-graph "
                              f"{args.den_graph}, whose {field} is {info[field]}")
        setattr(args, field, info[field])


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.topo == "ctc" and (args.context or args.hmm_states or args.den_graph):
        raise FrugalError("--context, --hmm-states and --den-graph apply to --topo chain only")
    if args.topo == "chain" and (args.ctc_compact or args.remove_epsilons):
        raise FrugalError("--ctc-compact and --remove-epsilons apply to --topo ctc only")
    if args.den_graph:
        den_topology(args)
    args.context = args.context or "biphone"
    args.hmm_states = args.hmm_states or 1
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
