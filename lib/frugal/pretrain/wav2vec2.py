"""wav2vec 2.0 pre-training (Baevski et al. 2020; thesis 4.1.2): the objective.

For a batch of raw 16 kHz cuts (frugal compute-fbank --raw), each cropped to at most
``max_samples`` (250,000, 15.6 s): the conv front end's steps are span-masked (the model
config's mask_prob 0.65 and mask_length 10, `frugal.pretrain.span_masking`), the encoder
reads the masked sequence, and for every masked step the context vector must pick out its own
quantised target among ``num_negatives`` (100) targets of other masked steps of the same
utterance (`frugal.losses.contrastive`, temperature 0.1). Per masked step, the loss is

    contrastive + diversity_weight (0.1) x (G V - perplexity) / (G V)
                + feature_penalty_weight (10) x mean square of the conv features,

fairseq's criterion with loss_weights [0.1, 10] divided by the number of masked steps. The
Gumbel-softmax temperature falls from 2 by a factor 0.999995 an update to at least 0.5; the
trainer tells the objective its step, so a resumed run continues the same schedule. Logged:
the contrastive loss, the task's accuracy and the codebook perplexity.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping

import torch

from frugal.errors import FrugalError
from frugal.losses.contrastive import contrastive_loss, diversity_loss, sample_negatives
from frugal.models.wav2vec2 import Wav2Vec2Model, config_from_dict, gumbel_temperature
from frugal.pretrain.common import PretrainingObjective, crop
from frugal.pretrain.span_masking import span_mask
from frugal.train.objective import register


@dataclass
class Wav2Vec2Loss:
    """The criterion's hyper-parameters (the ``loss`` section of a pre-training config)."""

    num_negatives: int = 100
    logit_temperature: float = 0.1
    diversity_weight: float = 0.1
    feature_penalty_weight: float = 10.0
    gumbel_start: float = 2.0
    gumbel_end: float = 0.5
    gumbel_decay: float = 0.999995
    max_samples: int = 250000
    min_masks: int = 2

    def validate(self, where: str) -> None:
        if self.num_negatives < 1 or self.max_samples < 400 or self.min_masks < 0:
            raise FrugalError(f"{where}: num_negatives must be positive, max_samples at least 400 (one conv "
                              f"step), min_masks non-negative")
        if self.logit_temperature <= 0 or self.gumbel_end <= 0 or self.gumbel_start < self.gumbel_end:
            raise FrugalError(f"{where}: temperatures must be positive, gumbel_start >= gumbel_end")
        if not 0 < self.gumbel_decay <= 1:
            raise FrugalError(f"{where}: gumbel_decay must be in (0, 1]")


@register
class Wav2Vec2Objective(PretrainingObjective):
    """wav2vec 2.0 pre-training (module docstring)."""

    name = "wav2vec2"
    options_class = Wav2Vec2Loss
    title = "wav2vec 2.0 pre-training"

    def __init__(self, options: Wav2Vec2Loss) -> None:
        super().__init__(options)
        self.temperature = options.gumbel_start

    @property
    def output_dim(self) -> int:
        return 1

    def build_model(self, section: Mapping, feat_dim: int, where: str) -> torch.nn.Module:
        section = self.model_section(section, where)
        if feat_dim != 1:
            raise FrugalError(f"{where}: wav2vec 2.0 reads raw audio, but the cuts have {feat_dim}-dimensional "
                              f"features (make them with frugal compute-fbank --raw)")
        return Wav2Vec2Model(config_from_dict(section, where))

    def set_step(self, step: int) -> None:
        o = self.options
        self.temperature = gumbel_temperature(step, o.gumbel_start, o.gumbel_end, o.gumbel_decay)

    def __call__(self, model: torch.nn.Module, batch: Dict) -> Dict[str, torch.Tensor]:
        module = getattr(model, "module", model)  # DDP wraps the model
        o, c = self.options, module.config
        x, lengths = crop(batch["features"], batch["feature_lens"], o.max_samples)
        steps = module.output_lengths(lengths)
        mask = span_mask(steps, c.mask_prob, c.mask_length, o.min_masks).to(x.device)
        out = model(x, lengths, mask, self.temperature)
        negatives = sample_negatives(mask, o.num_negatives)
        total, num_masked, accuracy = contrastive_loss(out["context"], out["targets"], mask, negatives,
                                                       o.logit_temperature)
        contrastive = total / max(num_masked, 1)
        diversity = diversity_loss(out["prob_perplexity"], out["num_codevectors"])
        loss = contrastive + o.diversity_weight * diversity + o.feature_penalty_weight * out["features_pen"]
        return {"loss": loss, "contrastive": contrastive.detach(), "diversity": diversity.detach(),
                "features_pen": out["features_pen"].detach(),
                "accuracy": torch.tensor(float(accuracy)),
                "code_perplexity": out["code_perplexity"].detach().float(),
                "temperature": torch.tensor(self.temperature)}
