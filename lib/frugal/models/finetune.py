"""A pre-trained encoder with a head for supervised adaptation (thesis ch. 4.2-4.3, appendix A).

    features (MAM: fbank at 100 Hz; wav2vec 2.0: 16 kHz samples as (B, S, 1))
      -> the pre-trained encoder's ``encode`` -> hidden states (B, T_enc, d)
      -> head_type tdnnf:  a TDNN-F over the hidden states (TDNNF-S / TDNNF-L presets) with its
                           own frame subsampling to the chain frame rate (3 on MAM's 100 Hz;
                           e.g. 1 or 2 on wav2vec 2.0's 50 Hz), chain and xent outputs (LF-MMI)
         head_type linear: one Linear layer to the outputs (CTC on characters, BPE or phones)

``encoder_mode``: ``finetune`` trains encoder and head together; ``frozen`` is the thesis's
"FE" setting: the encoder is a fixed feature extractor (no gradient, always in eval mode, so
without dropout). ``freeze_encoder_steps`` K keeps the encoder out of the first K updates of a
fine-tuning run (fairseq's freeze_finetune_updates; the trainer tells the model its step).
wav2vec 2.0's convolutional front end is never trained (fairseq's feature_grad_mult 0).

The optimiser sees two parameter groups (`param_groups`): the encoder's learning rate is the
train config's ``encoder_lr_scale`` times the head's (the thesis: head = 20 x encoder).

The encoder's configuration is part of this model's (``encoder``: the pre-training
checkpoint's encoder record), so a fine-tuned checkpoint rebuilds alone: decoding, alignment
and Monte-Carlo dropout load it like any other model (`frugal.models.load_model`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from frugal.errors import FrugalError
from frugal.models.mam import MamEncoder
from frugal.models.tdnnf import TdnnfModel, config_from_dict as tdnnf_config_from_dict

ENCODER_MODES = ("finetune", "frozen")
HEAD_TYPES = ("tdnnf", "linear")


def _wav2vec2_encoder(config: Dict, where: str) -> nn.Module:
    from frugal.models.wav2vec2 import Wav2Vec2Encoder  # the model family is optional until used
    return Wav2Vec2Encoder.from_info(config, where)


def _wav2vec2_frames(config: Dict) -> int:
    from frugal.models.wav2vec2 import BASE_STRIDES
    return math.prod(config.get("conv_strides", BASE_STRIDES))


# encoder type -> (builder from its config mapping, input frames (or samples) per encoder output)
ENCODERS: Dict[str, Tuple[Callable[[Dict, str], nn.Module], Callable[[Dict], int]]] = {
    "mam": (MamEncoder.from_info, lambda config: 1),
    "wav2vec2": (_wav2vec2_encoder, _wav2vec2_frames),
}


@dataclass
class FinetuneConfig:
    feat_dim: int = 80
    num_pdfs: int = 0
    encoder: Dict = field(default_factory=dict)  # {"type": "mam" | "wav2vec2", "config": {...}}
    encoder_mode: str = "finetune"
    freeze_encoder_steps: int = 0
    head_type: str = "tdnnf"
    head: Dict = field(default_factory=dict)  # TDNN-F options (tdnnf head); nothing for a linear head

    @property
    def encoder_type(self) -> str:
        return self.encoder.get("type", "")

    @property
    def subsampling_factor(self) -> int:
        """Input frames (or samples) per output frame."""
        head = self.head.get("subsampling_factor", 3) if self.head_type == "tdnnf" else 1
        return ENCODERS[self.encoder_type][1](self.encoder.get("config", {})) * head

    def validate(self, where: str = "FinetuneConfig") -> None:
        if self.num_pdfs <= 0:
            raise FrugalError(f"{where}: num_pdfs must be set to a positive number (got {self.num_pdfs})")
        if self.encoder_type not in ENCODERS or not isinstance(self.encoder.get("config"), dict):
            raise FrugalError(f"{where}: a pretrained model needs its encoder (frugal train --init-encoder "
                              f"CHECKPOINT of frugal pretrain; encoder types: {', '.join(ENCODERS)})")
        if self.encoder_mode not in ENCODER_MODES:
            raise FrugalError(f"{where}: encoder_mode must be one of {', '.join(ENCODER_MODES)} "
                              f"(got {self.encoder_mode!r})")
        if self.head_type not in HEAD_TYPES:
            raise FrugalError(f"{where}: head_type must be one of {', '.join(HEAD_TYPES)} (got {self.head_type!r})")
        if self.head_type == "linear" and self.head:
            raise FrugalError(f"{where}: a linear head has no options (got {', '.join(sorted(self.head))})")
        if self.freeze_encoder_steps < 0:
            raise FrugalError(f"{where}: freeze_encoder_steps must be non-negative")


KNOWN = [f.name for f in dataclasses.fields(FinetuneConfig)]


def config_from_dict(d: Dict, where: str = "FinetuneConfig") -> FinetuneConfig:
    d = dict(d)
    unknown = sorted(set(d) - set(KNOWN))
    if unknown:
        raise FrugalError(f"{where}: unknown pretrained-model option(s) {', '.join(unknown)} "
                          f"(known: {', '.join(KNOWN)})")
    for name in ("encoder", "head"):
        if not isinstance(d.get(name, {}), dict):
            raise FrugalError(f"{where}: pretrained-model option {name} must be a mapping")
    for name in ("feat_dim", "num_pdfs", "freeze_encoder_steps"):
        if name in d and (isinstance(d[name], bool) or not isinstance(d[name], int)):
            raise FrugalError(f"{where}: pretrained-model option {name} must be an integer (got {d[name]!r})")
    cfg = FinetuneConfig(**d)
    cfg.validate(where)
    return cfg


class LinearHead(nn.Module):
    """CTC's head: one Linear layer; the xent output is its log-softmax (unused by CTC)."""

    def __init__(self, in_dim: int, num_outputs: int) -> None:
        super().__init__()
        self.output = nn.Linear(in_dim, num_outputs)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y = self.output(x)
        return y, y.log_softmax(dim=-1), lengths

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return lengths


class PretrainedModel(nn.Module):
    """Encoder + head with TdnnfModel's interface (module docstring)."""

    def __init__(self, config: FinetuneConfig, where: str = "pretrained model") -> None:
        super().__init__()
        config.validate(where)
        self.config = config
        build, _ = ENCODERS[config.encoder_type]
        self.encoder = build(config.encoder["config"], where)
        if config.head_type == "tdnnf":
            head = {**config.head, "feat_dim": self.encoder.output_dim, "num_pdfs": config.num_pdfs}
            self.head = TdnnfModel(tdnnf_config_from_dict(head, f"{where} (head)"))
        else:
            self.head = LinearHead(self.encoder.output_dim, config.num_pdfs)
        if config.encoder_mode == "frozen":
            for p in self.encoder.parameters():
                p.requires_grad_(False)
        if hasattr(self.encoder, "feature_extractor"):  # wav2vec 2.0's conv front end is never trained
            self.encoder.freeze_feature_extractor = True
            for p in self.encoder.feature_extractor.parameters():
                p.requires_grad_(False)
        self.step = 0  # optimizer steps done (set_step), for freeze_encoder_steps

    def model_info(self) -> Dict:
        return {"type": "pretrained", "config": dataclasses.asdict(self.config)}

    # ---- training hooks -------------------------------------------------------------

    def train(self, mode: bool = True) -> "PretrainedModel":
        super().train(mode)
        if self.config.encoder_mode == "frozen":
            self.encoder.eval()  # a fixed feature extractor: no dropout
        return self

    @property
    def leaves_parameters_unused(self) -> bool:
        """The encoder sits out the first updates: DDP must not wait for its gradients."""
        return self.config.freeze_encoder_steps > 0 and self.config.encoder_mode == "finetune"

    def set_step(self, step: int) -> None:
        self.step = step

    def encoder_frozen_now(self) -> bool:
        return self.config.encoder_mode == "frozen" or (self.training and self.step < self.config.freeze_encoder_steps)

    def param_groups(self) -> Dict[str, List[nn.Parameter]]:
        """The parameters the optimiser trains, by learning-rate group."""
        encoder = [p for p in self.encoder.parameters() if p.requires_grad]
        return {"encoder": encoder, "head": list(self.head.parameters())}

    def after_optimizer_step(self, step: int) -> None:
        if hasattr(self.head, "after_optimizer_step"):
            self.head.after_optimizer_step(step)

    # ---- forward --------------------------------------------------------------------

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return self.head.output_lengths(self.encoder.output_lengths(lengths))

    def forward(self, features: torch.Tensor, lengths: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.encoder_frozen_now():
            with torch.no_grad():
                hidden, hidden_lengths = self.encoder.encode(features, lengths)
        else:
            hidden, hidden_lengths = self.encoder.encode(features, lengths)
        return self.head(hidden, hidden_lengths)

    # ---- dropout --------------------------------------------------------------------

    def set_dropout_proportion(self, p: float) -> None:
        self.encoder.set_dropout_proportion(p)
        if hasattr(self.head, "set_dropout_proportion"):
            self.head.set_dropout_proportion(p)

    def set_dropout_active(self, active: bool, proportion: Optional[float] = None) -> None:
        self.encoder.set_dropout_active(active, proportion)
        if hasattr(self.head, "set_dropout_active"):
            self.head.set_dropout_active(active, proportion)


def encoder_record(model_info: Dict, where: str) -> Dict:
    """The encoder record ({"type", "config"}) of a pre-training checkpoint's model_info (a MAM
    or wav2vec 2.0 model) or of a fine-tuned model's (to fine-tune again)."""
    kind = model_info.get("type")
    config = model_info.get("config")
    if kind == "pretrained" and isinstance(config, dict):
        return dict(config["encoder"])
    if kind in ENCODERS and isinstance(config, dict):
        return {"type": kind, "config": dict(config)}
    raise FrugalError(f"{where}: not a pre-trained encoder (model type {kind!r}; expected a checkpoint of "
                      f"frugal pretrain: {', '.join(ENCODERS)})")


def encoder_state(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The encoder's weights within a pre-training (or fine-tuned) model's state dict."""
    return {k[len("encoder."):]: v for k, v in state_dict.items() if k.startswith("encoder.")}
