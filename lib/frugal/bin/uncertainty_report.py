"""Word confidences, reference-free WER estimates and error localisation from Monte-Carlo dropout decodes.

The thesis's tables 3.2 and 3.3 for decode directories of frugal decode --dropout-samples N.
Each --set NAME:DECODE_DIR:CUTS gives one evaluation set (the references are the
supervision texts of CUTS). The alternatives of the dropout-off 1-best are the 1-bests of
the N dropout passes ("dropout") and the N-best list of the dropout-off lattice ("n-best",
--nbest changes its size). Word confidences below --thresholds flag errors (table 3.3);
the WER estimate is the mean of the --top-k largest pairwise edit distances over their
mean length (table 3.2). The report (markdown) is written to --output and printed. See
frugal.semisup.uncertainty_report.

  frugal uncertainty-report --set dev:exp/m/decode_dev:data/fbank/cuts_dev.jsonl.gz \\
      --set test:exp/m/decode_test:data/fbank/cuts_test.jsonl.gz --words data/lang/words.txt \\
      --top-k 4 --output exp/m/uncertainty.md
"""
from __future__ import annotations

import argparse
from pathlib import Path

from frugal.semisup.uncertainty_report import SetSpec, write_uncertainty_report


def evaluation_set(text: str) -> SetSpec:
    """NAME:DECODE_DIR:CUTS (the cuts' path may itself contain colons)."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError(f"'{text}': expected NAME:DECODE_DIR:CUTS, e.g. "
                                         f"dev:exp/m/decode_dev:cuts_dev.jsonl.gz")
    return SetSpec(parts[0], Path(parts[1]), parts[2])


def add_arguments(p) -> None:
    p.add_argument("--set", dest="sets", action="append", required=True, metavar="NAME:DECODE_DIR:CUTS",
                   type=evaluation_set, help="an evaluation set: its name, a decode directory of frugal decode "
                   "--dropout-samples, and the cuts whose supervision texts are the references (repeatable)")
    p.add_argument("--words", required=True, help="words.txt of the decoding graph")
    p.add_argument("--top-k", type=int, required=True,
                   help="pairwise edit distances averaged by the WER estimate (the K largest)")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.4, 0.6, 0.8],
                   help="confidence thresholds of error localisation (default: %(default)s)")
    p.add_argument("--nbest", type=int, help="size of the n-best lists (default: each set's number of dropout samples)")
    p.add_argument("--output", required=True, help="the report, markdown, e.g. exp/m/uncertainty.md")


def run(a) -> None:
    print(write_uncertainty_report(a.sets, a.words, a.top_k, a.thresholds, a.nbest, a.output), end="")
