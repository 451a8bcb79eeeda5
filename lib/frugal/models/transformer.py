"""Transformer encoder acoustic model for chain (LF-MMI) and CTC training, with TdnnfModel's interface.

    features (B, T, F)
      -> minus the utterance's mean feature vector (mean_norm; Kaldi's apply-cmvn, means only)
      -> frame subsampling: Conv1d over input frames {3k - c, ..., 3k + c} with stride 3
         (c = frontend_context; edge frames repeated per utterance, as TdnnfModel pads)
         -> ReLU -> Linear -> LayerNorm                               (B, ceil(T / 3), d_model)
      -> + sinusoidal absolute positional encoding (position k = output frame k) -> dropout
      -> num_layers pre-LayerNorm encoder layers:
             x = x + dropout(self_attention(LayerNorm(x)))   (key padding mask from the lengths;
                                                               `attention` kind, default softmax)
             x = x + dropout(feed_forward(LayerNorm(x)))     (Linear -> ReLU -> dropout -> Linear)
      -> LayerNorm
      -> chain head: TdnnfModel's prefinal layers (Linear -> ReLU -> batchnorm -> Linear ->
                     batchnorm) -> Linear num_pdfs
      -> xent head:  the same structure, with log-softmax on its output

Output frame ``k`` sits at input frame ``3k`` like TdnnfModel's, and there are
``ceil(T / subsampling_factor)`` of them. Padded frames never influence valid ones: the
mean normalisation and the front-end read only frames of their own utterance, attention
masks the keys beyond each utterance's output length, and the heads' batchnorms take their
training statistics from valid frames only, so an utterance gives the same outputs alone
and padded in a batch.

On yesno (flat-start LF-MMI, 27 training files, 20 epochs, 2 layers of 96) both the mean
normalisation and the batchnorm heads matter: without the former the held-out objective
ends near -0.11 instead of -0.07 (TdnnfModel's -0.07); with LayerNorm heads instead of
the latter it stays at the input-independent optimum, -0.12.

The self-attention is the config's ``attention`` kind (`frugal.models.attention`: softmax,
linear, causal-linear, clustered, improved-clustered, topk, with ``clusters``, ``bits``,
``iterations``, ``topk``); `set_attention` swaps it in a trained model (decoding a
softmax-trained model with improved clustered attention, thesis Table 5.2). No kind has
parameters of its own, so every kind loads every checkpoint.

Dropout is standard (Bernoulli, kept values scaled by 1 / (1 - p)) on the attention
weights, on both residual branches, inside the feed-forward block and after the positional
encoding, all with one proportion: ``config.dropout`` at construction, then whatever
``set_dropout_proportion`` sets (the trainer's Kaldi-style dropout schedule).
``set_dropout_active`` keeps it stochastic in eval mode for Monte-Carlo dropout while
everything else stays in eval mode (the batchnorms use their running statistics).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from frugal.errors import FrugalError
from frugal.models.attention import AttentionFields, AttentionOptions, attention
from frugal.models.frame_shift import frame_shift_augment
from frugal.models.presets import config_from_mapping, from_preset
from frugal.models.input_norm import utterance_mean_normalize


@dataclass
class TransformerConfig(AttentionFields):
    """Sizes of a transformer acoustic model (see the module docstring for the layout), and the
    self-attention kind (`AttentionFields`: softmax, linear, causal-linear, clustered,
    improved-clustered or topk, with their hyper-parameters)."""

    feat_dim: int = 80
    num_pdfs: int = 0
    d_model: int = 256
    num_layers: int = 12
    num_heads: int = 4
    ff_dim: int = 1024
    # The chain and xent heads: Linear head_dim -> batchnorm -> Linear head_bottleneck_dim -> output.
    head_dim: int = 1024
    head_bottleneck_dim: int = 256
    # Subtract each utterance's mean feature vector first.
    mean_norm: bool = True
    subsampling_factor: int = 3
    # The front-end's convolution sees input frames 3k - c .. 3k + c for output frame k.
    frontend_context: int = 2
    # Dropout proportion until set_dropout_proportion (a train dropout_schedule) changes it.
    dropout: float = 0.1
    # Kaldi's frame-shift augmentation in training (frugal.models.frame_shift).
    frame_shift: bool = False
    attention: str = "softmax"
    clusters: int = 100
    bits: int = 63
    iterations: int = 10
    topk: int = 32

    def validate(self, where: str = "TransformerConfig") -> None:
        if self.num_pdfs <= 0:
            raise FrugalError(f"{where}: num_pdfs must be set to a positive number (got {self.num_pdfs})")
        for name in ("feat_dim", "d_model", "num_layers", "num_heads", "ff_dim", "head_dim", "head_bottleneck_dim",
                     "subsampling_factor"):
            if getattr(self, name) <= 0:
                raise FrugalError(f"{where}: {name} must be positive (got {getattr(self, name)})")
        if self.d_model % self.num_heads != 0:
            raise FrugalError(f"{where}: d_model {self.d_model} is not a multiple of num_heads {self.num_heads}")
        if self.d_model % 2 != 0:
            raise FrugalError(f"{where}: d_model {self.d_model} must be even (sine/cosine position pairs)")
        if 2 * self.frontend_context + 1 < self.subsampling_factor:
            raise FrugalError(
                f"{where}: frontend_context {self.frontend_context} leaves input frames unseen: the window "
                f"2 * frontend_context + 1 must cover subsampling_factor {self.subsampling_factor} frames"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise FrugalError(f"{where}: dropout must be in [0, 1) (got {self.dropout})")
        self.validate_attention(where)


# Named configurations: "small" for egs/mini and yesno, "base" for corpora of tens of hours and up.
PRESETS: Dict[str, TransformerConfig] = {
    "transformer-small": TransformerConfig(d_model=192, num_layers=4, num_heads=4, ff_dim=768, head_dim=256,
                                           head_bottleneck_dim=64),
    "transformer-base": TransformerConfig(d_model=256, num_layers=12, num_heads=4, ff_dim=1024, head_dim=1024,
                                          head_bottleneck_dim=256),
}


def transformer_config(preset: str, **overrides) -> TransformerConfig:
    """A copy of a named configuration with some fields replaced (e.g. ``num_pdfs``)."""
    return from_preset(PRESETS, preset, "transformer", **overrides)


def config_from_dict(d: dict, where: str = "TransformerConfig") -> TransformerConfig:
    """Build a config from a mapping; ``preset: name`` starts from a named configuration."""
    return config_from_mapping(TransformerConfig, PRESETS, "transformer", d, where)


ATTENTION_FIELDS = ("attention", "clusters", "bits", "iterations", "topk")


def set_attention(model: nn.Module, kind: str, **opts) -> nn.Module:
    """Swap the self-attention of a (loaded) transformer model for ``kind`` (one of
    ``frugal.models.attention.KINDS``) with ``opts`` (clusters, bits, iterations, topk);
    returns the model. Models without attention (TDNN-F) are a FrugalError."""
    if not isinstance(model, TransformerModel):
        raise FrugalError(f"attention {kind}: the model ({type(model).__name__}) has no self-attention to swap")
    model.set_attention(kind, **opts)
    return model


class Dropout(nn.Module):
    """Standard dropout whose proportion ``p`` is set from outside (schedule, MC dropout).

    Active in training mode, or in eval mode after ``force_active = True`` (Monte-Carlo
    dropout). Besides dropping its own input, it gives the attention its proportion
    (``active_proportion``) for the attention weights.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p
        self.force_active = False

    def active_proportion(self) -> float:
        return self.p if (self.training or self.force_active) else 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.active_proportion()
        return F.dropout(x, p, training=True) if p > 0.0 else x

    def extra_repr(self) -> str:
        return f"p={self.p}"


def sinusoidal_positions(num: int, dim: int, device=None, dtype=None) -> torch.Tensor:
    """(num, dim) absolute encodings: [2i] = sin(k / 10000^(2i/dim)), [2i+1] = cos(the same)."""
    k = torch.arange(num, device=device, dtype=torch.float64).unsqueeze(1)
    inv_freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float64) * (-math.log(10000.0) / dim))
    pe = torch.empty(num, dim, device=device, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(k * inv_freq)
    pe[:, 1::2] = torch.cos(k * inv_freq)
    return pe.to(dtype)


class FrameSubsampling(nn.Module):
    """Input frames (B, T, F) -> (B, ceil(T / s), d_model), output k from frames 3k - c .. 3k + c."""

    def __init__(self, feat_dim: int, d_model: int, subsampling_factor: int, context: int) -> None:
        super().__init__()
        self.subsampling_factor = subsampling_factor
        self.context = context
        self.conv = nn.Conv1d(feat_dim, d_model, kernel_size=2 * context + 1, stride=subsampling_factor)
        self.linear = nn.Linear(d_model, d_model)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, num_out: int) -> torch.Tensor:
        # Gather frames clamp(t, 0, T_b - 1) for t in [-c, s (num_out - 1) + c], per utterance,
        # so that neither the padding of a batch nor the edges add anything but the edge frames.
        s, c = self.subsampling_factor, self.context
        t = torch.arange(s * (num_out - 1) + 2 * c + 1, device=x.device) - c
        last = (lengths.to(x.device) - 1).clamp(min=0)
        idx = torch.minimum(t.clamp(min=0).unsqueeze(0), last.unsqueeze(1))  # (B, total)
        x = torch.gather(x, 1, idx.unsqueeze(2).expand(-1, -1, x.shape[2]))
        x = F.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        return self.norm(self.linear(x))


class SelfAttention(nn.Module):
    """Multi-head self-attention over (B, T, d) with a key padding mask, of the kind
    ``options`` names (`frugal.models.attention`; default softmax, i.e. scaled dot product).

    The clustered kinds' random hyperplanes come from torch's global RNG in training (the
    trainer seeds it per batch) and from a generator seeded with ``EVAL_SEED`` at every call
    in eval mode, so that decoding is deterministic. ``causal-linear`` makes the layer causal.
    """

    EVAL_SEED = 0

    def __init__(self, d_model: int, num_heads: int, options: Optional[AttentionOptions] = None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.options = options or AttentionOptions()
        self.in_proj = nn.Linear(d_model, 3 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = Dropout()  # on the attention weights

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``valid``: (B, T) bool, True for the keys that may be attended to."""
        B, T, d = x.shape
        q, k, v = self.in_proj(x).view(B, T, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        o = self.options
        if o.kind == "softmax":  # as before the other kinds existed: the same computation, bit for bit
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=valid[:, None, None, :],
                                               dropout_p=self.dropout.active_proportion())
        else:
            generator = None
            if o.kind in ("clustered", "improved-clustered") and not self.training:
                generator = torch.Generator().manual_seed(self.EVAL_SEED)
            y = attention(q, k, v, o.kind, key_padding_mask=~valid, dropout_p=self.dropout.active_proportion(),
                          generator=generator, **o.opts())
        return self.out_proj(y.transpose(1, 2).reshape(B, T, d))

    def extra_repr(self) -> str:
        return f"attention={self.options.kind}"


class FeedForward(nn.Module):
    def __init__(self, d_model: int, ff_dim: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, ff_dim)
        self.dropout = Dropout()
        self.linear2 = nn.Linear(ff_dim, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(F.relu(self.linear1(x))))


class EncoderLayer(nn.Module):
    """Pre-LayerNorm transformer layer: residual attention, then residual feed-forward."""

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, options: Optional[AttentionOptions] = None) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, num_heads, options)
        self.attn_dropout = Dropout()
        self.ff_norm = nn.LayerNorm(d_model)
        self.ff = FeedForward(d_model, ff_dim)
        self.ff_dropout = Dropout()

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        x = x + self.attn_dropout(self.attn(self.attn_norm(x), valid))
        return x + self.ff_dropout(self.ff(self.ff_norm(x)))


class PostLnLayer(nn.Module):
    """Post-LayerNorm layer with a GELU feed-forward block (BERT; TERA's MAM and wav2vec 2.0):
    x = LN(x + dropout(attention(x))); x = LN(x + dropout(ffn(x))), ``inner_dropout`` also
    inside the feed-forward block (TERA has it, wav2vec 2.0 BASE not)."""

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, options: Optional[AttentionOptions] = None,
                 inner_dropout: bool = True) -> None:
        super().__init__()
        self.attn = SelfAttention(d_model, num_heads, options)
        self.attn_dropout = Dropout()
        self.attn_norm = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, ff_dim)
        self.ff_inner_dropout = Dropout() if inner_dropout else nn.Identity()
        self.linear2 = nn.Linear(ff_dim, d_model)
        self.ff_dropout = Dropout()
        self.ff_norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """``keys``: (B, T) bool, True for the keys that may be attended to."""
        x = self.attn_norm(x + self.attn_dropout(self.attn(x, keys)))
        y = self.linear2(self.ff_inner_dropout(F.gelu(self.linear1(x))))
        return self.ff_norm(x + self.ff_dropout(y))


class DropoutControl:
    """``set_dropout_proportion`` / ``set_dropout_active`` over every `Dropout` of a module."""

    def dropout_modules(self) -> List[Dropout]:
        return [m for m in self.modules() if isinstance(m, Dropout)]

    def set_dropout_proportion(self, p: float) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout proportion {p} is out of range [0, 1)")
        for m in self.dropout_modules():
            m.p = float(p)

    def set_dropout_active(self, active: bool, proportion: Optional[float] = None) -> None:
        """Keep dropout stochastic in eval mode (Monte-Carlo dropout); nothing else changes."""
        if proportion is not None:
            self.set_dropout_proportion(proportion)
        for m in self.dropout_modules():
            m.force_active = active


class MaskedBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the channels of (B, T, C) frames whose statistics in training come from
    the valid frames only, so that padding never changes them (padded frames come out 0)."""

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x.reshape(-1, x.shape[-1])).view_as(x)
        out = x.new_zeros(x.shape)
        out[valid] = super().forward(x[valid])
        return out


class OutputHead(nn.Module):
    """TdnnfModel's prefinal + output layers on (B, T, d) frames: Linear big -> ReLU ->
    batchnorm -> Linear small (no bias) -> batchnorm -> Linear num_pdfs.

    Per-channel batch statistics make the frame-to-frame variation of the encoder output
    stand out against what all frames share (see the module docstring for what per-frame
    LayerNorms in their place gave). The output layer starts at zero (Kaldi's
    param-stddev=0), as in TdnnfModel.
    """

    def __init__(self, d_model: int, big_dim: int, small_dim: int, num_pdfs: int) -> None:
        super().__init__()
        self.affine = nn.Linear(d_model, big_dim)
        self.batchnorm1 = MaskedBatchNorm(big_dim, affine=False)
        self.linear = nn.Linear(big_dim, small_dim, bias=False)
        self.batchnorm2 = MaskedBatchNorm(small_dim, affine=False)
        self.output = nn.Linear(small_dim, num_pdfs)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        x = self.batchnorm1(F.relu(self.affine(x)), valid)
        return self.output(self.batchnorm2(self.linear(x), valid))


class TransformerModel(DropoutControl, nn.Module):
    """(B, T, F) features -> chain output and xent log-probs, both (B, ceil(T / 3), num_pdfs)."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        c = config
        self.frontend = FrameSubsampling(c.feat_dim, c.d_model, c.subsampling_factor, c.frontend_context)
        self.input_dropout = Dropout()
        self.layers = nn.ModuleList(EncoderLayer(c.d_model, c.num_heads, c.ff_dim, c.attention_options())
                                    for _ in range(c.num_layers))
        self.final_norm = nn.LayerNorm(c.d_model)
        self.chain_head = OutputHead(c.d_model, c.head_dim, c.head_bottleneck_dim, c.num_pdfs)
        self.xent_head = OutputHead(c.d_model, c.head_dim, c.head_bottleneck_dim, c.num_pdfs)
        self.set_dropout_proportion(c.dropout)

    def model_info(self) -> Dict:
        """What a checkpoint needs to rebuild this model: primitives only (weights_only-safe).

        A softmax model's record leaves the attention fields out (they change nothing), so
        that it equals the records of checkpoints written before attention kinds existed
        (resuming and --init-model compare them)."""
        config = dataclasses.asdict(self.config)
        if self.config.attention == "softmax":
            for name in ATTENTION_FIELDS:
                del config[name]
        return {"type": "transformer", "config": config}

    def set_attention(self, kind: str, **opts) -> None:
        """Use attention ``kind`` with ``opts`` (clusters, bits, iterations, topk; unnamed ones
        keep the config's) in every layer from now on, e.g. a softmax-trained model decoded with
        improved-clustered attention; the config (and so model_info) follows."""
        unknown = sorted(set(opts) - set(ATTENTION_FIELDS[1:]))
        if unknown:
            raise FrugalError(f"unknown attention option(s) {', '.join(unknown)} "
                              f"(known: {', '.join(ATTENTION_FIELDS[1:])})")
        config = dataclasses.replace(self.config, attention=kind,
                                     **{k: v for k, v in opts.items() if v is not None})
        config.validate("set_attention")
        self.config = config
        for layer in self.layers:
            layer.attn.options = config.attention_options()

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Output frames for input lengths: ceil(T / subsampling_factor)."""
        f = self.config.subsampling_factor
        return torch.div(lengths + f - 1, f, rounding_mode="floor")

    def forward(self, features: torch.Tensor, lengths: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (chain_output, xent_log_probs, output_lengths); outputs are (B, T', num_pdfs)."""
        if features.dim() != 3 or features.shape[2] != self.config.feat_dim:
            raise ValueError(f"expected (B, T, {self.config.feat_dim}) features, got {tuple(features.shape)}")
        out_lengths = self.output_lengths(lengths)
        num_out = int(out_lengths.max()) if out_lengths.numel() else 0
        if self.training and self.config.frame_shift:
            features = frame_shift_augment(features, lengths, self.config.subsampling_factor)
        if self.config.mean_norm:
            features = utterance_mean_normalize(features, lengths)
        x = self.frontend(features, lengths, num_out)
        x = self.input_dropout(x + sinusoidal_positions(num_out, x.shape[2], x.device, x.dtype))
        positions = torch.arange(num_out, device=x.device).unsqueeze(0)
        valid = positions < out_lengths.to(x.device).unsqueeze(1)
        keys = valid | (positions == 0)  # an empty utterance attends to something: no NaN rows
        for layer in self.layers:
            x = layer(x, keys)
        x = self.final_norm(x)
        return self.chain_head(x, valid), self.xent_head(x, valid).log_softmax(dim=-1), out_lengths
