"""Plot the loss components that training runs logged (EXP_DIR/log/train.log) against their steps, as a PNG.

  frugal train-curve --exp-dir exp/mam --key l1 --output exp/mam/curve.png

One panel a --key (e.g. l1 of MAM pre-training; contrastive, accuracy and code_perplexity of
wav2vec 2.0; objf of LF-MMI), one line a run. The values are the trainer's running means over
each epoch so far, logged every log_every_steps steps.
"""
from __future__ import annotations

from frugal.train.curves import plot_curves


def add_arguments(p) -> None:
    p.add_argument("--exp-dir", action="append", required=True, help="a training run's directory (repeat)")
    p.add_argument("--key", action="append", required=True, help="a logged loss component (repeat)")
    p.add_argument("--output", required=True, help="PNG file to write")


def run(args) -> None:
    drawn = plot_curves(args.exp_dir, args.key, args.output)
    print(f"{args.output}: {', '.join(drawn)}")
