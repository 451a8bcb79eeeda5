"""The LF-MMI (chain) objective with Kaldi's regularisers, for flat-start and regular training.

Per minibatch, with the network's chain output y (B, T', D) used directly as pdf
log-likelihoods (Kaldi feeds the raw output, no log-softmax):

- objf = sum_b (log p_num(y_b) - log p_den(y_b)) / frames, where the numerator is the
  forward-backward of the numerator graphs (`intersect_dense`, log semiring) and the
  denominator that of the denominator HMM with the leaky-HMM coefficient
  (`denominator_log_likelihood`, default 0.1 as Kaldi's --chain.leaky-hmm-coefficient);
- l2 = 0.5 * l2_regularize * sum ||y_t||^2 / frames (Kaldi's --chain.l2-regularize, whose
  objective term is -0.5 * l2 * sum of squares);
- xent = sum_t sum_d num_post_t(d) * xent_log_probs_t(d) / frames: the cross-entropy of
  the xent head against the numerator occupation of each pdf (detached: it trains only
  the xent head and the shared layers, never the chain output);
- loss = -objf + l2 - xent_regularize * xent, the value to minimise.

Sequences whose numerator has no path of their length (too many phones for too few
frames, or every path removed by the normalisation) are left out of every term and of
the frame count, as Kaldi skips such examples; ``skipped`` counts them.

The numerator occupation is needed twice (xent target and chain gradient), so the
numerator forward-backward runs once on a detached copy of y, and the chain output
receives its gradient through a linear term with that occupation (value-preserving).

Per-frame derivative weights (``frame_weights`` [B, T'] in [0, 1]; Kaldi's
``--deriv-weights-scp`` of semi-supervised training): the gradient of the loss with
respect to the chain output at frame t (numerator minus leaky-HMM denominator occupation,
and the l2 term) and with respect to the xent head's output at t are multiplied by w_t,
as Kaldi multiplies the rows of the output derivatives after the objective is computed.
It is done by an identity op whose backward scales the gradient (`scale_gradient`) on
both outputs, so every value (loss, objf, its parts) and the frame count stay the
unweighted ones. A constant weight over a sequence's frames scales that sequence's
gradient (Kaldi's per-example weight, e.g. of unsupervised egs).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch

from frugal.fsa.dense import DenseFsaVec
from frugal.fsa.intersect import intersect_dense
from frugal.fsa.leaky_hmm import DenominatorGraph, denominator_log_likelihood
from frugal.fsa.fsa import FsaVec


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by ``scale``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(scale)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (scale,) = ctx.saved_tensors
        return grad * scale, None


def scale_gradient(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x`` unchanged, with its gradient multiplied by ``scale`` (broadcast to x's shape)."""
    return _ScaleGradient.apply(x, scale.to(device=x.device, dtype=x.dtype).detach())


def numerator_log_likelihood(num_graphs: FsaVec, nnet_output: torch.Tensor, lengths: torch.Tensor
                             ) -> torch.Tensor:
    """Per-sequence numerator log-likelihood [B] (differentiable, log semiring)."""
    dense = DenseFsaVec(nnet_output, lengths.to(device=nnet_output.device, dtype=torch.int64))
    return intersect_dense(num_graphs.to(nnet_output.device), dense, "log")


def lfmmi_loss(
    nnet_output: torch.Tensor,
    lengths: torch.Tensor,
    num_graphs: FsaVec,
    den_graph: DenominatorGraph,
    xent_log_probs: Optional[torch.Tensor] = None,
    leaky_hmm_coefficient: float = 0.1,
    l2_regularize: float = 0.0005,
    xent_regularize: float = 0.1,
    frame_weights: Optional[torch.Tensor] = None,
) -> Dict[str, torch.Tensor]:
    """LF-MMI loss and its parts (see the module docstring).

    ``nnet_output`` and ``xent_log_probs``: (B, T', D) at the subsampled frame rate;
    ``lengths`` [B] their valid lengths; ``num_graphs`` one numerator per sequence (e.g.
    `NumeratorGraphs.fsas`); ``frame_weights`` (B, T') optional derivative weights (values
    past a sequence's length are ignored). Returns a dict of scalars: ``loss``
    (differentiable), ``objf`` (per-frame LF-MMI objective), ``num``, ``den`` (per-frame),
    ``l2``, ``xent`` (per frame, before the weights), ``frames`` (counted frames, not
    weighted), ``skipped`` (sequences).
    """
    if nnet_output.dim() != 3:
        raise ValueError(f"nnet_output must be (B, T, D), got {tuple(nnet_output.shape)}")
    lengths = lengths.to(device=nnet_output.device, dtype=torch.int64)
    if frame_weights is not None:
        if tuple(frame_weights.shape) != tuple(nnet_output.shape[:2]):
            raise ValueError(f"frame_weights must be (B, T) = {tuple(nnet_output.shape[:2])}, "
                             f"got {tuple(frame_weights.shape)}")
        scale = frame_weights[:, :, None]
        nnet_output = scale_gradient(nnet_output, scale)
        if xent_log_probs is not None:
            xent_log_probs = scale_gradient(xent_log_probs, scale)
    detached = nnet_output.detach().requires_grad_(True)
    with torch.enable_grad():
        num = numerator_log_likelihood(num_graphs, detached, lengths)
        ok = torch.isfinite(num)
        (num_post,) = torch.autograd.grad(torch.where(ok, num, 0.0).sum(), detached)
    mask = ok.to(nnet_output.dtype)
    frames = (lengths.to(nnet_output.dtype) * mask).sum()
    norm = frames.clamp(min=1.0)
    num_value = torch.where(ok, num, 0.0).sum().detach()
    # Value num_value, gradient num_post (zero for skipped sequences).
    num_term = num_value + (num_post * (nnet_output - detached)).sum()
    den = denominator_log_likelihood(den_graph, nnet_output, lengths, leaky_hmm_coefficient,
                                     reduction="none")
    den_term = (den * mask).sum()
    valid = (torch.arange(nnet_output.shape[1], device=nnet_output.device)[None, :] < lengths[:, None])
    valid = valid.to(nnet_output.dtype) * mask[:, None]
    l2 = 0.5 * l2_regularize * (nnet_output.pow(2).sum(-1) * valid).sum() / norm
    objf = (num_term - den_term) / norm
    loss = -objf + l2
    xent = torch.zeros((), dtype=nnet_output.dtype, device=nnet_output.device)
    if xent_log_probs is not None:
        xent = (num_post * xent_log_probs).sum() / norm
        loss = loss - xent_regularize * xent
    return {"loss": loss, "objf": objf.detach(), "num": num_value.detach() / norm,
            "den": den_term.detach() / norm, "l2": l2.detach(), "xent": xent.detach(),
            "frames": frames.detach(), "skipped": (~ok).sum()}
