"""SpecAugment's frequency and time masking (Park et al., Interspeech 2019), for training.

Each utterance gets ``freq_masks`` bands of ``[0, freq_width]`` consecutive feature bins
and ``time_masks`` spans of ``[0, min(time_width, time_ratio * T)]`` frames set to zero (the
utterance mean once the input is mean-normalised), positions and widths uniform. Time
warping is left out: it matters little for small models and costs a resampling per batch.

The masks come from torch's global RNG, which the trainer seeds per batch, so a resumed run
draws the same masks. Models apply it in training mode only: never when aligning or
decoding, Monte-Carlo dropout included.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SpecAugmentConfig:
    freq_masks: int = 0
    freq_width: int = 10
    time_masks: int = 0
    time_width: int = 20
    time_ratio: float = 0.2  # a time mask covers at most this share of the utterance

    @property
    def active(self) -> bool:
        return self.freq_masks > 0 or self.time_masks > 0


def _band_mask(size: int, starts: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """(B, M) starts and widths -> (B, size) bool, True inside any of the M bands."""
    pos = torch.arange(size, device=starts.device).view(1, 1, size)
    inside = (pos >= starts.unsqueeze(2)) & (pos < (starts + widths).unsqueeze(2))
    return inside.any(dim=1)


def spec_augment(features: torch.Tensor, lengths: torch.Tensor, config: SpecAugmentConfig) -> torch.Tensor:
    """(B, T, F) features with masked bands and spans zeroed (a new tensor)."""
    batch, num_frames, num_bins = features.shape
    device = features.device
    keep = torch.ones(batch, num_frames, num_bins, dtype=torch.bool, device=device)
    if config.freq_masks > 0:
        widths = torch.randint(0, config.freq_width + 1, (batch, config.freq_masks), device=device)
        starts = (torch.rand(batch, config.freq_masks, device=device) * (num_bins - widths + 1)).long()
        keep &= ~_band_mask(num_bins, starts, widths).unsqueeze(1)
    if config.time_masks > 0:
        lens = lengths.to(device).unsqueeze(1)  # (B, 1)
        max_w = torch.minimum(torch.full_like(lens, config.time_width), (lens * config.time_ratio).long())
        widths = (torch.rand(batch, config.time_masks, device=device) * (max_w + 1)).long()
        starts = (torch.rand(batch, config.time_masks, device=device) * (lens - widths + 1).clamp(min=1)).long()
        keep &= ~_band_mask(num_frames, starts, widths).unsqueeze(2)
    return features * keep
