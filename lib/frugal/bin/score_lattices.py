"""Score a decode directory's lattices over LM weights and insertion penalties (Kaldi's score_kaldi.sh).

For each LMWT in --lmwt MIN:MAX and WIP in --wip, the best path of every lattice with graph
scale 1, acoustic scale 1/LMWT and WIP added per word is scored against the references:
DECODE_DIR/wer_LMWT_WIP (compute-wer reports), penalty_WIP/LMWT.txt (the hypotheses),
best_wer, and wer_details/{per_utt,ops,wer_bootci,lmwt,wip} of the best setting.

With --dev-decode-dir (a decode of the dev set scored before), the setting that was best on
dev is the one reported for this set, as Kaldi's recipes report test sets; it is written to
DECODE_DIR/wer_dev_setting. With --results, the (model, data, graph) row of a recipe's
RESULTS.md is added or replaced (frugal write-results does the same from scored directories).
"""
from __future__ import annotations

from frugal.bin._options import add_results_arguments, float_list, int_range, results_row
from frugal.decode.sweep import score_lattices


def add_arguments(p) -> None:
    p.add_argument("--decode-dir", required=True, help="directory of frugal decode (lat.J.pt, num_jobs, .done)")
    ref = p.add_mutually_exclusive_group(required=True)
    ref.add_argument("--ref-cuts", help="lhotse cuts whose supervision texts are the references")
    ref.add_argument("--ref", dest="ref_text", help="reference Kaldi text file (uttid w1 w2 ...)")
    p.add_argument("--words", required=True, help="words.txt of the decoding graph")
    p.add_argument("--lmwt", type=int_range, default=int_range("7:17"), help="LM weights MIN:MAX (default: 7:17)")
    p.add_argument("--wip", type=float_list, default=[0.0, 0.5, 1.0],
                   help="word insertion penalties, comma-separated (default: 0.0,0.5,1.0)")
    p.add_argument("--dev-decode-dir", help="scored dev decode directory whose best setting is reported")
    p.add_argument("--bootstrap-replications", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    add_results_arguments(p)


def run(args) -> None:
    score_lattices(args.decode_dir, args.words, args.ref_cuts, args.ref_text, args.lmwt, args.wip,
                   args.dev_decode_dir, args.bootstrap_replications, args.seed, results_row(args))
