"""`DenseFsaVec`: network outputs seen as a batch of dense FSAs (one arc per column per frame)."""
from __future__ import annotations

from typing import Union

import torch


class DenseFsaVec:
    """Log-probabilities ``scores`` (B, T, D) with ``lengths`` (int64 [B], 0 <= length <= T).

    Frames at or beyond a sequence's length are padding: they are never read by
    `intersect_dense` and receive zero gradient.
    """

    def __init__(self, scores: torch.Tensor, lengths: torch.Tensor):
        if scores.dim() != 3:
            raise ValueError(f"dense scores must be (B, T, D), got shape {tuple(scores.shape)}")
        if not scores.is_floating_point():
            raise ValueError(f"dense scores must be floating point, got {scores.dtype}")
        if lengths.dim() != 1 or lengths.dtype != torch.int64:
            raise ValueError(f"lengths must be int64 [B], got {lengths.dtype} {tuple(lengths.shape)}")
        if lengths.numel() != scores.shape[0]:
            raise ValueError(f"{lengths.numel()} lengths for a batch of {scores.shape[0]} sequences")
        if scores.shape[2] < 1:
            raise ValueError("dense scores need at least one column")
        lengths = lengths.to(scores.device)
        if lengths.numel() and (bool((lengths < 0).any()) or bool((lengths > scores.shape[1]).any())):
            raise ValueError(f"lengths must lie in [0, {scores.shape[1]}], got {lengths.tolist()}")
        self.scores = scores
        self.lengths = lengths

    @property
    def batch_size(self) -> int:
        return self.scores.shape[0]

    @property
    def num_frames(self) -> int:
        return self.scores.shape[1]

    @property
    def num_columns(self) -> int:
        return self.scores.shape[2]

    @property
    def device(self) -> torch.device:
        return self.scores.device

    def to(self, device: Union[str, torch.device]) -> "DenseFsaVec":
        return DenseFsaVec(self.scores.to(device), self.lengths.to(device))

    def __repr__(self) -> str:
        return f"DenseFsaVec(B={self.batch_size}, T={self.num_frames}, D={self.num_columns}, device={self.device})"
