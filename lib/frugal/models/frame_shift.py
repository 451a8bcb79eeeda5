"""Kaldi's frame-shift augmentation of chain training, for models with frame subsampling.

A model that subsamples by ``f`` computes its output frame ``k`` at input frame ``f k``, so
it only ever sees one of the ``f`` phases of the input. Kaldi's chain training (steps/nnet3/
chain/train.py, ``nnet3-chain-copy-egs --frame-shift``) shifts the input of each minibatch by
0 .. f - 1 frames against the supervision, so that the network learns every phase; without it
a model trained on little data learns phase-specific cues (on yesno, flat-start models whose
phone detectors fire on one input frame of a word and miss the same word in test audio).

``shift_frames`` moves each utterance earlier by its shift, ``x'[t] = x[min(t + s, T - 1)]``,
keeping its length, so the number of output frames (and any per-frame supervision) is
unchanged; the supervision is then off by at most ``f - 1`` input frames, as in Kaldi. The
shifts come from torch's global RNG, which the trainer seeds per batch: a resumed run draws
the same shifts. Models apply it in training mode only.
"""
from __future__ import annotations

import torch


def frame_shift_augment(features: torch.Tensor, lengths: torch.Tensor, subsampling_factor: int) -> torch.Tensor:
    """(B, T, F) features, each utterance shifted by a random 0 .. subsampling_factor - 1 frames."""
    if subsampling_factor <= 1:
        return features
    shifts = random_frame_shifts(features.shape[0], subsampling_factor, features.device)
    return shift_frames(features, lengths, shifts)


def random_frame_shifts(batch: int, subsampling_factor: int, device: torch.device) -> torch.Tensor:
    """(B,) shifts uniform in [0, subsampling_factor - 1], one per utterance."""
    return torch.randint(0, subsampling_factor, (batch,), device=device)


def shift_frames(features: torch.Tensor, lengths: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """(B, T, F) features with utterance b moved earlier by shifts[b] frames, its last frame
    repeated at the end; frames beyond an utterance's length stay as they were."""
    batch, num_frames, _ = features.shape
    t = torch.arange(num_frames, device=features.device).unsqueeze(0)  # (1, T)
    last = (lengths.to(features.device) - 1).clamp(min=0).unsqueeze(1)  # (B, 1)
    src = torch.minimum(t + shifts.to(features.device).unsqueeze(1), last)
    src = torch.where(t <= last, src, t)  # padding frames keep their place
    return torch.gather(features, 1, src.unsqueeze(2).expand(-1, -1, features.shape[2]))
