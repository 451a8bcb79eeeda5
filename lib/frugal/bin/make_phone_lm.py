"""Estimate the un-smoothed phone n-gram LM (phone_lm.fst) of the LF-MMI denominator graph.

Like Kaldi's chain-est-phone-lm with make_weighted_den_fst.sh's weighted sources:
each ``--phone-seqs FILE[:WEIGHT]`` holds lines ``uttid p1 p2 ...`` (phone symbols of
``--phones``, or integer ids when ``--phones`` is not given), counted WEIGHT times
(default 1; e.g. supervised:1.5 unsupervised:1.0 as in the thesis).
"""
from __future__ import annotations

from frugal.bin._options import weighted_path
from frugal.lm.phone_lm import make_phone_lm


def add_arguments(p) -> None:
    p.add_argument("--phone-seqs", nargs="+", required=True, metavar="FILE[:WEIGHT]", type=weighted_path,
                   help="phone-sequence files (uttid p1 p2 ...), each with an optional weight")
    p.add_argument("--phones", dest="phones_txt", help="phones.txt symbol table (symbol id per line)")
    p.add_argument("--output", required=True, help="phone_lm.fst (OpenFst binary acceptor)")
    p.add_argument("--text-output", help="also write a readable dump (log10 probs per state)")
    p.add_argument("--ngram-order", type=int, default=4)
    p.add_argument("--no-prune-ngram-order", type=int, default=3, help="histories shorter than this are never pruned")
    p.add_argument("--num-extra-lm-states", dest="num_extra_states", type=int, default=2000,
                   help="states allowed beyond those of --no-prune-ngram-order")


def run(args) -> None:
    make_phone_lm(args.phone_seqs, args.output, args.phones_txt, args.text_output, args.ngram_order,
                  args.no_prune_ngram_order, args.num_extra_states)
