"""Per-utterance normalisation of the network input.

``utterance_mean``: cepstral mean normalisation (Kaldi's ``apply-cmvn --norm-vars=false``
with per-utterance statistics): every feature dimension gets its mean over the utterance's
frames subtracted. It removes what is constant over an utterance -- channel, microphone,
and much of a speaker's spectral tilt -- which a small model on few speakers cannot learn
to ignore. Done inside the model, so training, alignment and decoding (and a checkpoint
used anywhere) always normalise alike; padded frames neither enter the mean nor change.
"""
from __future__ import annotations

import torch

INPUT_NORMS = ("none", "utterance_mean")


def utterance_mean_normalize(features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T, F) features minus each utterance's mean over its first ``lengths[b]`` frames
    (padding frames are left as they are)."""
    t = torch.arange(features.shape[1], device=features.device)
    valid = (t.unsqueeze(0) < lengths.to(features.device).unsqueeze(1)).unsqueeze(2)  # (B, T, 1)
    count = valid.sum(dim=1, keepdim=True).clamp(min=1).to(features.dtype)
    mean = (features * valid).sum(dim=1, keepdim=True) / count
    return torch.where(valid, features - mean, features)
