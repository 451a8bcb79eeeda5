"""A transducer (RNN-T) acoustic model: any frugal encoder, a stateless predictor, a joiner.

As icefall's pruned_transducer_stateless recipes (Kuang et al. 2022; Ghodsi et al. 2020 for
the stateless predictor):

- encoder: a TDNN-F or transformer of `frugal.models` whose output layer (its "chain" head)
  has ``encoder_dim`` outputs; (B, T, F) features -> (B, T', encoder_dim), T' = ceil(T / 3);
- predictor: the embedding of the last ``context_size`` tokens (blank pads the start; the
  blank's row is zero) -> grouped Conv1d over them -> ReLU; no recurrence, so a hypothesis's
  predictor state is its last ``context_size`` tokens;
- joiner: ``output_linear(tanh(encoder_proj(enc) + decoder_proj(dec)))`` -> vocab_size logits;
- ``simple_am_proj`` / ``simple_lm_proj``: the linear maps to vocab_size of the simple
  (additive-joiner) loss whose occupations give the pruning bounds (`frugal.losses.rnnt`).

Id 0 (``<blk>`` of `frugal prepare-units`) is the blank. The encoder's xent head is unused.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from frugal.errors import FrugalError
from frugal.models.presets import type_problem

EncoderBuilder = Callable[[Dict, str], nn.Module]
Head = Callable[["TransducerModel", torch.Tensor, torch.Tensor], object]


@dataclass
class TransducerConfig:
    """Sizes of a transducer; ``encoder`` is the encoder's model section (type and options)."""

    feat_dim: int = 80
    num_pdfs: int = 0           # the vocabulary size (units + blank)
    encoder: Dict = field(default_factory=lambda: {"type": "tdnnf"})
    encoder_dim: int = 256      # the encoder's output size
    decoder_dim: int = 256      # the predictor's embedding and output size
    joiner_dim: int = 256
    context_size: int = 2       # tokens the predictor sees (1: a bigram-like embedding only)
    blank: int = 0

    def validate(self, where: str = "TransducerConfig") -> None:
        if self.num_pdfs < 2:
            raise FrugalError(f"{where}: num_pdfs (the vocabulary with blank) must be at least 2 (got {self.num_pdfs})")
        for name in ("feat_dim", "encoder_dim", "decoder_dim", "joiner_dim", "context_size"):
            if getattr(self, name) <= 0:
                raise FrugalError(f"{where}: transducer option {name} must be positive (got {getattr(self, name)})")
        if self.decoder_dim % 4 != 0 and self.context_size > 1:
            raise FrugalError(f"{where}: decoder_dim {self.decoder_dim} must be a multiple of 4 "
                              "(the predictor's convolution has decoder_dim / 4 groups)")
        if not 0 <= self.blank < self.num_pdfs:
            raise FrugalError(f"{where}: blank {self.blank} is not a unit id")
        if not isinstance(self.encoder, dict) or "type" not in self.encoder:
            raise FrugalError(f"{where}: transducer option encoder must be a model section with a type "
                              "(e.g. encoder: {type: transformer, preset: transformer-small})")
        if self.encoder["type"] == "transducer":
            raise FrugalError(f"{where}: a transducer's encoder cannot be a transducer")


def config_from_dict(d: Dict, where: str = "transducer config") -> TransducerConfig:
    """A TransducerConfig from a model section (``type: transducer`` removed)."""
    names = [f.name for f in dataclasses.fields(TransducerConfig)]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise FrugalError(f"{where}: unknown transducer option(s): {', '.join(unknown)} (known: {', '.join(names)})")
    defaults = TransducerConfig()
    for name, value in d.items():
        if name == "encoder":
            if not isinstance(value, dict):
                raise FrugalError(f"{where}: transducer option encoder must be a mapping (got {value!r})")
            continue
        what = type_problem(value, getattr(defaults, name))
        if what:
            raise FrugalError(f"{where}: transducer option {name} must be {what} (got {value!r})")
    cfg = TransducerConfig(**{**d, "encoder": dict(d.get("encoder", defaults.encoder))})
    cfg.validate(where)
    return cfg


class Predictor(nn.Module):
    """The stateless prediction network (icefall's ``decoder.py``): tokens -> (.., decoder_dim)."""

    def __init__(self, vocab_size: int, decoder_dim: int, blank: int, context_size: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, decoder_dim, padding_idx=blank)
        self.blank = blank
        self.context_size = context_size
        self.conv = (nn.Conv1d(decoder_dim, decoder_dim, kernel_size=context_size, groups=decoder_dim // 4,
                               bias=False) if context_size > 1 else None)

    def forward(self, y: torch.Tensor, need_pad: bool = True) -> torch.Tensor:
        """y (N, U) token ids -> (N, U, decoder_dim); output u depends on y[u - c + 1 .. u].

        ``need_pad``: pad the left with blanks (training: y is blank + the symbols); without
        it, U must be context_size and one output comes out (decoding: the last tokens)."""
        emb = self.embedding(y).permute(0, 2, 1)  # (N, D, U)
        if self.conv is not None:
            if need_pad:
                emb = F.pad(emb, (self.context_size - 1, 0))
            elif emb.shape[2] != self.context_size:
                raise ValueError(f"need_pad=False takes {self.context_size} tokens, got {emb.shape[2]}")
            emb = self.conv(emb)
        return F.relu(emb.permute(0, 2, 1))


class Joiner(nn.Module):
    """output_linear(tanh(encoder_proj(enc) + decoder_proj(dec)))."""

    def __init__(self, encoder_dim: int, decoder_dim: int, joiner_dim: int, vocab_size: int) -> None:
        super().__init__()
        self.encoder_proj = nn.Linear(encoder_dim, joiner_dim)
        self.decoder_proj = nn.Linear(decoder_dim, joiner_dim)
        self.output_linear = nn.Linear(joiner_dim, vocab_size)

    def forward(self, enc: torch.Tensor, dec: torch.Tensor, project_input: bool = True) -> torch.Tensor:
        """Logits of enc + dec (broadcast); with ``project_input=False`` both are already
        projected to joiner_dim (the pruned loss projects before gathering the band)."""
        if project_input:
            enc, dec = self.encoder_proj(enc), self.decoder_proj(dec)
        return self.output_linear(torch.tanh(enc + dec))


class TransducerModel(nn.Module):
    """Encoder + stateless predictor + joiner (see the module docstring)."""

    def __init__(self, config: TransducerConfig, encoder: nn.Module) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.encoder = encoder
        c = config
        self.predictor = Predictor(c.num_pdfs, c.decoder_dim, c.blank, c.context_size)
        self.joiner = Joiner(c.encoder_dim, c.decoder_dim, c.joiner_dim, c.num_pdfs)
        self.simple_am_proj = nn.Linear(c.encoder_dim, c.num_pdfs)
        self.simple_lm_proj = nn.Linear(c.decoder_dim, c.num_pdfs)

    @classmethod
    def from_config(cls, config: TransducerConfig, build_encoder: EncoderBuilder,
                    where: str = "transducer config") -> "TransducerModel":
        """The encoder from ``config.encoder``, a model section or a stored model_info
        ({type, config}), with the config's feat_dim and encoder_dim outputs."""
        enc = dict(config.encoder)
        kind = enc.pop("type")
        if set(enc) == {"config"}:  # a checkpoint's model_info: the encoder's full config
            enc = dict(enc["config"])
        for key, value in (("feat_dim", config.feat_dim), ("num_pdfs", config.encoder_dim)):
            if key in enc and enc[key] != value:
                raise FrugalError(f"{where}: the encoder's {key} is {enc[key]} but the transducer's "
                                  f"{'feat_dim' if key == 'feat_dim' else 'encoder_dim'} is {value}")
            enc[key] = value
        return cls(config, build_encoder({"type": kind, **enc}, f"{where} (encoder)"))

    @property
    def blank(self) -> int:
        return self.config.blank

    @property
    def vocab_size(self) -> int:
        return self.config.num_pdfs

    @property
    def context_size(self) -> int:
        return self.config.context_size

    def model_info(self) -> Dict:
        config = dataclasses.asdict(self.config)
        config["encoder"] = self.encoder.model_info()
        return {"type": "transducer", "config": config}

    def encode(self, features: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, T, F) features -> (B, T', encoder_dim) encoder output and its lengths."""
        enc, _, out_lens = self.encoder(features, lengths)
        return enc, out_lens

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, head: Optional[Head] = None):
        """The encoder's (output, None, lengths), as other frugal models return (output,
        xent, lengths): a transducer has no xent output. With ``head``, what
        ``head(self, output, lengths)`` returns: a training objective's losses, computed
        inside forward so that DDP sees every parameter they use."""
        enc, out_lens = self.encode(features, lengths)
        if head is not None:
            return head(self, enc, out_lens)
        return enc, None, out_lens

    # ---- what the trainer and Monte-Carlo dropout call ----------------------------------

    def set_dropout_proportion(self, p: float) -> None:
        self.encoder.set_dropout_proportion(p)

    def set_dropout_active(self, active: bool, proportion: Optional[float] = None) -> None:
        """Monte-Carlo dropout in the encoder (the predictor and joiner have none)."""
        self.encoder.set_dropout_active(active, proportion)

    def after_optimizer_step(self, step: int) -> None:
        hook = getattr(self.encoder, "after_optimizer_step", None)
        if hook is not None:
            hook(step)
