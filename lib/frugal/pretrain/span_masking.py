"""Span masking of wav2vec 2.0 pre-training (fairseq's compute_mask_indices, "static" spans).

For an utterance of L steps: n = int(mask_prob * L / mask_length + u), u ~ U[0, 1) (a
probabilistic rounding, so that E[n] = mask_prob * L / mask_length), at least ``min_masks``;
n span starts drawn without replacement from [0, L - mask_length]; each start masks
mask_length steps. Spans may overlap, so about 1 - exp(-mask_prob) of the steps are masked
(≈ 48-49 % for 0.65 and 10), and nothing at or beyond L is.

Decisions where fairseq differs or the description left room:
- Starts range over [0, L - mask_length] inclusive (fairseq excludes the last start).
- n is at most the number of possible starts, L - mask_length + 1 (then all L steps are masked).
- An utterance shorter than mask_length gets no mask at all (fairseq shortens the span).
- Utterances are masked independently: no equalisation of the masked count across the batch
  (fairseq's require_same_masks), since the negatives are sampled per utterance.
"""
from __future__ import annotations

from typing import Optional

import torch


def span_mask(lengths: torch.Tensor, mask_prob: float = 0.65, mask_length: int = 10, min_masks: int = 2,
              generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """(B, max(lengths)) bool, True at masked steps, for utterances of ``lengths`` steps.

    The draws (u, then the starts, utterance by utterance) come from ``generator`` (torch's
    global one when None), on the CPU; the mask is returned on ``lengths``' device.
    """
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"mask_prob {mask_prob} is out of range [0, 1]")
    if mask_length < 1 or min_masks < 0:
        raise ValueError(f"mask_length {mask_length} must be positive and min_masks {min_masks} >= 0")
    lens = lengths.detach().to("cpu", torch.int64)
    total = int(lens.max()) if lens.numel() else 0
    mask = torch.zeros(len(lens), total, dtype=torch.bool)
    offsets = torch.arange(mask_length)
    for b, L in enumerate(lens.tolist()):
        u = float(torch.rand((), generator=generator))
        starts_possible = L - mask_length + 1
        if starts_possible <= 0:
            continue
        n = max(min_masks, int(mask_prob * L / mask_length + u))
        n = min(n, starts_possible)
        starts = torch.randperm(starts_possible, generator=generator)[:n]
        mask[b, (starts.unsqueeze(1) + offsets).reshape(-1)] = True
    return mask.to(lengths.device)
