"""The masked acoustic model (MAM; TERA, Liu et al. 2021) of thesis ch. 4: its encoder and its
reconstruction head.

    fbank (B, T, 80)
      -> per-utterance mean and variance normalisation (the CMVN'd input and target of TERA)
      -> Linear feat_dim -> d_model, + sinusoidal positions, LayerNorm, dropout
      -> num_layers post-LayerNorm transformer layers (GELU feed-forward; TERA and BERT are
         post-LN):   x = LN(x + dropout(attention(x)));  x = LN(x + dropout(ffn(x)))
    = the encoder's hidden states (B, T, d_model) at the input's 100 Hz frame rate

    pre-training (MamModel): hidden -> Linear d -> d -> GELU -> LayerNorm -> Linear d -> feat_dim,
    the reconstruction of the unaltered normalised input (`frugal.pretrain.mam` alters the input
    and computes the L1 loss on the altered positions).

`MamEncoder` is what fine-tuning keeps (`frugal.models.finetune`): ``encode(features,
lengths)`` normalises and runs the network; padded frames never change valid ones (the
normalisation reads an utterance's own frames, attention masks padded keys). Its
self-attention is any kind of `frugal.models.attention` (``attention`` option, default
softmax), as in `frugal.models.transformer`.

Presets (thesis table 4.1): ``mam-s`` 3 layers of 12 x 64 (768), feed-forward 3072; ``mam-b``
12 layers of 6 x 64 (384), feed-forward 1536. The spec notes that mam-b as written has about
21 M parameters, not the 36 M of table 4.1; the stated shape is kept. ``mam-small`` (3 layers
of 192, 3 heads, feed-forward 768) is the spec's 2-core size.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, Tuple

import torch
import torch.nn as nn

from frugal.errors import FrugalError
from frugal.models.attention import AttentionFields
from frugal.models.presets import config_from_mapping
from frugal.models.transformer import Dropout, DropoutControl, PostLnLayer, sinusoidal_positions


@dataclass
class MamConfig(AttentionFields):
    """Sizes of a MAM encoder, and its self-attention kind (`AttentionFields`)."""

    feat_dim: int = 80
    d_model: int = 768
    num_layers: int = 3
    num_heads: int = 12
    ff_dim: int = 3072
    dropout: float = 0.3  # the reference configuration's (spec 1.1); mam-small uses 0.1
    attention: str = "softmax"
    clusters: int = 100
    bits: int = 63
    iterations: int = 10
    topk: int = 32

    def validate(self, where: str = "MamConfig") -> None:
        for name in ("feat_dim", "d_model", "num_layers", "num_heads", "ff_dim"):
            if getattr(self, name) <= 0:
                raise FrugalError(f"{where}: {name} must be positive (got {getattr(self, name)})")
        if self.d_model % self.num_heads or self.d_model % 2:
            raise FrugalError(f"{where}: d_model {self.d_model} must be even and a multiple of num_heads "
                              f"{self.num_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise FrugalError(f"{where}: dropout must be in [0, 1) (got {self.dropout})")
        self.validate_attention(where)


PRESETS: Dict[str, MamConfig] = {
    "mam-s": MamConfig(d_model=768, num_layers=3, num_heads=12, ff_dim=3072),
    "mam-b": MamConfig(d_model=384, num_layers=12, num_heads=6, ff_dim=1536),
    "mam-small": MamConfig(d_model=192, num_layers=3, num_heads=3, ff_dim=768, dropout=0.1),
}


def config_from_dict(d: dict, where: str = "MamConfig") -> MamConfig:
    return config_from_mapping(MamConfig, PRESETS, "mam", d, where)


def valid_frames(lengths: torch.Tensor, num_frames: int, device=None) -> torch.Tensor:
    """(B, T) bool: frame t of utterance b is within its length."""
    return torch.arange(num_frames, device=device).unsqueeze(0) < lengths.to(device).unsqueeze(1)


def utterance_cmvn(features: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Each utterance's features with its own per-dimension mean and variance normalised over
    its valid frames; padded frames come out 0."""
    valid = valid_frames(lengths, features.shape[1], features.device).unsqueeze(2)
    count = valid.sum(dim=1, keepdim=True).clamp(min=1).to(features.dtype)
    mean = (features * valid).sum(dim=1, keepdim=True) / count
    var = (((features - mean) * valid) ** 2).sum(dim=1, keepdim=True) / count
    return torch.where(valid, (features - mean) / torch.sqrt(var + eps), torch.zeros_like(features))


class MamEncoder(DropoutControl, nn.Module):
    """fbank (B, T, F) -> hidden states (B, T, d_model), one per input frame (see the module docstring)."""

    input_frames_per_output = 1

    def __init__(self, config: MamConfig) -> None:
        super().__init__()
        config.validate()
        self.config = c = config
        self.input_proj = nn.Linear(c.feat_dim, c.d_model)
        self.input_norm = nn.LayerNorm(c.d_model)
        self.input_dropout = Dropout()
        self.layers = nn.ModuleList(PostLnLayer(c.d_model, c.num_heads, c.ff_dim, c.attention_options())
                                    for _ in range(c.num_layers))
        self.set_dropout_proportion(c.dropout)

    @property
    def output_dim(self) -> int:
        return self.config.d_model

    def encoder_info(self) -> Dict:
        return {"type": "mam", "config": dataclasses.asdict(self.config)}

    @classmethod
    def from_info(cls, config: Dict, where: str = "mam encoder") -> "MamEncoder":
        return cls(config_from_dict(config, where))

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return lengths

    def normalize(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return utterance_cmvn(features, lengths)

    def network(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Hidden states of already normalised (and, in pre-training, altered) input."""
        if x.dim() != 3 or x.shape[2] != self.config.feat_dim:
            raise ValueError(f"expected (B, T, {self.config.feat_dim}) features, got {tuple(x.shape)}")
        T = x.shape[1]
        h = self.input_proj(x) + sinusoidal_positions(T, self.config.d_model, x.device, x.dtype)
        h = self.input_dropout(self.input_norm(h))
        positions = torch.arange(T, device=x.device).unsqueeze(0)
        keys = valid_frames(lengths, T, x.device) | (positions == 0)  # no all-masked rows
        for layer in self.layers:
            h = layer(h, keys)
        return h

    def encode(self, features: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(hidden (B, T, d_model), lengths): the fine-tuning path."""
        return self.network(self.normalize(features, lengths), lengths), lengths


class MamModel(nn.Module):
    """The pre-training model: MamEncoder and the reconstruction head (module docstring)."""

    def __init__(self, config: MamConfig) -> None:
        super().__init__()
        self.encoder = MamEncoder(config)
        d = config.d_model
        self.head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d), nn.Linear(d, config.feat_dim))

    @property
    def config(self) -> MamConfig:
        return self.encoder.config

    def model_info(self) -> Dict:
        return {"type": "mam", "config": dataclasses.asdict(self.config)}

    def forward(self, altered: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The reconstruction (B, T, feat_dim) of normalised, altered input."""
        return self.head(self.encoder.network(altered, lengths))

    def set_dropout_proportion(self, p: float) -> None:
        self.encoder.set_dropout_proportion(p)
