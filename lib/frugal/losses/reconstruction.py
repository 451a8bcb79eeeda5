"""Masked reconstruction loss of the masked acoustic model (TERA)."""
from __future__ import annotations

from typing import Tuple

import torch


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(sum of |prediction - target| over the True elements of ``mask``, their number).

    Only masked elements enter, so a prediction elsewhere has no gradient; the caller divides
    (TERA averages over all masked elements of a batch)."""
    if prediction.shape != target.shape or mask.shape != target.shape:
        raise ValueError(f"shapes differ: prediction {tuple(prediction.shape)}, target {tuple(target.shape)}, "
                         f"mask {tuple(mask.shape)}")
    diff = (prediction - target).abs()
    return torch.where(mask, diff, torch.zeros_like(diff)).sum(), mask.sum()
