"""Masked acoustic model pre-training (TERA, Liu et al. 2021; thesis 4.1.1): alteration and objective.

The input is each utterance's normalised fbank (`frugal.models.mam.utterance_cmvn`), altered in
this order (spec 1.1, with the reference implementation's choices where the thesis is silent):

1. time: round(T * 0.15 / 7) span starts drawn without replacement from [0, T - 8], 7 frames
   each (spans may overlap, so at most 15% of the frames are chosen). One die per utterance:
   with probability 0.8 all its chosen frames are zeroed, 0.1 replaced by the frames of as many
   spans at other random starts, 0.1 left as they are (the model must still reconstruct them).
2. frequency: one block of w channels zeroed over all valid frames, w uniform in {0, ..., 16}
   (16 = 0.2 x 80), its first channel uniform in [0, F - w - 1].
3. magnitude: with probability 0.15, thrown once per batch, Gaussian noise of standard
   deviation 0.2 added to every valid element. The thesis says "variance 0.2"; the reference
   implementation's Normal(0, 0.2) is a standard deviation, and that is what is used here.

The loss is the L1 distance between the reconstruction and the unaltered normalised input,
averaged over the altered positions only: the chosen frames (all channels, the unchanged 10%
included) and the frequency block (valid frames); noise adds no positions. Utterances longer
than ``max_frames`` (1500) are cropped to a random window first.

All randomness comes from torch's global generator, which the trainer seeds before every
batch, so a resumed run alters its batches as an uninterrupted one does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

import torch

from frugal.errors import FrugalError
from frugal.losses.reconstruction import masked_l1
from frugal.models.mam import MamModel, config_from_dict
from frugal.pretrain.common import PretrainingObjective, crop, uniform_int
from frugal.train.objective import register


@dataclass
class MamMasking:
    """The alteration's hyper-parameters (the ``loss`` section of a pre-training config)."""

    span: int = 7
    time_proportion: float = 0.15
    zero_prob: float = 0.8
    replace_prob: float = 0.1  # the rest of the die leaves the chosen frames unchanged
    freq_max_width: int = 16
    noise_std: float = 0.2
    noise_prob: float = 0.15
    max_frames: int = 1500

    def validate(self, where: str = "mam loss options") -> None:
        if self.span < 1 or self.max_frames < 1 or self.freq_max_width < 0:
            raise FrugalError(f"{where}: span and max_frames must be positive, freq_max_width non-negative")
        for name in ("time_proportion", "zero_prob", "replace_prob", "noise_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise FrugalError(f"{where}: {name} must be in [0, 1] (got {getattr(self, name)})")
        if self.zero_prob + self.replace_prob > 1.0:
            raise FrugalError(f"{where}: zero_prob + replace_prob must not exceed 1")
        if self.noise_std < 0:
            raise FrugalError(f"{where}: noise_std must be non-negative")


def alter(x: torch.Tensor, lengths: torch.Tensor, m: MamMasking,
          generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(altered copy of x, mask of the altered positions), both (B, T, F); see the module docstring."""
    out = x.clone()
    mask = torch.zeros_like(x, dtype=torch.bool)
    F = x.shape[2]
    span = torch.arange(m.span, device=x.device)
    for b, length in enumerate(lengths.tolist()):
        num_spans = round(length * m.time_proportion / m.span)
        starts_range = length - m.span  # starts 0 .. length - span - 1
        if num_spans > 0 and starts_range > 0:
            starts = torch.randperm(starts_range, generator=generator)[:num_spans].to(x.device)
            chosen = (starts.unsqueeze(1) + span).reshape(-1)
            die = float(torch.rand((), generator=generator))
            if die < m.zero_prob:
                out[b, chosen] = 0.0
            elif die < m.zero_prob + m.replace_prob:
                others = torch.randperm(starts_range, generator=generator)[:num_spans].to(x.device)
                out[b, chosen] = x[b, (others.unsqueeze(1) + span).reshape(-1)]
            mask[b, chosen] = True
        width = uniform_int(m.freq_max_width + 1, generator)
        if width > 0 and F - width > 0:
            first = uniform_int(F - width, generator)
            out[b, :length, first:first + width] = 0.0
            mask[b, :length, first:first + width] = True
    if m.noise_prob > 0 and float(torch.rand((), generator=generator)) < m.noise_prob:
        valid = (torch.arange(x.shape[1], device=x.device).unsqueeze(0) < lengths.to(x.device).unsqueeze(1))
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device) * m.noise_std
        out = out + noise * valid.unsqueeze(2)
    return out, mask


@register
class MamObjective(PretrainingObjective):
    """MAM pre-training: the L1 reconstruction of altered input (module docstring)."""

    name = "mam"
    options_class = MamMasking
    title = "MAM pre-training"

    def __init__(self, options: MamMasking) -> None:
        super().__init__(options)
        self.feat_dim = 0

    @property
    def output_dim(self) -> int:
        return self.feat_dim

    def build_model(self, section: Mapping, feat_dim: int, where: str) -> torch.nn.Module:
        section = self.model_section(section, where)
        if section.get("feat_dim", feat_dim) != feat_dim:
            raise FrugalError(f"{where}: model feat_dim is {section['feat_dim']} but the features have {feat_dim}")
        self.feat_dim = feat_dim
        return MamModel(config_from_dict({**section, "feat_dim": feat_dim}, where))

    def __call__(self, model: torch.nn.Module, batch: Dict) -> Dict[str, torch.Tensor]:
        module = getattr(model, "module", model)  # DDP wraps the model
        x, lengths = crop(batch["features"], batch["feature_lens"], self.options.max_frames)
        target = module.encoder.normalize(x, lengths)
        altered, mask = alter(target, lengths, self.options)
        total, count = masked_l1(model(altered, lengths), target, mask)
        loss = total / count.clamp(min=1)
        valid = int(lengths.sum()) * x.shape[2]
        return {"loss": loss, "l1": loss.detach(), "altered": count.detach().to(loss.dtype) / max(valid, 1)}
