"""Score hypotheses against references (Kaldi text files): %WER, %SER, per-utterance details.

Prints compute-wer's report. With --out-dir, also writes there ``wer`` (the report),
``per_utt`` (each alignment: ref/hyp/op lines and C/S/I/D counts), ``ops`` (counts of each
correct/substituted/inserted/deleted word pair) and ``wer_bootci`` (95% bootstrap
confidence interval of the WER, resampling utterances). With --results, the (model, data,
graph) row of a recipe's RESULTS.md is added or replaced (e.g. a transducer's hyp.txt of
frugal decode-transducer). With --phones-lang the words of both sides become the phones of
their pronunciations in that lang directory: a phone error rate (PER).
"""
from __future__ import annotations

from frugal.bin._options import add_results_arguments, results_row
from frugal.decode.results import update_results_table
from frugal.decode.scoring import score_text_files


def add_arguments(p) -> None:
    ref = p.add_mutually_exclusive_group(required=True)
    ref.add_argument("--ref", help="reference Kaldi text file (uttid w1 w2 ...)")
    ref.add_argument("--ref-cuts", help="lhotse cuts whose supervision texts are the references")
    p.add_argument("--hyp", required=True, help="hypothesis Kaldi text file; utterances "
                   "missing from it count as all deletions, extra ones are an error")
    p.add_argument("--out-dir", help="directory for wer, per_utt, ops, wer_bootci")
    p.add_argument("--bootstrap-replications", type=int, default=1000,
                   help="resamplings for the confidence interval (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    p.add_argument("--phones-lang", help="a lang directory: score phones, each word its likeliest pronunciation "
                                         "without silence (a phone error rate; the report's %%WER line is the PER)")
    add_results_arguments(p, graph_example="greedy")


def run(args) -> None:
    row = results_row(args)
    result = score_text_files(args.ref, args.hyp, args.out_dir, args.bootstrap_replications, args.seed,
                              ref_cuts=args.ref_cuts, phones_lang=args.phones_lang)
    print(result.report(), end="")
    if row is not None:
        update_results_table(*row, result.counts)
