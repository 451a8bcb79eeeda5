"""RNN-T losses of k2's pruned transducer training: full, simple (additive joiner) and pruned.

All losses share one lattice in k2's notation (``mutual_information_recursion``), for a
sequence of S symbols over T frames:

- ``px[b, s, t]``: log-prob of emitting ``symbols[b, s]`` at node (s, t), shape (B, S, T+1)
  for the regular (Graves) topology (column T is -inf: no symbol after the last frame),
  (B, S, T) for the modified one (one symbol per frame: a symbol also advances t);
- ``py[b, s, t]``: log-prob of blank (the termination symbol, advances t), shape (B, S+1, T);
- ``p[0, 0] = 0``, ``p[s, t] = logaddexp(p[s-1, t] + px[s-1, t], p[s, t-1] + py[s, t-1])``
  (modified: ``p[s-1, t-1] + px[s-1, t-1]``); the log-likelihood is ``p[S_b, T_b]``.

In the regular topology a path runs from (t=0, u=0) to (T_b-1, U_b) and ends with one blank;
in the modified one it ends at frame T_b. ``boundary`` is k2's (B, 4) LongTensor
``[0, 0, U_b, T_b]`` per sequence (None: ``[0, 0, S, T]``; `make_boundary` builds it from
lengths); what lies beyond it is ignored and gets zero gradient.

The recursion runs over the S+T+1 anti-diagonals s+t of the lattice (stored skewed so that a
diagonal is a column), vectorised over the batch and the symbols. It is a custom autograd
function: backward is the beta recursion, and the gradient of the log-likelihood with
respect to px / py is the occupation probability of each arc (what k2's ``return_grad``
gives and what `get_rnnt_prune_ranges` needs). The log-softmax of the joiner's logits is
fused: only the normaliser (logsumexp) and the blank / target logits are taken from the
logits, so no log-prob tensor of their size is kept.

Pruned training (Kuang et al. 2022, icefall): `rnnt_loss_simple` (with ``lm_only_scale``
0.25 as icefall's ``lm_scale``) -> `get_rnnt_prune_ranges` -> `do_rnnt_pruning` -> joiner ->
`rnnt_loss_pruned`. Reductions are k2's: "none" (per sequence), "sum", "mean" (over the
batch). The blank is the termination symbol, 0 by default.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from frugal.errors import FrugalError

_NEG_INF = float("-inf")


# ------------------------------------------------------------------------------------------
# checks and small helpers


def make_boundary(frame_lens: Tensor, symbol_lens: Tensor) -> Tensor:
    """k2's (B, 4) boundary ``[0, 0, U_b, T_b]`` from per-sequence frame and symbol counts."""
    frame_lens = torch.as_tensor(frame_lens, dtype=torch.int64)
    symbol_lens = torch.as_tensor(symbol_lens, dtype=torch.int64, device=frame_lens.device)
    zeros = torch.zeros_like(frame_lens)
    return torch.stack([zeros, zeros, symbol_lens, frame_lens], dim=1)


def _check_boundary(boundary: Optional[Tensor], B: int, S: int, T: int, device) -> Tensor:
    if boundary is None:
        return torch.tensor([[0, 0, S, T]] * B, dtype=torch.int64, device=device)
    boundary = torch.as_tensor(boundary).to(device=device, dtype=torch.int64)
    if boundary.shape != (B, 4):
        raise FrugalError(f"boundary must have shape ({B}, 4), got {tuple(boundary.shape)}")
    if (boundary[:, :2] != 0).any():
        raise FrugalError("boundary: only begin_symbol = begin_frame = 0 is supported")
    if ((boundary[:, 2] < 0) | (boundary[:, 2] > S)).any():
        raise FrugalError(f"boundary: symbol counts {boundary[:, 2].tolist()} must lie in [0, {S}]")
    if ((boundary[:, 3] < 1) | (boundary[:, 3] > T)).any():
        raise FrugalError(f"boundary: frame counts {boundary[:, 3].tolist()} must lie in [1, {T}]")
    return boundary


def _check_symbols(symbols: Tensor, B: int, S: int, C: int) -> Tensor:
    symbols = torch.as_tensor(symbols)
    if symbols.shape != (B, S):
        raise FrugalError(f"symbols must have shape ({B}, {S}), got {tuple(symbols.shape)}")
    symbols = symbols.long()
    if symbols.numel() and (symbols.min() < 0 or symbols.max() >= C):
        raise FrugalError(f"symbols must lie in [0, {C}), got [{symbols.min()}, {symbols.max()}]")
    return symbols


def _reduce(loglik: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return -loglik
    if reduction == "sum":
        return -loglik.sum()
    if reduction == "mean":
        return -loglik.mean()
    raise FrugalError(f"reduction must be 'sum', 'mean' or 'none', got {reduction!r}")


def _fix_for_boundary(px: Tensor, boundary: Tensor) -> Tensor:
    """Regular topology: no symbol at frame T_b (the path ends with a blank on frame T_b-1)."""
    B, S, T1 = px.shape
    col = torch.arange(T1, device=px.device).view(1, 1, T1)
    return px.masked_fill(col == boundary[:, 3].view(B, 1, 1), _NEG_INF)


def _skew(x: Tensor, D: int) -> Tensor:
    """(B, R, W) -> (B, R, D) with out[:, r, r + t] = x[:, r, t], -inf elsewhere."""
    B, R, W = x.shape
    idx = torch.arange(D, device=x.device).view(1, D) - torch.arange(R, device=x.device).view(R, 1)
    valid = (idx >= 0) & (idx < W)
    if W == 0:
        return x.new_full((B, R, D), _NEG_INF)
    out = x.gather(2, idx.clamp(0, W - 1).expand(B, R, D))
    return out.masked_fill(~valid, _NEG_INF)


def _unskew(y: Tensor, W: int) -> Tensor:
    """Inverse of `_skew`: (B, R, D) -> (B, R, W) with out[:, r, t] = y[:, r, r + t]."""
    B, R, D = y.shape
    idx = torch.arange(W, device=y.device).view(1, W) + torch.arange(R, device=y.device).view(R, 1)
    return y.gather(2, idx.expand(B, R, W))


# ------------------------------------------------------------------------------------------
# the lattice recursion


def _forward_backward(px: Tensor, py: Tensor, boundary: Tensor, modified: bool,
                      want_occupation: bool):
    """Log-likelihoods (B,) and, when asked, the arc occupations (px_grad, py_grad)."""
    B, S1, T = py.shape
    S = S1 - 1
    D = S + T + 1  # diagonals d = s + t, t in [0, T]
    step = 2 if modified else 1  # a symbol moves 2 diagonals in the modified topology
    PX = _skew(torch.cat([px, px.new_full((B, 1, px.shape[2]), _NEG_INF)], dim=1), D)
    PY = _skew(py, D)
    alpha = px.new_full((B, S1, D), _NEG_INF)
    alpha[:, 0, 0] = 0.0
    ninf = px.new_full((B, 1), _NEG_INF)
    for d in range(1, D):
        from_y = alpha[:, :, d - 1] + PY[:, :, d - 1]
        if d >= step:
            from_x = torch.cat([ninf, alpha[:, :-1, d - step] + PX[:, :-1, d - step]], dim=1)
            alpha[:, :, d] = torch.logaddexp(from_x, from_y)
        else:
            alpha[:, :, d] = from_y
    s_end, t_end = boundary[:, 2], boundary[:, 3]
    bidx = torch.arange(B, device=px.device)
    loglik = alpha[bidx, s_end, s_end + t_end]
    if not want_occupation:
        return loglik, None, None
    beta = px.new_full((B, S1, D + 2), _NEG_INF)
    rows = torch.arange(S1, device=px.device).view(1, S1)
    for d in range(D - 1, -1, -1):
        to_y = PY[:, :, d] + beta[:, :, d + 1]
        to_x = torch.cat([PX[:, :-1, d] + beta[:, 1:, d + step], ninf], dim=1)
        val = torch.logaddexp(to_x, to_y)
        end = (rows == s_end.view(B, 1)) & ((s_end + t_end).view(B, 1) == d)
        beta[:, :, d] = torch.where(end, torch.zeros_like(val), val)
    beta = beta[:, :, :D + 2]
    ok = torch.isfinite(loglik).view(B, 1, 1)
    tot = torch.where(ok, loglik.view(B, 1, 1), torch.zeros_like(loglik.view(B, 1, 1)))
    beta_x = torch.cat([beta[:, 1:, step:D + step], beta.new_full((B, 1, D), _NEG_INF)], dim=1)
    occ_x = (alpha + PX + beta_x - tot).exp()
    occ_y = (alpha + PY + beta[:, :, 1:D + 1] - tot).exp()
    occ_x = torch.where(ok, occ_x, torch.zeros_like(occ_x))
    occ_y = torch.where(ok, occ_y, torch.zeros_like(occ_y))
    return loglik, _unskew(occ_x[:, :S], px.shape[2]), _unskew(occ_y, T)


class _MutualInformation(torch.autograd.Function):
    """p[S_b, T_b] of the lattice; its gradient w.r.t. px / py is the arc occupation, which
    is also returned (not differentiable) when ``want`` is set or px / py need a gradient."""

    @staticmethod
    def forward(ctx, px, py, boundary, modified, want):
        with torch.no_grad():
            loglik, gx, gy = _forward_backward(
                px, py, boundary, modified, want or px.requires_grad or py.requires_grad)
        if gx is None:
            gx, gy = px.new_zeros(0), py.new_zeros(0)
        ctx.save_for_backward(gx, gy)
        ctx.mark_non_differentiable(gx, gy)
        return loglik, gx, gy

    @staticmethod
    def backward(ctx, grad, _gx, _gy):
        gx, gy = ctx.saved_tensors
        g = grad.view(-1, 1, 1)
        return gx * g, gy * g, None, None, None


def rnnt_lattice_loglik(px: Tensor, py: Tensor, boundary: Optional[Tensor] = None,
                        modified: bool = False) -> Tensor:
    """Per-sequence log-likelihood (B,) of a px / py lattice (see the module docstring).

    The same as k2's ``mutual_information_recursion`` for begin = (0, 0); px is used as given
    (the caller puts -inf at column T_b in the regular topology, as the losses here do).
    """
    if px.ndim != 3 or py.ndim != 3 or px.shape[0] != py.shape[0] or px.shape[1] + 1 != py.shape[1]:
        raise FrugalError(f"px (B, S, T+1 or T) and py (B, S+1, T) do not fit: "
                          f"{tuple(px.shape)}, {tuple(py.shape)}")
    B, S1, T = py.shape
    if px.shape[2] != (T if modified else T + 1):
        raise FrugalError(f"px must have {T if modified else T + 1} columns for "
                          f"{'modified' if modified else 'regular'} RNN-T, got {px.shape[2]}")
    boundary = _check_boundary(boundary, B, S1 - 1, T, px.device)
    return _MutualInformation.apply(px, py, boundary, modified, False)[0]


def rnnt_occupation(px: Tensor, py: Tensor, boundary: Optional[Tensor] = None,
                    modified: bool = False) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
    """(log-likelihood, (px_grad, py_grad)): the arc occupations, without autograd."""
    B, S1, T = py.shape
    boundary = _check_boundary(boundary, B, S1 - 1, T, px.device)
    with torch.no_grad():
        loglik, gx, gy = _forward_backward(px.detach(), py.detach(), boundary, modified, True)
    return loglik, (gx, gy)


# ------------------------------------------------------------------------------------------
# full loss


def get_rnnt_logprobs_joint(logits: Tensor, symbols: Tensor, boundary: Optional[Tensor] = None,
                            blank: int = 0, modified: bool = False) -> Tuple[Tensor, Tensor]:
    """px, py of the full lattice from joiner logits (B, T, S+1, C), log-softmax fused."""
    if logits.ndim != 4:
        raise FrugalError(f"logits must be (B, T, S+1, C), got shape {tuple(logits.shape)}")
    B, T, S1, C = logits.shape
    S = S1 - 1
    symbols = _check_symbols(symbols, B, S, C)
    boundary = _check_boundary(boundary, B, S, T, logits.device)
    norm = torch.logsumexp(logits, dim=3)  # (B, T, S+1)
    px = logits[:, :, :S].gather(3, symbols.view(B, 1, S, 1).expand(B, T, S, 1)).squeeze(3)
    px = (px - norm[:, :, :S]).transpose(1, 2)  # (B, S, T)
    py = (logits[:, :, :, blank] - norm).transpose(1, 2)  # (B, S+1, T)
    if not modified:
        px = _fix_for_boundary(torch.cat([px, px.new_full((B, S, 1), _NEG_INF)], dim=2), boundary)
    return px.contiguous(), py.contiguous()


def rnnt_loss(logits: Tensor, symbols: Tensor, boundary: Optional[Tensor] = None,
              blank: int = 0, modified: bool = False, reduction: str = "sum") -> Tensor:
    """Full RNN-T loss (negative log-likelihood) from the joiner's logits (B, T, S+1, C).

    ``modified=True``: one symbol per frame. Reductions as k2's (mean over the batch).
    """
    px, py = get_rnnt_logprobs_joint(logits, symbols, boundary, blank, modified)
    return _reduce(rnnt_lattice_loglik(px, py, boundary, modified), reduction)


# ------------------------------------------------------------------------------------------
# simple (additive joiner) loss, with k2's smoothing


def get_rnnt_logprobs_simple(lm: Tensor, am: Tensor, symbols: Tensor,
                             boundary: Optional[Tensor] = None, blank: int = 0,
                             modified: bool = False, lm_only_scale: float = 0.0,
                             am_only_scale: float = 0.0) -> Tuple[Tensor, Tensor]:
    """px, py for logits lm[b, s] + am[b, t] without the (B, T, S+1, C) tensor.

    The normaliser log sum_v exp(am[t, v] + lm[s, v]) is a (S+1) x C by C x T matrix product
    of exp(lm - max) and exp(am - max). With ``lm_only_scale`` / ``am_only_scale`` the arc
    log-probs are interpolated (k2's ``rnnt_loss_smoothed``) with the LM alone and with the
    AM under a unigram LM (lm's softmax averaged over all rows of the batch, padding included
    as in k2).
    """
    if lm.ndim != 3 or am.ndim != 3 or lm.shape[0] != am.shape[0] or lm.shape[2] != am.shape[2]:
        raise FrugalError(f"lm (B, S+1, C) and am (B, T, C) do not fit: "
                          f"{tuple(lm.shape)}, {tuple(am.shape)}")
    B, T, C = am.shape
    S = lm.shape[1] - 1
    symbols = _check_symbols(symbols, B, S, C)
    boundary = _check_boundary(boundary, B, S, T, am.device)
    am_max = am.max(dim=2, keepdim=True)[0].detach()  # (B, T, 1); constants for the exp only
    lm_max = lm.max(dim=2, keepdim=True)[0].detach()  # (B, S+1, 1)
    am_e = (am - am_max).exp()
    lm_e = (lm - lm_max).exp()
    tiny = torch.finfo(am.dtype).tiny
    # (B, S+1, T)
    norm = (lm_e @ am_e.transpose(1, 2) + tiny).log() + lm_max + am_max.transpose(1, 2)
    am_sym = am.gather(2, symbols.view(B, 1, S).expand(B, T, S)).transpose(1, 2)  # (B, S, T)
    lm_sym = lm[:, :S].gather(2, symbols.view(B, S, 1))  # (B, S, 1)
    px = am_sym + lm_sym - norm[:, :S]
    py = am[:, :, blank].unsqueeze(1) + lm[:, :, blank].unsqueeze(2) - norm
    if lm_only_scale or am_only_scale:
        combined = 1.0 - lm_only_scale - am_only_scale
        px, py = px * combined, py * combined
        lm_sums = lm_e.sum(dim=2, keepdim=True)
        if lm_only_scale:
            lm_norm = lm_sums.log() + lm_max  # (B, S+1, 1)
            px = px + lm_only_scale * (lm_sym - lm_norm[:, :S])
            py = py + lm_only_scale * (lm[:, :, blank].unsqueeze(2) - lm_norm)
        if am_only_scale:
            unigram = (lm_e / lm_sums).mean(dim=(0, 1)) + tiny  # (C,)
            am_norm = ((am_e.reshape(-1, C) @ unigram).reshape(B, 1, T).log()
                       + am_max.transpose(1, 2))  # (B, 1, T)
            log_uni = unigram.log()
            px = px + am_only_scale * (am_sym + log_uni[symbols].unsqueeze(2) - am_norm)
            py = py + am_only_scale * (am[:, :, blank].unsqueeze(1) + log_uni[blank] - am_norm)
    if not modified:
        px = _fix_for_boundary(torch.cat([px, px.new_full((B, S, 1), _NEG_INF)], dim=2), boundary)
    return px, py


def rnnt_loss_simple(lm: Tensor, am: Tensor, symbols: Tensor, boundary: Optional[Tensor] = None,
                     blank: int = 0, modified: bool = False, lm_only_scale: float = 0.0,
                     am_only_scale: float = 0.0, reduction: str = "sum", return_grad: bool = False
                     ) -> Union[Tensor, Tuple[Tensor, Tuple[Tensor, Tensor]]]:
    """RNN-T loss of the additive joiner: lm (B, S+1, C) + am (B, T, C) (k2's rnnt_loss_simple,
    or rnnt_loss_smoothed when a scale is set; icefall uses lm_only_scale 0.25, am_only_scale 0).

    ``return_grad``: also return (px_grad, py_grad), the arc occupations that
    `get_rnnt_prune_ranges` reads (k2's "fake gradient" of the negated per-sequence losses).
    """
    px, py = get_rnnt_logprobs_simple(lm, am, symbols, boundary, blank, modified,
                                      lm_only_scale, am_only_scale)
    B, S1, T = py.shape
    boundary = _check_boundary(boundary, B, S1 - 1, T, am.device)
    loglik, px_grad, py_grad = _MutualInformation.apply(px, py, boundary, modified, return_grad)
    loss = _reduce(loglik, reduction)
    return (loss, (px_grad, py_grad)) if return_grad else loss


# ------------------------------------------------------------------------------------------
# pruning


def _monotonic_lower_bound(x: Tensor) -> Tensor:
    """out[i] = min_{j >= i} x[j] along the last axis (k2.monotonic_lower_bound)."""
    return x.flip(-1).cummin(dim=-1)[0].flip(-1)


def _adjust_pruning_lower_bound(s_begin: Tensor, max_step: int) -> Tensor:
    """Non-decreasing, starting at >= 0, steps of at most ``max_step - 1``: no symbol skipped.

    The step bound is a lower bound on s'[t] = (max_step-1)*t - s_begin[t] being non-decreasing.
    """
    T = s_begin.shape[1]
    ramp = (max_step - 1) * torch.arange(T, device=s_begin.device)
    s_begin = _monotonic_lower_bound(s_begin)
    s_begin = _monotonic_lower_bound(ramp - s_begin).clamp(min=0)
    return ramp - s_begin


def get_rnnt_prune_ranges(px_grad: Tensor, py_grad: Tensor, boundary: Optional[Tensor],
                          s_range: int = 5) -> Tensor:
    """(B, T, s_range) symbol positions kept per frame, from the simple lattice's occupation.

    Per frame the window of s_range consecutive nodes with the largest occupation; then from
    the last real frame on the start is U_b - s_range + 1 (clamped at 0) so the last symbol
    is reached there; made non-decreasing with steps < s_range (< 2 for the modified
    lattice, recognised by px_grad having T columns), starting at 0. As k2, s_range is
    capped at S (the number of symbol positions, not S+1), except that a batch with S = 1
    gets a band of 2; the regular lattice needs s_range >= 2 (a band of one node per frame
    cannot take a symbol, where k2 silently gives an infinite pruned loss).
    """
    B, S, T1 = px_grad.shape
    T = py_grad.shape[2]
    if py_grad.shape != (B, S + 1, T) or T1 not in (T, T + 1):
        raise FrugalError(f"px_grad {tuple(px_grad.shape)} and py_grad "
                          f"{tuple(py_grad.shape)} do not fit")
    if s_range < (1 if T1 == T else 2):
        raise FrugalError(f"s_range must be >= {1 if T1 == T else 2}, got {s_range}")
    boundary = _check_boundary(boundary, B, S, T, px_grad.device)
    # k2 caps at S; with S = 1 that band of one node could never take the symbol.
    s_range = min(s_range, max(S, 2), S + 1)
    # occupation of the nodes, (B, S+1, T)
    tot = torch.cat([px_grad, px_grad.new_zeros(B, 1, T1)], dim=1)[:, :, :T] + py_grad
    cum = torch.cat([tot.new_zeros(B, 1, T), tot.cumsum(dim=1)], dim=1)  # (B, S+2, T)
    s_begin = (cum[:, s_range:] - cum[:, :-s_range]).argmax(dim=1)  # (B, T)
    frame = torch.arange(T, device=px_grad.device).view(1, T)
    last = (boundary[:, 2] - s_range + 1).clamp(min=0).view(B, 1)
    s_begin = torch.where(frame < boundary[:, 3].view(B, 1) - 1, s_begin, last)
    s_begin = _adjust_pruning_lower_bound(s_begin, 2 if T1 == T else s_range)
    return s_begin.unsqueeze(2) + torch.arange(s_range, device=px_grad.device)


def do_rnnt_pruning(am: Tensor, lm: Tensor, ranges: Tensor) -> Tuple[Tensor, Tensor]:
    """am (B, T, C) and lm (B, S+1, C) to (B, T, s_range, C) each, for a joiner inside the band.

    am is broadcast (a view); lm rows are gathered at ``ranges``.
    """
    B, T, R = ranges.shape
    if am.shape[:2] != (B, T) or lm.shape[0] != B or am.shape[2] != lm.shape[2]:
        raise FrugalError(f"am {tuple(am.shape)}, lm {tuple(lm.shape)} and ranges "
                          f"{tuple(ranges.shape)} do not fit")
    C = am.shape[2]
    lm_pruned = lm[torch.arange(B, device=lm.device).view(B, 1, 1), ranges]  # (B, T, R, C)
    return am.unsqueeze(2).expand(B, T, R, C), lm_pruned


def get_rnnt_logprobs_pruned(logits: Tensor, symbols: Tensor, ranges: Tensor,
                             boundary: Optional[Tensor] = None, blank: int = 0,
                             modified: bool = False) -> Tuple[Tensor, Tensor]:
    """px, py of the full lattice from band logits (B, T, s_range, C); -inf outside the band."""
    if logits.ndim != 4:
        raise FrugalError(f"logits must be (B, T, s_range, C), got shape {tuple(logits.shape)}")
    B, T, R, C = logits.shape
    if ranges.shape != (B, T, R):
        raise FrugalError(f"ranges must have shape {(B, T, R)}, got {tuple(ranges.shape)}")
    S = symbols.shape[1] if symbols.ndim == 2 else -1
    symbols = _check_symbols(symbols, B, S, C)
    boundary = _check_boundary(boundary, B, S, T, logits.device)
    ranges = ranges.long()
    if ranges.min() < 0 or ranges.max() > S:
        raise FrugalError(f"ranges must lie in [0, {S}], got [{ranges.min()}, {ranges.max()}]")
    norm = torch.logsumexp(logits, dim=3)  # (B, T, R)
    sym_ext = torch.cat([symbols, symbols.new_full((B, 1), blank)], dim=1)  # (B, S+1)
    band_sym = sym_ext.gather(1, ranges.reshape(B, T * R)).view(B, T, R)
    px_band = logits.gather(3, band_sym.unsqueeze(3)).squeeze(3) - norm
    py_band = logits[:, :, :, blank] - norm
    grid = logits.new_full((B, T, S + 1), _NEG_INF)
    px = grid.scatter(2, ranges, px_band)[:, :, :S].transpose(1, 2)  # (B, S, T)
    py = grid.scatter(2, ranges, py_band).transpose(1, 2)  # (B, S+1, T)
    if not modified:
        px = _fix_for_boundary(torch.cat([px, px.new_full((B, S, 1), _NEG_INF)], dim=2), boundary)
    return px.contiguous(), py.contiguous()


def rnnt_loss_pruned(logits: Tensor, symbols: Tensor, ranges: Tensor,
                     boundary: Optional[Tensor] = None, blank: int = 0, modified: bool = False,
                     reduction: str = "sum") -> Tensor:
    """RNN-T loss restricted to the band: the joiner's logits (B, T, s_range, C) at ``ranges``.

    A sum over a subset of the full lattice's paths, so >= the full loss of the same logits.
    """
    px, py = get_rnnt_logprobs_pruned(logits, symbols, ranges, boundary, blank, modified)
    return _reduce(rnnt_lattice_loglik(px, py, boundary, modified), reduction)
