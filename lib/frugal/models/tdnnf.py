"""Factorised TDNN (TDNN-F) acoustic model for chain (LF-MMI) and CTC training.

After Povey et al., "Semi-orthogonal low-rank matrix factorization for deep neural
networks" (Interspeech 2018) and Kaldi's xconfig ``tdnnf-layer``:

    tdnn1:   affine over frames {-1, 0, 1} -> ReLU -> batchnorm -> dropout
    tdnnf_i: linear (semi-orthogonal, offsets {-s, 0}) -> bottleneck
             affine (offsets {0, s}) -> ReLU -> batchnorm -> dropout, + bypass_scale * input
    prefinal-l: linear (semi-orthogonal) -> small dim
    chain head: affine big -> ReLU -> batchnorm -> linear (semi-orth.) small -> batchnorm -> output
    xent head:  the same structure, with log-softmax on its output

``s`` is the layer's time stride in input frames. All convolutions are "valid": the
input is padded by repeating its first and last frame (per utterance, as Kaldi's egs do),
so that output frame ``k`` sits at input frame ``3k`` and sees exactly input frames
``3k + o`` for the offsets ``o`` in ``receptive_offsets()`` (clamped to the utterance).
Frame subsampling happens in the first layer whose stride is a multiple of the
subsampling factor: its first factor is evaluated only at every third frame, after which
every layer runs at the low frame rate, as Kaldi's chain models do. The number of output
frames is ``ceil(T / subsampling_factor)``.

Dropout follows Kaldi's ``dropout-per-dim-continuous``: one mask value per (utterance,
channel), shared over time, uniform in ``[1 - 2p, 1 + 2p]``; ``set_dropout_active`` keeps
it stochastic in eval mode for Monte-Carlo dropout while batchnorm uses its running stats.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

from frugal.errors import FrugalError
from frugal.models.frame_shift import frame_shift_augment
from frugal.models.presets import config_from_mapping, from_preset
from frugal.models.input_norm import INPUT_NORMS, utterance_mean_normalize
from frugal.models.spec_augment import SpecAugmentConfig, spec_augment


@dataclass
class TdnnfConfig:
    """Sizes of a TDNN-F; ``time_strides`` has one entry per tdnnf layer."""

    feat_dim: int = 80
    num_pdfs: int = 0
    hidden_dim: int = 1024
    bottleneck_dim: int = 128
    time_strides: List[int] = field(default_factory=lambda: [1, 1, 1, 0, 3, 3, 3, 3, 3, 3, 3, 3])
    prefinal_bottleneck_dim: int = 256
    bypass_scale: float = 0.66
    subsampling_factor: int = 3
    dropout_continuous: bool = True
    # Steps between two semi-orthogonal updates (Kaldi does one every 4 minibatches on average).
    orthonormal_period: int = 4
    # Input normalisation (frugal.models.input_norm): "none" or "utterance_mean" (CMN).
    input_norm: str = "none"
    # SpecAugment masking in training (frugal.models.spec_augment); 0 masks: off.
    specaug_freq_masks: int = 0
    specaug_freq_width: int = 10
    specaug_time_masks: int = 0
    specaug_time_width: int = 20
    # Kaldi's frame-shift augmentation in training (frugal.models.frame_shift): each utterance
    # of a batch moved by 0 .. subsampling_factor - 1 input frames.
    frame_shift: bool = False

    @property
    def num_layers(self) -> int:
        return len(self.time_strides)

    def validate(self, where: str = "TdnnfConfig") -> None:
        if self.num_pdfs <= 0:
            raise FrugalError(f"{where}: num_pdfs must be set to a positive number (got {self.num_pdfs})")
        for name in ("feat_dim", "hidden_dim", "bottleneck_dim", "prefinal_bottleneck_dim",
                     "subsampling_factor", "orthonormal_period"):
            if getattr(self, name) <= 0:
                raise FrugalError(f"{where}: {name} must be positive (got {getattr(self, name)})")
        if not self.time_strides:
            raise FrugalError(f"{where}: time_strides must name at least one layer")
        if self.input_norm not in INPUT_NORMS:
            raise FrugalError(f"{where}: input_norm {self.input_norm!r} is not one of {', '.join(INPUT_NORMS)}")
        for name in ("specaug_freq_masks", "specaug_freq_width", "specaug_time_masks", "specaug_time_width"):
            if getattr(self, name) < 0:
                raise FrugalError(f"{where}: {name} must be >= 0 (got {getattr(self, name)})")
        if self.specaug_freq_masks and self.specaug_freq_width >= self.feat_dim:
            raise FrugalError(f"{where}: specaug_freq_width {self.specaug_freq_width} must be below "
                              f"feat_dim {self.feat_dim}")
        rate = 1
        for i, s in enumerate(self.time_strides):
            if s < 0:
                raise FrugalError(f"{where}: time_strides[{i}] = {s} is negative")
            if rate == 1 and s > 0 and s % self.subsampling_factor == 0:
                rate = self.subsampling_factor
            elif s % rate != 0:
                raise FrugalError(
                    f"{where}: time_strides[{i}] = {s} is not a multiple of the frame rate {rate} "
                    f"reached after subsampling"
                )
        if self.subsampling_factor > 1 and rate == 1:
            raise FrugalError(
                f"{where}: no layer has a time stride that is a multiple of subsampling_factor "
                f"{self.subsampling_factor}, so no layer can subsample"
            )


def _strides(n_low: int, n_zero: int, n_high: int, high: int = 3) -> List[int]:
    return [1] * n_low + [0] * n_zero + [high] * n_high


# Named configurations: L and S as in the thesis (Kaldi's tdnn_1j layout of strides),
# "small" for egs/mini and yesno.
PRESETS: Dict[str, TdnnfConfig] = {
    "tdnnf-l": TdnnfConfig(hidden_dim=1024, bottleneck_dim=128, time_strides=_strides(3, 1, 8),
                           prefinal_bottleneck_dim=256),
    "tdnnf-s": TdnnfConfig(hidden_dim=1024, bottleneck_dim=128, time_strides=_strides(3, 1, 3),
                           prefinal_bottleneck_dim=256),
    "tdnnf-small": TdnnfConfig(hidden_dim=256, bottleneck_dim=64, time_strides=_strides(1, 1, 2),
                               prefinal_bottleneck_dim=64),
}


def tdnnf_config(preset: str, **overrides) -> TdnnfConfig:
    """A copy of a named configuration with some fields replaced (e.g. ``num_pdfs``)."""
    return from_preset(PRESETS, preset, "TDNN-F", **overrides)


def config_from_dict(d: dict, where: str = "TdnnfConfig") -> TdnnfConfig:
    """Build a config from a mapping; ``preset: name`` starts from a named configuration."""
    return config_from_mapping(TdnnfConfig, PRESETS, "TDNN-F", d, where)


def load_config(path: Union[str, Path], section: Optional[str] = "model") -> TdnnfConfig:
    """Read a config from YAML (``yaml.safe_load``); with ``section``, from that key if present."""
    path = Path(path)
    try:
        d = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise FrugalError(f"{path}: not valid YAML: {e}".replace("\n", " ")) from None
    if section is not None and isinstance(d, dict) and section in d:
        d = d[section]
    if not isinstance(d, dict):
        raise FrugalError(f"{path}: expected a mapping of TDNN-F options")
    return config_from_dict(d, where=str(path))


def constrain_orthonormal_(M: torch.Tensor) -> None:
    """One step of Kaldi's ConstrainOrthonormalInternal with a floating scale, in place.

    Moves the rows of M (the columns if M is tall) towards being orthogonal with a common
    norm ``alpha``, where alpha^2 = tr(P P) / tr(P), P = M M^T: the scale for which the
    update is orthogonal to M itself (Povey et al. 2018, Sec. 2.3). The update is the
    gradient step on -||P - alpha^2 I||^2 with speed nu / alpha^2, nu = 1/8 (halved when
    the eigenvalues of P are far apart, to avoid divergence).
    """
    if M.shape[0] > M.shape[1]:
        Mt = M.t().contiguous()
        constrain_orthonormal_(Mt)
        M.copy_(Mt.t())
        return
    work = M.double()  # the traces of P P lose precision quickly in float32
    P = work @ work.t()
    trace_p = torch.trace(P)
    trace_pp = (P * P).sum()
    scale2 = trace_pp / trace_p
    ratio = trace_pp * P.shape[0] / (trace_p * trace_p)
    update_speed = 0.125
    if ratio > 1.02:
        update_speed *= 0.5
    alpha = update_speed / scale2
    P.diagonal().sub_(scale2)
    M.copy_((work - 4.0 * alpha * (P @ work)).to(M.dtype))


def orthonormality_error(M: torch.Tensor) -> float:
    """||P / alpha^2 - I||_F with P = M M^T (short side) and alpha^2 = tr(P P) / tr(P)."""
    if M.shape[0] > M.shape[1]:
        M = M.t()
    M = M.detach().double()
    P = M @ M.t()
    scale2 = (P * P).sum() / torch.trace(P)
    return float(torch.linalg.matrix_norm(P / scale2 - torch.eye(P.shape[0], dtype=P.dtype)))


class SemiOrthogonal:
    """Mixin for a layer whose weight, as an (out, in * kernel) matrix, is kept semi-orthogonal."""

    weight: torch.Tensor

    def constrain_orthonormal(self) -> None:
        with torch.no_grad():
            constrain_orthonormal_(self.weight.view(self.weight.shape[0], -1))


class OrthonormalConv1d(SemiOrthogonal, nn.Conv1d):
    """A bias-free conv over time (B, C, T) with the semi-orthogonal constraint."""


class OrthonormalLinear(SemiOrthogonal, nn.Linear):
    """A bias-free linear map of (B, T, C) inputs with the semi-orthogonal constraint."""


class ContinuousDropout(nn.Module):
    """Per-(utterance, channel) dropout shared over time, for (B, C, T) inputs.

    continuous=True: Kaldi's dropout-per-dim-continuous, mask ~ U[1 - 2p, 1 + 2p].
    continuous=False: Bernoulli keep with probability 1 - p, scaled by 1 / (1 - p).
    Active in training mode, or in eval mode after ``force_active = True`` (MC dropout).
    """

    def __init__(self, continuous: bool = True) -> None:
        super().__init__()
        self.continuous = continuous
        self.p = 0.0
        self.force_active = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p <= 0.0 or not (self.training or self.force_active):
            return x
        shape = (x.shape[0], x.shape[1], 1)
        if self.continuous:
            mask = 1.0 + 2.0 * self.p * (2.0 * torch.rand(shape, device=x.device, dtype=x.dtype) - 1.0)
        else:
            mask = torch.bernoulli(torch.full(shape, 1.0 - self.p, device=x.device, dtype=x.dtype))
            mask = mask / (1.0 - self.p)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}, continuous={self.continuous}"


class TdnnLayer(nn.Module):
    """Affine over frames {-1, 0, 1} (at the input rate) -> ReLU -> batchnorm -> dropout."""

    def __init__(self, in_dim: int, out_dim: int, continuous: bool) -> None:
        super().__init__()
        self.affine = nn.Conv1d(in_dim, out_dim, kernel_size=3)
        self.batchnorm = nn.BatchNorm1d(out_dim, affine=False)
        self.dropout = ContinuousDropout(continuous)

    offsets = (-1, 0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.batchnorm(F.relu(self.affine(x))))


class TdnnfLayer(nn.Module):
    """Kaldi's tdnnf-layer at input frame rate ``rate``; ``subsample`` makes it the 1/s layer."""

    def __init__(self, dim: int, bottleneck_dim: int, time_stride: int, rate: int, subsample: int,
                 bypass_scale: float, continuous: bool) -> None:
        super().__init__()
        self.time_stride = time_stride
        self.subsample = subsample
        self.bypass_scale = bypass_scale
        kernel = 2 if time_stride > 0 else 1
        # Dilations in units of the current sequence's elements.
        d_in = max(time_stride // rate, 1)
        d_out = max(time_stride // (rate * subsample), 1)
        self.linear = OrthonormalConv1d(dim, bottleneck_dim, kernel, dilation=d_in,
                                        stride=subsample, bias=False)
        self.affine = nn.Conv1d(bottleneck_dim, dim, kernel, dilation=d_out)
        self.batchnorm = nn.BatchNorm1d(dim, affine=False)
        self.dropout = ContinuousDropout(continuous)
        # Input elements skipped at the left before the first output's centre.
        self.bypass_start = d_in * (kernel - 1)

    @property
    def offsets(self) -> Tuple[int, ...]:
        s = self.time_stride
        return tuple(sorted({a + b for a in ((-s, 0) if s else (0,)) for b in ((0, s) if s else (0,))}))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dropout(self.batchnorm(F.relu(self.affine(self.linear(x)))))
        bypass = x[:, :, self.bypass_start::self.subsample][:, :, : y.shape[2]]
        return y + self.bypass_scale * bypass


def _batchnorm_btc(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm1d over the last dim of a (B, T, C) tensor (the same statistics as on (B, C, T))."""
    return bn(x.reshape(-1, x.shape[-1])).view_as(x)


class PrefinalHead(nn.Module):
    """Kaldi's prefinal-layer + output-layer on (B, T, C) frames:
    affine big -> ReLU -> BN -> linear small (semi-orthogonal) -> BN -> affine num_pdfs.

    The heads work frame by frame, so they use Linear layers on (B, T, C): on CPU that is
    several times faster than 1x1 convolutions for the wide output layer.
    """

    def __init__(self, in_dim: int, big_dim: int, small_dim: int, num_pdfs: int) -> None:
        super().__init__()
        self.affine = nn.Linear(in_dim, big_dim)
        self.batchnorm1 = nn.BatchNorm1d(big_dim, affine=False)
        self.linear = OrthonormalLinear(big_dim, small_dim, bias=False)
        self.batchnorm2 = nn.BatchNorm1d(small_dim, affine=False)
        self.output = nn.Linear(small_dim, num_pdfs)
        # Kaldi's output-layer starts from zero parameters (param-stddev=0, bias-stddev=0).
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _batchnorm_btc(self.batchnorm1, F.relu(self.affine(x)))
        return self.output(_batchnorm_btc(self.batchnorm2, self.linear(x)))


class TdnnfModel(nn.Module):
    """(B, T, F) features -> chain output and xent log-probs, both (B, ceil(T / 3), num_pdfs)."""

    def __init__(self, config: TdnnfConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        c = config
        self.tdnn1 = TdnnLayer(c.feat_dim, c.hidden_dim, c.dropout_continuous)
        layers = []
        rate = 1
        for s in c.time_strides:
            sub = c.subsampling_factor if (rate == 1 and s > 0 and s % c.subsampling_factor == 0) else 1
            layers.append(TdnnfLayer(c.hidden_dim, c.bottleneck_dim, s, rate, sub, c.bypass_scale,
                                     c.dropout_continuous))
            rate *= sub
        self.layers = nn.ModuleList(layers)
        self.prefinal_l = OrthonormalLinear(c.hidden_dim, c.prefinal_bottleneck_dim, bias=False)
        self.chain_head = PrefinalHead(c.prefinal_bottleneck_dim, c.hidden_dim, c.prefinal_bottleneck_dim,
                                       c.num_pdfs)
        self.xent_head = PrefinalHead(c.prefinal_bottleneck_dim, c.hidden_dim, c.prefinal_bottleneck_dim,
                                      c.num_pdfs)
        self.spec_augment = SpecAugmentConfig(c.specaug_freq_masks, c.specaug_freq_width,
                                              c.specaug_time_masks, c.specaug_time_width)
        offsets = self.receptive_offsets()
        self.left_context = -offsets[0]
        self.right_context = offsets[-1]

    def model_info(self) -> Dict:
        """What a checkpoint needs to rebuild this model: primitives only (weights_only-safe)."""
        return {"type": "tdnnf", "config": dataclasses.asdict(self.config)}

    # ---- geometry -------------------------------------------------------------------

    def receptive_offsets(self) -> List[int]:
        """Input frame offsets, relative to 3k, that output frame k depends on (sorted)."""
        reach = {0}
        for layer in [self.tdnn1, *self.layers]:
            reach = {r + o for r in reach for o in layer.offsets}
        return sorted(reach)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Output frames for input lengths: ceil(T / subsampling_factor)."""
        f = self.config.subsampling_factor
        return torch.div(lengths + f - 1, f, rounding_mode="floor")

    def _pad(self, x: torch.Tensor, lengths: torch.Tensor, num_out: int) -> torch.Tensor:
        """Gather frames clamp(t, 0, T_b - 1) for t in [-L, 3 (num_out - 1) + R], per utterance."""
        f = self.config.subsampling_factor
        total = self.left_context + f * (num_out - 1) + self.right_context + 1
        t = torch.arange(total, device=x.device) - self.left_context
        last = (lengths.to(x.device) - 1).clamp(min=0)
        idx = torch.minimum(t.clamp(min=0).unsqueeze(0), last.unsqueeze(1))  # (B, total)
        return torch.gather(x, 1, idx.unsqueeze(2).expand(-1, -1, x.shape[2]))

    # ---- forward --------------------------------------------------------------------

    def forward(self, features: torch.Tensor, lengths: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (chain_output, xent_log_probs, output_lengths); outputs are (B, T', num_pdfs)."""
        if features.dim() != 3 or features.shape[2] != self.config.feat_dim:
            raise ValueError(f"expected (B, T, {self.config.feat_dim}) features, got {tuple(features.shape)}")
        if self.training and self.config.frame_shift:
            features = frame_shift_augment(features, lengths, self.config.subsampling_factor)
        if self.config.input_norm == "utterance_mean":
            features = utterance_mean_normalize(features, lengths)
        if self.training and self.spec_augment.active:
            features = spec_augment(features, lengths, self.spec_augment)
        out_lengths = self.output_lengths(lengths)
        num_out = int(out_lengths.max()) if out_lengths.numel() else 0
        x = self._pad(features, lengths, num_out).transpose(1, 2)  # (B, F, T)
        x = self.tdnn1(x)
        for layer in self.layers:
            x = layer(x)
        assert x.shape[2] == num_out, (x.shape, num_out)
        x = self.prefinal_l(x.transpose(1, 2))  # (B, T', C) from here on
        chain = self.chain_head(x)
        xent = self.xent_head(x).log_softmax(dim=-1)
        return chain, xent, out_lengths

    # ---- training hooks -------------------------------------------------------------

    def orthonormal_modules(self) -> List[SemiOrthogonal]:
        return [m for m in self.modules() if isinstance(m, SemiOrthogonal)]

    def constrain_orthonormal(self) -> None:
        for m in self.orthonormal_modules():
            m.constrain_orthonormal()

    def after_optimizer_step(self, step: int) -> None:
        """Called by the trainer after optimizer step number ``step`` (counted from 1).

        The semi-orthogonal update runs every ``orthonormal_period`` steps; tying it to the
        global step (rather than Kaldi's random 1-in-4) keeps resumed runs identical.
        """
        if step % self.config.orthonormal_period == 0:
            self.constrain_orthonormal()

    def dropout_modules(self) -> List[ContinuousDropout]:
        return [m for m in self.modules() if isinstance(m, ContinuousDropout)]

    def set_dropout_proportion(self, p: float) -> None:
        # Continuous masks lie in [1 - 2p, 1 + 2p]; Bernoulli masks are scaled by 1 / (1 - p).
        ok = 0.0 <= p <= 0.5 if self.config.dropout_continuous else 0.0 <= p < 1.0
        if not ok:
            raise ValueError(f"dropout proportion {p} is out of range for this dropout type")
        for m in self.dropout_modules():
            m.p = float(p)

    def set_dropout_active(self, active: bool, proportion: Optional[float] = None) -> None:
        """Keep dropout stochastic in eval mode (Monte-Carlo dropout); batchnorm is unaffected."""
        if proportion is not None:
            self.set_dropout_proportion(proportion)
        for m in self.dropout_modules():
            m.force_active = active
