"""Build the LF-MMI denominator graph (den.pt) from training transcripts through the lexicon.

Kaldi's flat-start recipe: transcripts -> phone sequences (most probable pronunciation,
random optional silence) -> un-smoothed phone n-gram LM (chain-est-phone-lm) -> biphone
context and chain HMM topology -> den graph with leaky-HMM initial probabilities.
Each ``--cuts FILE[:WEIGHT]`` is a lhotse cut (or supervision) manifest whose supervision
texts are counted WEIGHT times (e.g. supervised:1.5 unsupervised:1.0). Writes OUTPUT
(read by frugal.graph.den_graph.ChainDenGraph.load), and beside it phone_lm.fst,
pdf_map.txt and OUTPUT.json (sizes, options, times).
"""
from __future__ import annotations

from frugal.bin._options import weighted_path
from frugal.graph.den_graph import build_den_graph


def add_arguments(p) -> None:
    p.add_argument("--lang", required=True, help="lang directory (frugal prepare-lang)")
    p.add_argument("--cuts", nargs="+", required=True, metavar="MANIFEST[:WEIGHT]", type=weighted_path,
                   help="manifests whose supervision texts train the phone LM, each with an optional weight")
    p.add_argument("--output", required=True, help="den graph file, e.g. exp/chain/den.pt")
    p.add_argument("--ngram-order", type=int, default=4)
    p.add_argument("--no-prune-ngram-order", type=int, default=3)
    p.add_argument("--num-extra-states", type=int, default=2000,
                   help="phone LM states allowed beyond those of --no-prune-ngram-order")
    p.add_argument("--hmm-states", type=int, choices=[1, 2], default=1,
                   help="1 = chain topology (forward + self-loop pdf a phone); 2 = two states, one pdf each")
    p.add_argument("--context", choices=["biphone", "mono"], default="biphone")
    p.add_argument("--edge-sil-prob", type=float, default=0.8,
                   help="probability of silence at the start and end of a phone LM training sentence")
    p.add_argument("--between-sil-prob", type=float, default=0.2,
                   help="probability of silence between words in phone LM training sentences")
    p.add_argument("--seed", type=int, default=0, help="seed of the silence insertion (source k uses SEED + k)")


def run(args) -> None:
    build_den_graph(args.lang, args.cuts, args.output, args.ngram_order, args.no_prune_ngram_order,
                    args.num_extra_states, args.hmm_states, args.context, args.edge_sil_prob,
                    args.between_sil_prob, args.seed)
