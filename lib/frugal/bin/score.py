"""Score hypotheses against references (Kaldi text files): %WER, %SER, per-utterance details.

Prints compute-wer's report. With --out-dir, also writes there ``wer`` (the report),
``per_utt`` (each alignment: ref/hyp/op lines and C/S/I/D counts), ``ops`` (counts of each
correct/substituted/inserted/deleted word pair) and ``wer_bootci`` (95% bootstrap
confidence interval of the WER, resampling utterances).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from frugal.decode.scoring import read_text, score, write_details
from frugal.errors import FrugalError
from frugal.fileio import atomic_write_text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="frugal score", description=__doc__.split("\n")[0])
    parser.add_argument("--ref", required=True, help="reference Kaldi text file (uttid w1 w2 ...)")
    parser.add_argument("--hyp", required=True, help="hypothesis Kaldi text file; utterances "
                        "missing from it count as all deletions, extra ones are an error")
    parser.add_argument("--out-dir", help="directory for wer, per_utt, ops, wer_bootci")
    parser.add_argument("--bootstrap-replications", type=int, default=1000,
                        help="resamplings for the confidence interval (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    args = parser.parse_args(argv)
    if args.bootstrap_replications < 1:
        raise FrugalError("--bootstrap-replications must be at least 1")
    if args.seed < 0:
        raise FrugalError("--seed must be 0 or more")

    refs = read_text(args.ref)
    hyps = read_text(args.hyp)
    result = score(refs, hyps, hyp_name=args.hyp)
    report = result.report()
    print(report, end="")
    if args.out_dir:
        out = Path(args.out_dir)
        atomic_write_text(out / "wer", report)
        write_details(out, refs, hyps, result, args.bootstrap_replications, args.seed)
    return 0
