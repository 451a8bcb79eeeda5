"""Training curves from training logs: the loss components a run logged against its steps.

The trainer logs ``epoch E batch b/N step S: name=value, ...`` every log_every_steps steps
(running means over the epoch so far) and ``epoch E validation: name=value, ...`` after each
epoch (`frugal.train.trainer`); a resumed run appends, and the last line of a step counts.
"""
from __future__ import annotations

import re
from typing import Dict, List, Sequence, Tuple

from frugal.dirs import ModelDir
from frugal.errors import FrugalError
from frugal.fileio import PathLike, atomic_path

_STEP = re.compile(r"epoch (\d+) batch (\d+)/(\d+) step (\d+): (.*)")
_VALID = re.compile(r"epoch (\d+) validation: (.*)")
_PAIR = re.compile(r"([A-Za-z_][A-Za-z0-9_/]*)=(-?[0-9.eE+-]+|nan|inf)")


def _pairs(text: str) -> Dict[str, float]:
    return {k: float(v) for k, v in _PAIR.findall(text)}


def read_curves(exp_dir: PathLike) -> Tuple[Dict[int, Dict[str, float]], Dict[int, Dict[str, float]]]:
    """({step: values} of the training lines, {epoch: values} of the validation lines)."""
    d = ModelDir(exp_dir)
    try:
        lines = d.train_log.read_text(encoding="utf-8").splitlines()
    except OSError:
        raise FrugalError(f"{d.train_log}: missing (no training log in {d.path})") from None
    steps: Dict[int, Dict[str, float]] = {}
    valid: Dict[int, Dict[str, float]] = {}
    for line in lines:
        m = _STEP.search(line)
        if m:
            steps[int(m.group(4))] = {**_pairs(m.group(5)), "epoch": float(m.group(1))}
            continue
        m = _VALID.search(line)
        if m:
            valid[int(m.group(1))] = _pairs(m.group(2))
    if not steps:
        raise FrugalError(f"{d.train_log}: no training step was logged (a shorter log_every_steps in the train "
                          "section logs more)")
    return steps, valid


def plot_curves(exp_dirs: Sequence[PathLike], keys: Sequence[str], output: PathLike) -> List[str]:
    """A PNG with one panel a key: each run's logged values against its steps; returns the keys drawn."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    runs = [(ModelDir(e).path.name, *read_curves(e)) for e in exp_dirs]
    present = [k for k in keys if any(k in v for _, steps, _ in runs for v in steps.values())]
    if not present:
        raise FrugalError(f"none of {', '.join(keys)} was logged by {', '.join(str(e) for e in exp_dirs)}")
    fig, axes = plt.subplots(1, len(present), figsize=(5 * len(present), 3.6), squeeze=False)
    for ax, key in zip(axes[0], present):
        for name, steps, _ in runs:
            xs = [s for s in sorted(steps) if key in steps[s]]
            ax.plot(xs, [steps[s][key] for s in xs], label=name)
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return present
