"""Training speed from training logs: seconds a step and frames a second, run against run.

Each finished epoch leaves ``epoch N training: <losses>, frames/s=F, s/step=S`` in
EXP_DIR/log/train.log (`frugal.train.trainer`); a resumed run appends, and the last line of
an epoch counts. The first epoch is left out of the means where there are others (start-up:
the first batches allocate and warm the kernels).
"""
from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from typing import Dict, List, Sequence

from frugal.dirs import ModelDir, load_checkpoint
from frugal.errors import FrugalError
from frugal.fileio import PathLike, atomic_write_text

_EPOCH = re.compile(r"epoch (\d+) training: (.*), frames/s=([0-9.]+), s/step=([0-9.]+)")


@dataclass
class RunSpeed:
    name: str
    what: str                 # objective (and RNN-T loss) of its final.pt
    epochs: int
    seconds_per_step: float   # mean over the epochs counted
    frames_per_second: float
    last_losses: str          # the last epoch's loss components


def run_speed(exp_dir: PathLike) -> RunSpeed:
    d = ModelDir(exp_dir)
    try:
        lines = d.train_log.read_text(encoding="utf-8").splitlines()
    except OSError:
        raise FrugalError(f"{d.train_log}: missing (no training log in {d.path})") from None
    epochs: Dict[int, re.Match] = {}
    for line in lines:
        m = _EPOCH.search(line)
        if m:
            epochs[int(m.group(1))] = m
    if not epochs:
        raise FrugalError(f"{d.train_log}: no finished epoch with s/step (trained by an older frugal?)")
    counted = [m for n, m in sorted(epochs.items()) if n > 1] or list(epochs.values())
    what = "?"
    if d.final.is_file():
        state = load_checkpoint(d.final)
        what = state.get("objective", "lfmmi") + (f" ({state['rnnt_loss']})" if state.get("rnnt_loss") else "")
    return RunSpeed(d.path.name, what, len(epochs), statistics.mean(float(m.group(4)) for m in counted),
                    statistics.mean(float(m.group(3)) for m in counted), epochs[max(epochs)].group(2))


def speed_table(runs: Sequence[RunSpeed]) -> str:
    """Markdown: one row a run, its seconds a step as a ratio to the first run's."""
    ref = runs[0].seconds_per_step
    rows = ["| Model | Objective | Epochs | s/step | Ratio to " + runs[0].name + " | frames/s | Last epoch |",
            "|---|---|---:|---:|---:|---:|---|"]
    for r in runs:
        rows.append(f"| {r.name} | {r.what} | {r.epochs} | {r.seconds_per_step:.4f} | {r.seconds_per_step / ref:.2f} "
                    f"| {r.frames_per_second:.0f} | {r.last_losses} |")
    return "\n".join(rows) + "\n"


def write_speed_table(exp_dirs: Sequence[PathLike], output: PathLike) -> List[RunSpeed]:
    runs = [run_speed(d) for d in exp_dirs]
    atomic_write_text(output, "Training speed (means over the epochs after the first; s/step includes the "
                              "data loading)\n\n" + speed_table(runs))
    return runs
