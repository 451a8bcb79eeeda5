"""Compile a decoding graph: HLG (CTC) or HCLG (chain) from a lang dir and an ARPA LM.

Input labels are token id + 1 (ctc) or pdf id + 1 (chain); output labels are word ids.
Writes OUTPUT (OpenFst binary), OUTPUT.json (sizes, times) and, for chain, pdf_map.txt
beside it (left phone, phone, pdf class, pdf id).
"""
from __future__ import annotations

from frugal.graph.compile import compile_graph


def add_arguments(p) -> None:
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
                   help="chain: 1 = forward + self-loop pdfs a phone (default); 2 = two states, one pdf each")
    p.add_argument("--den-graph", default=None,
                   help="chain: take --context and --hmm-states from this den graph's JSON "
                        "(frugal make-den-graph), so that the graph suits models trained on it")
    p.add_argument("--output", required=True, help="graph file, e.g. exp/graph/HCLG.fst")


def run(args) -> None:
    compile_graph(args.lang, args.arpa, args.topo, args.output, args.ctc_compact, args.remove_epsilons,
                  args.context, args.hmm_states, args.den_graph)
