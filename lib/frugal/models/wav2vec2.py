"""wav2vec 2.0 (BASE layout): the fine-tuning encoder and the pre-training model with its
Gumbel product quantiser (thesis ch. 4, Baevski et al. 2020).

    samples (B, S, 1), 16 kHz, lengths in samples
      -> conv front end: 7 blocks Conv1d (no bias) -> [per-channel norm, first block only] -> GELU
         (kernels 10,3,3,3,3,2,2, strides 5,2,2,2,2,2,2: 400-sample receptive field, 320-sample hop)
                                                                     (B, T', conv_channels), 50 Hz
      -> LayerNorm ("local" features: what the quantiser reads, unmasked)
      -> Linear d_model -> dropout -> masked steps replaced by a learned mask embedding
      -> x + GELU(weight-normed grouped Conv1d(x)) (convolutional positional embedding)
      -> LayerNorm -> dropout
      -> num_layers post-LayerNorm layers:
             x = LN(x + dropout(self_attention(x)))
             x = LN(x + dropout(feed_forward(x)))      (Linear -> GELU -> Linear)
                                                                     (B, T', d_model)

Pre-training (`Wav2Vec2Model`) adds ``final_proj`` (d_model -> final_dim) on the encoder
output (the "context" c_t) and ``project_q`` on the quantised local features (the targets
q_t); losses are in `frugal.losses.contrastive`, masks in `frugal.pretrain.span_masking`.

Padding never changes an utterance's outputs: the front end's convolutions have no padding,
so output step t reads samples 320 t .. 320 t + 399 and the valid steps
(`conv_output_lengths`) read valid samples only; the first block's normalisation (fairseq's
GroupNorm(C, C), i.e. a per-channel normalisation over time) takes its mean and variance
from each utterance's own valid steps; the positional convolution sees zeros at padded
steps, exactly as at the end of an utterance alone; attention masks padded keys.

Decisions where the description left room (fairseq behaviour noted where it differs):
- ``features_pen`` is the mean square of the conv features over VALID steps only (fairseq
  averages over the padded batch).
- The quantiser's perplexities average over all valid steps (fairseq quantises the masked
  steps only). ``code_perplexity`` counts the argmax codes of the logits, without Gumbel
  noise, as fairseq does.
- A LayerNorm follows the positional embedding (fairseq's encoder with layer_norm_first
  False); there is no final LayerNorm after the last layer.
- Dropout: one proportion for all `Dropout` modules (schedulable like TransformerModel's):
  after the projection (fairseq dropout_input), on the quantiser input (dropout_features,
  Wav2Vec2Model only), after the positional embedding, on the attention weights and on both
  residual branches. None inside the feed-forward block (fairseq BASE activation_dropout 0).
  No layer drop.
- ``feature_grad_mult`` (default 0.1, fairseq BASE pre-training) scales the gradient that
  reaches the conv front end; 0 or ``freeze_feature_extractor = True`` (fine-tuning,
  fairseq feature_grad_mult 0) runs it under torch.no_grad.
- Utterances shorter than the 400-sample receptive field have 0 output steps.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from frugal.errors import FrugalError
from frugal.models.presets import config_from_mapping, from_preset
from frugal.models.transformer import Dropout, DropoutControl, PostLnLayer

BASE_KERNELS = [10, 3, 3, 3, 3, 2, 2]
BASE_STRIDES = [5, 2, 2, 2, 2, 2, 2]


@dataclass
class Wav2Vec2Config:
    """Sizes of a wav2vec 2.0 model (see the module docstring for the layout)."""

    # Input "features": raw 16 kHz samples, one per step.
    feat_dim: int = 1
    conv_channels: int = 512
    conv_kernels: List[int] = field(default_factory=lambda: list(BASE_KERNELS))
    conv_strides: List[int] = field(default_factory=lambda: list(BASE_STRIDES))
    d_model: int = 768
    num_layers: int = 12
    num_heads: int = 12
    ff_dim: int = 3072
    pos_conv_kernel: int = 128
    pos_conv_groups: int = 16
    dropout: float = 0.1
    # Quantiser: latent_groups codebooks of latent_vars entries, codevectors of final_dim.
    final_dim: int = 256
    latent_groups: int = 2
    latent_vars: int = 320
    # Span masking for pre-training (frugal.pretrain.span_masking).
    mask_prob: float = 0.65
    mask_length: int = 10
    # Gradient scale into the conv front end (0: frozen).
    feature_grad_mult: float = 0.1

    def validate(self, where: str = "Wav2Vec2Config") -> None:
        if self.feat_dim != 1:
            raise FrugalError(f"{where}: wav2vec2 reads raw samples: feat_dim must be 1 (got {self.feat_dim}; "
                              f"make the cuts with frugal compute-fbank --raw)")
        for name in ("conv_channels", "d_model", "num_layers", "num_heads", "ff_dim", "pos_conv_kernel",
                     "pos_conv_groups", "final_dim", "latent_groups", "latent_vars", "mask_length"):
            if getattr(self, name) <= 0:
                raise FrugalError(f"{where}: {name} must be positive (got {getattr(self, name)})")
        if not self.conv_kernels or len(self.conv_kernels) != len(self.conv_strides):
            raise FrugalError(f"{where}: conv_kernels {self.conv_kernels} and conv_strides {self.conv_strides} "
                              f"must be non-empty lists of the same length")
        if min(self.conv_kernels) <= 0 or min(self.conv_strides) <= 0:
            raise FrugalError(f"{where}: conv kernels and strides must be positive (got {self.conv_kernels}, "
                              f"{self.conv_strides})")
        if self.d_model % self.num_heads != 0:
            raise FrugalError(f"{where}: d_model {self.d_model} is not a multiple of num_heads {self.num_heads}")
        if self.d_model % self.pos_conv_groups != 0:
            raise FrugalError(f"{where}: d_model {self.d_model} is not a multiple of pos_conv_groups "
                              f"{self.pos_conv_groups}")
        if self.final_dim % self.latent_groups != 0:
            raise FrugalError(f"{where}: final_dim {self.final_dim} is not a multiple of latent_groups "
                              f"{self.latent_groups}")
        if not 0.0 <= self.dropout < 1.0:
            raise FrugalError(f"{where}: dropout must be in [0, 1) (got {self.dropout})")
        if not 0.0 <= self.mask_prob <= 1.0:
            raise FrugalError(f"{where}: mask_prob must be in [0, 1] (got {self.mask_prob})")
        if self.feature_grad_mult < 0.0:
            raise FrugalError(f"{where}: feature_grad_mult must be >= 0 (got {self.feature_grad_mult})")

    def frames_per_output(self) -> int:
        return math.prod(self.conv_strides)


# "w2v2-base": wav2vec 2.0 BASE (95 M parameters); "w2v2-small": a size for a 2-core CPU.
PRESETS: Dict[str, Wav2Vec2Config] = {
    "w2v2-base": Wav2Vec2Config(),
    "w2v2-small": Wav2Vec2Config(conv_channels=128, d_model=192, num_layers=3, num_heads=4, ff_dim=768,
                                 pos_conv_kernel=32, pos_conv_groups=8, final_dim=64, latent_vars=64),
}


def wav2vec2_config(preset: str, **overrides) -> Wav2Vec2Config:
    """A copy of a named configuration with some fields replaced."""
    return from_preset(PRESETS, preset, "wav2vec2", **overrides)


def config_from_dict(d: dict, where: str = "Wav2Vec2Config") -> Wav2Vec2Config:
    """Build a config from a mapping; ``preset: name`` starts from a named configuration."""
    return config_from_mapping(Wav2Vec2Config, PRESETS, "wav2vec2", d, where)


def conv_output_lengths(lengths: Union[torch.Tensor, int], kernels: Sequence[int] = BASE_KERNELS,
                        strides: Sequence[int] = BASE_STRIDES) -> Union[torch.Tensor, int]:
    """Output steps of the conv front end for ``lengths`` samples: floor((L - k) / s) + 1 per
    block (no padding), never below 0. 16000 samples -> 49 steps."""
    if isinstance(lengths, torch.Tensor):
        out = lengths.to(torch.int64)
        for k, s in zip(kernels, strides):
            out = (torch.div(out - k, s, rounding_mode="floor") + 1).clamp(min=0)
        return out
    out = int(lengths)
    for k, s in zip(kernels, strides):
        out = max(0, (out - k) // s + 1)
    return out


def _valid_steps(lengths: torch.Tensor, num: int, device) -> torch.Tensor:
    return torch.arange(num, device=device).unsqueeze(0) < lengths.to(device).unsqueeze(1)


class _GradMultiply(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


class MaskedChannelNorm(nn.Module):
    """fairseq's GroupNorm(C, C) on (B, C, T) (each channel normalised over time, then a
    per-channel affine), with the mean and variance of each utterance taken over its own
    valid steps, so that padding does not change them. Parameter names are GroupNorm's."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        v = valid.unsqueeze(1)  # (B, 1, T)
        n = v.sum(-1, keepdim=True).clamp(min=1).to(x.dtype)
        # torch.where, not a product: padding may hold inf or nan, and 0 * inf is nan
        mean = torch.where(v, x, 0.0).sum(-1, keepdim=True) / n
        var = torch.where(v, (x - mean) ** 2, 0.0).sum(-1, keepdim=True) / n
        y = (x - mean) * torch.rsqrt(var + self.eps)
        return y * self.weight[:, None] + self.bias[:, None]


class ConvFeatureExtractor(nn.Module):
    """Samples (B, S) -> conv features (B, T', C) and their lengths (see the module docstring)."""

    def __init__(self, channels: int, kernels: Sequence[int], strides: Sequence[int]) -> None:
        super().__init__()
        self.kernels, self.strides = list(kernels), list(strides)
        self.convs = nn.ModuleList()
        in_ch = 1
        for k, s in zip(kernels, strides):
            conv = nn.Conv1d(in_ch, channels, k, stride=s, bias=False)
            nn.init.kaiming_normal_(conv.weight)
            self.convs.append(conv)
            in_ch = channels
        self.norm = MaskedChannelNorm(channels)  # the first block's
        # samples one output step reads (400 for BASE): shorter inputs are padded up to it
        self.receptive_field = 1
        for k, s in reversed(list(zip(kernels, strides))):
            self.receptive_field = (self.receptive_field - 1) * s + k

    def forward(self, samples: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        out_lengths = conv_output_lengths(lengths, self.kernels, self.strides)
        x = samples.unsqueeze(1)
        if x.shape[2] < self.receptive_field:  # a batch of short utterances: conv1d needs a full window
            x = F.pad(x, (0, self.receptive_field - x.shape[2]))
        first = conv_output_lengths(lengths, self.kernels[:1], self.strides[:1])
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i == 0:
                x = self.norm(x, _valid_steps(first, x.shape[2], x.device))
            x = F.gelu(x)
        num = int(out_lengths.max()) if out_lengths.numel() else 0
        return x[:, :, :num].transpose(1, 2), out_lengths


class PositionalConv(nn.Module):
    """x (B, T, d) -> GELU(grouped Conv1d over time, weight-normed over the kernel positions),
    centred on each step: an even kernel gets one step too many, and the last is dropped."""

    def __init__(self, d_model: int, kernel: int, groups: int, dropout: float) -> None:
        super().__init__()
        conv = nn.Conv1d(d_model, d_model, kernel, padding=kernel // 2, groups=groups)
        # fairseq's initial scale: keeps the sum of the residual and the embedding near unit variance
        nn.init.normal_(conv.weight, 0.0, math.sqrt(4.0 * (1.0 - dropout) / (kernel * d_model)))
        nn.init.zeros_(conv.bias)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.trim = 1 if kernel % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.transpose(1, 2))
        if self.trim:
            y = y[:, :, :-self.trim]
        return F.gelu(y).transpose(1, 2)


def _init_linear(module: nn.Module) -> None:
    # BERT's initialisation, as fairseq gives the wav2vec 2.0 transformer
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class Wav2Vec2Encoder(DropoutControl, nn.Module):
    """Samples (B, S, 1) -> hidden states (B, T', d_model) at 50 Hz; the fine-tuning encoder.

    ``freeze_feature_extractor = True`` keeps the conv front end out of autograd (fine-tuning).
    """

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        config.validate()
        self.config = c = config
        self.output_dim = c.d_model
        self.input_frames_per_output = c.frames_per_output()
        self.freeze_feature_extractor = False
        self.feature_extractor = ConvFeatureExtractor(c.conv_channels, c.conv_kernels, c.conv_strides)
        self.feature_norm = nn.LayerNorm(c.conv_channels)
        self.post_extract_proj = nn.Linear(c.conv_channels, c.d_model)
        self.input_dropout = Dropout()
        self.mask_embedding = nn.Parameter(torch.empty(c.d_model).uniform_())
        self.pos_conv = PositionalConv(c.d_model, c.pos_conv_kernel, c.pos_conv_groups, c.dropout)
        self.norm = nn.LayerNorm(c.d_model)
        self.dropout = Dropout()
        self.layers = nn.ModuleList(PostLnLayer(c.d_model, c.num_heads, c.ff_dim, inner_dropout=False) for _ in range(c.num_layers))
        self.layers.apply(_init_linear)
        self.set_dropout_proportion(c.dropout)

    def encoder_info(self) -> Dict:
        """Primitives only (weights_only-safe): rebuild with `from_info`."""
        return {"type": "wav2vec2", "config": dataclasses.asdict(self.config)}

    @classmethod
    def from_info(cls, config_dict: Dict, where: str = "wav2vec2 encoder") -> "Wav2Vec2Encoder":
        return cls(config_from_dict(config_dict, where))

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return conv_output_lengths(lengths, self.config.conv_kernels, self.config.conv_strides)

    def local_features(self, features: torch.Tensor, lengths: torch.Tensor
                       ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(LayerNormed conv features (B, T', C), out_lengths, features_pen): the
        quantiser's input, before projection and masking."""
        if features.dim() != 3 or features.shape[2] != 1:
            raise ValueError(f"expected (B, S, 1) samples, got {tuple(features.shape)}")
        mult = self.config.feature_grad_mult
        if self.freeze_feature_extractor or mult == 0.0:
            with torch.no_grad():
                x, out_lengths = self.feature_extractor(features[:, :, 0], lengths)
        else:
            x, out_lengths = self.feature_extractor(features[:, :, 0], lengths)
            if mult != 1.0 and x.requires_grad:
                x = _GradMultiply.apply(x, mult)
        valid = _valid_steps(out_lengths, x.shape[1], x.device)
        count = valid.sum() * x.shape[2]
        pen = torch.where(valid.unsqueeze(2), x.float() ** 2, 0.0).sum() / count.clamp(min=1)
        return self.feature_norm(x), out_lengths, pen

    def context(self, local: torch.Tensor, out_lengths: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Local features (B, T', C) -> hidden states (B, T', d_model); ``mask`` (B, T') bool
        replaces those steps by the mask embedding."""
        B, T, _ = local.shape
        x = self.input_dropout(self.post_extract_proj(local))
        if mask is not None:
            if tuple(mask.shape) != (B, T):
                raise ValueError(f"mask of shape {tuple(mask.shape)} for {B} utterances of {T} steps")
            x = torch.where(mask.to(x.device).unsqueeze(2), self.mask_embedding.to(x.dtype), x)
        if T == 0:  # every utterance shorter than the receptive field (conv1d refuses empty inputs)
            return x
        positions = torch.arange(T, device=x.device).unsqueeze(0)
        valid = positions < out_lengths.to(x.device).unsqueeze(1)
        # zeros at padded steps: the positional conv then sees what an utterance alone sees
        x = x + self.pos_conv(torch.where(valid.unsqueeze(2), x, 0.0))
        x = self.dropout(self.norm(x))
        keys = valid | (positions == 0)  # an empty utterance attends to something: no NaN rows
        for layer in self.layers:
            x = layer(x, keys)
        return x

    def encode(self, features: torch.Tensor, lengths: torch.Tensor, mask: Optional[torch.Tensor] = None
               ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(hidden (B, T', d_model), out_lengths (B,)) for samples (B, S, 1) of ``lengths``."""
        local, out_lengths, _ = self.local_features(features, lengths)
        return self.context(local, out_lengths, mask), out_lengths

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, mask: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.encode(features, lengths, mask)


def gumbel_temperature(step: int, start: float = 2.0, end: float = 0.5, decay: float = 0.999995) -> float:
    """The quantiser's temperature after ``step`` updates: start * decay^step, at least end."""
    return max(start * decay ** step, end)


def _perplexity(probs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Sum over groups of exp(entropy of the weighted mean of probs (B, T, G, V))."""
    avg = (probs * weights).sum((0, 1)) / weights.sum().clamp(min=1)
    # clamped log: 0 log 0 = 0 without an infinite gradient
    entropy = -(avg * torch.log(avg.clamp(min=1e-30))).sum(-1)
    return torch.exp(entropy).sum()


class GumbelQuantizer(nn.Module):
    """Product quantiser: features (B, T, C) -> codevectors (B, T, codevector_dim), one code
    per group from Gumbel-softmax logits (straight-through in training, argmax in eval)."""

    def __init__(self, in_dim: int, groups: int, num_vars: int, codevector_dim: int) -> None:
        super().__init__()
        if codevector_dim % groups:
            raise ValueError(f"codevector_dim {codevector_dim} is not a multiple of groups {groups}")
        self.groups, self.num_vars = groups, num_vars
        self.codevector_dim = codevector_dim
        self.weight_proj = nn.Linear(in_dim, groups * num_vars)
        nn.init.normal_(self.weight_proj.weight, 0.0, 1.0)
        nn.init.zeros_(self.weight_proj.bias)
        self.codebook = nn.Parameter(torch.empty(groups, num_vars, codevector_dim // groups).uniform_())

    @property
    def num_codevectors(self) -> int:
        return self.groups * self.num_vars

    def forward(self, x: torch.Tensor, valid: Optional[torch.Tensor] = None, temperature: float = 2.0) -> Dict:
        B, T, _ = x.shape
        return self.quantize(self.weight_proj(x).view(B, T, self.groups, self.num_vars), valid, temperature)

    def quantize(self, logits: torch.Tensor, valid: Optional[torch.Tensor] = None,
                 temperature: float = 2.0) -> Dict:
        """From logits (B, T, G, V): {"codevectors" (B, T, G * D), "codes" (B, T, G),
        "prob_perplexity", "code_perplexity"}; perplexities over the ``valid`` (B, T) steps."""
        B, T, _, V = logits.shape
        if logits.dtype in (torch.float16, torch.bfloat16):  # softmax and entropies in float32 at least
            logits = logits.float()
        if self.training:
            onehot = F.gumbel_softmax(logits, tau=temperature, hard=True, dim=-1)
        else:
            onehot = F.one_hot(logits.argmax(-1), V).to(logits.dtype)
        codevectors = torch.einsum("btgv,gvd->btgd", onehot, self.codebook.to(onehot.dtype)).reshape(B, T, self.codevector_dim)
        if valid is None:
            valid = torch.ones(B, T, dtype=torch.bool, device=logits.device)
        w = valid.to(logits.device, logits.dtype)[:, :, None, None]
        with torch.no_grad():
            code_ppl = _perplexity(F.one_hot(logits.argmax(-1), V).to(logits.dtype), w)
        return {
            "codevectors": codevectors.to(self.codebook.dtype),
            "codes": onehot.argmax(-1),
            "prob_perplexity": _perplexity(logits.softmax(-1), w),
            "code_perplexity": code_ppl,
        }


class Wav2Vec2Model(DropoutControl, nn.Module):
    """The pre-training model: encoder, quantiser, project_q and final_proj (see the module docstring)."""

    def __init__(self, config: Wav2Vec2Config) -> None:
        super().__init__()
        config.validate()
        self.config = c = config
        self.encoder = Wav2Vec2Encoder(c)
        self.feature_dropout = Dropout()  # fairseq dropout_features, on the quantiser's input
        self.quantizer = GumbelQuantizer(c.conv_channels, c.latent_groups, c.latent_vars, c.final_dim)
        self.project_q = nn.Linear(c.final_dim, c.final_dim)
        self.final_proj = nn.Linear(c.d_model, c.final_dim)
        self.set_dropout_proportion(c.dropout)

    def model_info(self) -> Dict:
        """What a checkpoint needs to rebuild this model: primitives only (weights_only-safe)."""
        return {"type": "wav2vec2", "config": dataclasses.asdict(self.config)}

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return self.encoder.output_lengths(lengths)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, mask: Optional[torch.Tensor],
                temperature: float = 2.0) -> Dict[str, torch.Tensor]:
        """Samples (B, S, 1) of ``lengths``, ``mask`` (B, T') bool (None: nothing masked) ->
        {"context", "targets" (B, T', final_dim), "prob_perplexity", "code_perplexity",
        "num_codevectors", "features_pen", "out_lengths"}."""
        local, out_lengths, pen = self.encoder.local_features(features, lengths)
        hidden = self.encoder.context(local, out_lengths, mask)
        valid = _valid_steps(out_lengths, local.shape[1], local.device)
        q = self.quantizer(self.feature_dropout(local), valid, temperature)
        return {
            "context": self.final_proj(hidden),
            "targets": self.project_q(q["codevectors"]),
            "codes": q["codes"],
            "prob_perplexity": q["prob_perplexity"],
            "code_perplexity": q["code_perplexity"],
            "num_codevectors": self.quantizer.num_codevectors,
            "features_pen": pen,
            "out_lengths": out_lengths,
        }
