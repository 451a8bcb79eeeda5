"""What training keeps in checkpoints: the record, RNG states, and averaging of the last epochs.

A checkpoint is a dict of tensors and primitive containers only, so that
``torch.load(path, weights_only=True)`` reads it: no pickled classes. Where checkpoints
live and how they are written and read is `frugal.dirs.ModelDir`'s.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch

from frugal.errors import FrugalError
from frugal.dirs import CHECKPOINT_FORMAT, load_checkpoint

PathLike = Union[str, Path]


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


def checkpoint_record(model: Dict[str, torch.Tensor], model_info: Dict, train_config: Dict,
                      valid: Optional[Dict] = None, **extra) -> Dict:
    """The entries every checkpoint has (an epoch checkpoint adds the optimiser and where
    training stands; final.pt what the objective records)."""
    return {"format": CHECKPOINT_FORMAT, "model": model, "model_info": model_info, "train_config": train_config,
            "valid": valid or {}, **extra}


def average_checkpoints(paths: Sequence[PathLike]) -> Dict[str, torch.Tensor]:
    """Average the ``model`` weights of several checkpoints (e.g. the last N epochs)."""
    return average_state_dicts([load_checkpoint(p)["model"] for p in paths])
