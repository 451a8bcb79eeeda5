"""Checkpoints: atomic saving, weights-only loading, RNG states, averaging.

A checkpoint is a dict of tensors and primitive containers only, so that
``torch.load(path, weights_only=True)`` reads it: no pickled classes. The file name
only ever points at a complete checkpoint (frugal.fileio.atomic_path), and
``<exp_dir>/last-checkpoint`` names the newest one; it is rewritten after the checkpoint
itself, so a kill between the two leaves it naming the previous, complete checkpoint.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from frugal.errors import FrugalError
from frugal.fileio import atomic_path, atomic_write_text

PathLike = Union[str, Path]
LAST_POINTER = "last-checkpoint"


def epoch_checkpoint_path(exp_dir: PathLike, epoch: int) -> Path:
    return Path(exp_dir) / f"epoch-{epoch}.pt"


def step_checkpoint_path(exp_dir: PathLike, step: int) -> Path:
    return Path(exp_dir) / f"checkpoint-{step}.pt"


def save_checkpoint(path: PathLike, checkpoint: Dict) -> None:
    """Write ``checkpoint`` atomically to ``path`` and point ``last-checkpoint`` at it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)
    atomic_write_text(path.parent / LAST_POINTER, path.name + "\n")


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> Dict:
    path = Path(path)
    if not path.is_file():
        raise FrugalError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise FrugalError(f"{path}: cannot read checkpoint: {e}".splitlines()[0]) from None


def latest_checkpoint(exp_dir: PathLike) -> Optional[Path]:
    """The newest complete checkpoint of a training directory, or None."""
    pointer = Path(exp_dir) / LAST_POINTER
    if not pointer.is_file():
        return None
    path = Path(exp_dir) / pointer.read_text().strip()
    if not path.is_file():
        raise FrugalError(f"{pointer}: names {path.name}, which does not exist")
    return path


def get_rng_state() -> Dict:
    """RNG states of torch, CUDA, numpy and random as tensors and primitives."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "random": list(_flatten_random_state(random.getstate())),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _flatten_random_state(state):
    version, internal, gauss = state
    return [version, list(internal), gauss]


def set_rng_state(state: Dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    version, internal, gauss = state["random"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def average_state_dicts(state_dicts: Sequence[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """Element-wise mean of model weights (floating tensors); integer buffers such as
    BatchNorm's num_batches_tracked are averaged with floor division, as icefall does."""
    if not state_dicts:
        raise ValueError("no state dicts to average")
    keys = list(state_dicts[0])
    for sd in state_dicts[1:]:
        if list(sd) != keys:
            raise FrugalError("cannot average checkpoints of different models (parameter names differ)")
    n = len(state_dicts)
    avg = {}
    for k in keys:
        first = state_dicts[0][k]
        if first.is_floating_point():
            acc = torch.zeros_like(first, dtype=torch.float64)
            for sd in state_dicts:
                acc += sd[k].to(torch.float64)
            avg[k] = (acc / n).to(first.dtype)
        else:
            acc = sum(sd[k].to(torch.int64) for sd in state_dicts)
            avg[k] = torch.div(acc, n, rounding_mode="floor").to(first.dtype)
    return avg


def average_checkpoints(paths: Sequence[PathLike]) -> Dict[str, torch.Tensor]:
    """Average the ``model`` weights of several checkpoints (e.g. the last N epochs)."""
    return average_state_dicts([load_checkpoint(p)["model"] for p in paths])


def last_epoch_checkpoints(exp_dir: PathLike, epoch: int, num: int) -> List[Path]:
    """epoch-(epoch-num+1).pt ... epoch-epoch.pt, checking that they all exist."""
    if num < 1 or num > epoch:
        raise FrugalError(f"cannot average {num} checkpoints ending at epoch {epoch}")
    paths = [epoch_checkpoint_path(exp_dir, e) for e in range(epoch - num + 1, epoch + 1)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FrugalError(f"{missing[0]}: checkpoint not found (needed for averaging)")
    return paths
