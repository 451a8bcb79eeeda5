"""Score hypotheses against references (Kaldi text files): %WER, %SER, per-utterance details.

Prints compute-wer's report. With --out-dir, also writes there ``wer`` (the report),
``per_utt`` (each alignment: ref/hyp/op lines and C/S/I/D counts), ``ops`` (counts of each
correct/substituted/inserted/deleted word pair) and ``wer_bootci`` (95% bootstrap
confidence interval of the WER, resampling utterances).
"""
from __future__ import annotations

from frugal.decode.scoring import score_text_files


def add_arguments(p) -> None:
    p.add_argument("--ref", required=True, help="reference Kaldi text file (uttid w1 w2 ...)")
    p.add_argument("--hyp", required=True, help="hypothesis Kaldi text file; utterances "
                   "missing from it count as all deletions, extra ones are an error")
    p.add_argument("--out-dir", help="directory for wer, per_utt, ops, wer_bootci")
    p.add_argument("--bootstrap-replications", type=int, default=1000,
                   help="resamplings for the confidence interval (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")


def run(args) -> None:
    print(score_text_files(args.ref, args.hyp, args.out_dir, args.bootstrap_replications, args.seed).report(), end="")
