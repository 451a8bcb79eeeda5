"""Compare the training speed of runs (seconds a step, frames a second) from their train.log files.

Reads the ``epoch N training: ... frames/s=F, s/step=S`` lines of each EXP_DIR/log/train.log
and writes a markdown table, each run's seconds a step also as a ratio to the first run's
(e.g. the pruned and the full RNN-T loss of the same transducer).
"""
from __future__ import annotations

from frugal.train.speed import speed_table, write_speed_table


def add_arguments(p) -> None:
    p.add_argument("--exp-dir", action="append", required=True, help="a training run's directory (repeat)")
    p.add_argument("--results", required=True, help="markdown file to write")


def run(args) -> None:
    print(speed_table(write_speed_table(args.exp_dir, args.results)), end="")
