"""Attention kernels of the thesis's chapter 5: softmax, linear, causal linear, clustered,
improved clustered and oracle top-k, behind one function with one signature.

    attention(q, k, v, kind, key_padding_mask=None, causal=False, dropout_p=0.0, **opts)

``q`` and ``k`` are (B, H, N, D), ``v`` is (B, H, N, M); ``key_padding_mask`` (B, N) is True
at padded positions (those keys are never attended to; padded queries get some output that
callers ignore, and never change the others'); the result is (B, H, N, M).

- ``softmax``: softmax(QKᵀ/√D)V through ``torch.nn.functional.scaled_dot_product_attention``
  (the baseline, eq. 5.2 of the thesis).
- ``linear`` (Katharopoulos, Vyas et al. 2020; thesis §5.4): φ(Q)(φ(K)ᵀV) normalised by
  φ(Q)Σ_j φ(K_j) + ε, with φ(x) = elu(x) + 1 and ε = 1e-6, no 1/√D scaling (as the authors'
  library); padded keys are removed by zeroing their φ(K) and V rows. O(N D M) time and
  O(N max(D, M)) memory.
- ``causal-linear`` (or ``linear`` with ``causal=True``): V̂_i = φ(Q_i)ᵀS_i / φ(Q_i)ᵀZ_i with
  S_i = Σ_{j≤i} φ(K_j)V_jᵀ, Z_i = Σ_{j≤i} φ(K_j) (eq. 5.12-5.16). The numerator is
  `CausalLinearProduct`, an autograd Function with its own backward (eq. 5.17-5.19, App. B.1):
  it keeps only its inputs, never the N states S_i. `causal_linear_step` is the same model as
  an RNN (eq. 5.20-5.24): one position at a time with a state (S, z) of constant size.
- ``clustered``, ``improved-clustered``: `frugal.models.attention_clustered` (§5.5).
- ``topk`` (the thesis's oracle-top): every query attends with softmax to its own ``topk``
  highest-scoring keys only. It computes the full score matrix (O(N²), an oracle, not a
  fast method).

Options (``**opts``): ``clusters`` (100), ``bits`` (63), ``iterations`` (10) for the
clustered kinds, ``topk`` (32) for improved-clustered and topk, ``generator`` (a CPU
``torch.Generator`` for the clustered kinds' random hyperplanes; None: torch's global RNG)
and ``chunk`` (64, the block size of the causal linear product). Dropout (``dropout_p``)
drops attention weights where a kind has them: softmax, topk, the centroid attention of the
clustered kinds and the top-k part of improved clustered; linear attention has none.

Everything is vectorised (no Python loop over queries, keys, positions or clusters; only
the K-means iterations loop) and runs on whichever device the tensors are on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from frugal.errors import FrugalError

KINDS = ("softmax", "linear", "causal-linear", "clustered", "improved-clustered", "topk")
EPS = 1e-6


@dataclass
class AttentionOptions:
    """Which attention a layer uses and its hyper-parameters (thesis App. B.3.5 defaults)."""

    kind: str = "softmax"
    clusters: int = 100
    bits: int = 63
    iterations: int = 10
    topk: int = 32

    def validate(self, where: str = "attention") -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{where}: unknown attention {self.kind!r} (known: {', '.join(KINDS)})")
        if self.clusters < 1:
            raise ValueError(f"{where}: clusters must be at least 1 (got {self.clusters})")
        if not 1 <= self.bits <= 63:
            raise ValueError(f"{where}: bits must be in 1..63 (packed into an int64; got {self.bits})")
        if self.iterations < 1:
            raise ValueError(f"{where}: iterations must be at least 1 (got {self.iterations})")
        if self.topk < 0:
            raise ValueError(f"{where}: topk must be 0 or more (got {self.topk})")

    def opts(self) -> dict:
        return {"clusters": self.clusters, "bits": self.bits, "iterations": self.iterations, "topk": self.topk}


class AttentionFields:
    """Methods of a model config that has the attention fields (``attention``, ``clusters``,
    ``bits``, ``iterations``, ``topk``) of its transformer layers' `AttentionOptions`."""

    def attention_options(self) -> AttentionOptions:
        return AttentionOptions(self.attention, self.clusters, self.bits, self.iterations, self.topk)

    def validate_attention(self, where: str) -> None:
        try:
            self.attention_options().validate(where)
        except ValueError as e:
            raise FrugalError(str(e)) from None


def feature_map(x: torch.Tensor) -> torch.Tensor:
    """φ(x) = elu(x) + 1 (eq. 5.11): positive, with gradients for x < 0."""
    return F.elu(x) + 1.0


def _expand_padding(key_padding_mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """(B, N) True = padded -> (B, 1, N, 1), to zero rows of (B, H, N, D) tensors."""
    return None if key_padding_mask is None else key_padding_mask[:, None, :, None]


# --------------------------------------------------------------------------- softmax
def softmax_attention(q, k, v, key_padding_mask=None, causal=False, dropout_p=0.0):
    if key_padding_mask is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=causal)
    allowed = ~key_padding_mask[:, None, None, :]
    if causal:
        n = q.shape[-2]
        allowed = allowed & torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p)


# --------------------------------------------------------------------------- linear
def linear_attention(q, k, v, key_padding_mask=None, eps: float = EPS):
    """Non-causal linear attention, φ(Q)(φ(K)ᵀV) / φ(Q)Σφ(K) (eq. 5.9-5.10)."""
    fq, fk = feature_map(q), feature_map(k)
    pad = _expand_padding(key_padding_mask)
    if pad is not None:
        fk, v = fk.masked_fill(pad, 0.0), v.masked_fill(pad, 0.0)
    kv = torch.einsum("bhnd,bhnm->bhdm", fk, v)
    den = torch.einsum("bhnd,bhd->bhn", fq, fk.sum(dim=2)) + eps
    return torch.einsum("bhnd,bhdm->bhnm", fq, kv) / den.unsqueeze(-1)


def causal_product(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """out_i = Σ_{j≤i} (q_i·k_j) v_j for (..., N, D), (..., N, D), (..., N, M), blockwise.

    The sequence is cut into blocks of ``chunk`` positions: within a block the masked
    products are computed directly (chunk² per block), across blocks through the state
    Σ k_j v_jᵀ of all earlier blocks (an exclusive prefix sum over the N / chunk block
    states). Time O(N (chunk + D) M), memory O(N (chunk + D M / chunk)): with chunk ≈ D
    that is the size of the inputs, where a cumulative sum of outer products would hold N
    D×M states.
    """
    n, d, m = q.shape[-2], q.shape[-1], v.shape[-1]
    c = max(1, min(chunk, n))
    blocks = -(-n // c)
    pad = blocks * c - n
    if pad:
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
    lead = q.shape[:-2]
    qb, kb, vb = q.reshape(*lead, blocks, c, d), k.reshape(*lead, blocks, c, d), v.reshape(*lead, blocks, c, m)
    tril = torch.ones(c, c, dtype=torch.bool, device=q.device).tril()
    local = (qb @ kb.transpose(-1, -2)).masked_fill(~tril, 0.0) @ vb
    states = kb.transpose(-1, -2) @ vb                      # (..., blocks, D, M)
    before = states.cumsum(dim=-3) - states                 # the state of all earlier blocks
    out = (local + qb @ before).reshape(*lead, blocks * c, m)
    return out[..., :n, :] if pad else out


class CausalLinearProduct(torch.autograd.Function):
    """V̄ = causal_product(φQ, φK, V) with the memory-efficient backward of thesis App. B.1.

    With P = tril(φQ φKᵀ), V̄ = P V and G = ∂L/∂V̄ (eq. 5.17-5.19):
      ∂L/∂φQ = tril(G Vᵀ) φK                      (a causal product: forward running sums)
      ∂L/∂φK = triu(V Gᵀ) φQ,  ∂L/∂V = triu(φK φQᵀ) G   (anti-causal: causal products on
                                                         the reversed sequence)
    so the backward, like the forward, keeps no per-position state; only the inputs are saved.
    """

    @staticmethod
    def forward(ctx, q, k, v, chunk: int = 64):
        ctx.save_for_backward(q, k, v)
        ctx.chunk = chunk
        return causal_product(q, k, v, chunk)

    @staticmethod
    def backward(ctx, grad):
        q, k, v = ctx.saved_tensors
        c = ctx.chunk
        grad = grad.contiguous()
        gq = gk = gv = None
        if ctx.needs_input_grad[0]:
            gq = causal_product(grad, v, k, c)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            rq, rk, rv, rg = (t.flip(-2) for t in (q, k, v, grad))
            if ctx.needs_input_grad[1]:
                gk = causal_product(rv, rg, rq, c).flip(-2)
            if ctx.needs_input_grad[2]:
                gv = causal_product(rk, rq, rg, c).flip(-2)
        return gq, gk, gv, None


def causal_linear_attention(q, k, v, key_padding_mask=None, eps: float = EPS, chunk: int = 64):
    """Causal linear attention (eq. 5.12-5.16); the denominator goes through autograd."""
    fq, fk = feature_map(q), feature_map(k)
    pad = _expand_padding(key_padding_mask)
    if pad is not None:
        fk, v = fk.masked_fill(pad, 0.0), v.masked_fill(pad, 0.0)
    num = CausalLinearProduct.apply(fq, fk, v, chunk)
    den = (fq * fk.cumsum(dim=2)).sum(-1, keepdim=True) + eps
    return num / den


def causal_linear_step(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                       state: Optional[Tuple[torch.Tensor, torch.Tensor]] = None, eps: float = EPS
                       ) -> Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """One position of causal linear attention as an RNN (eq. 5.20-5.24).

    ``q``, ``k`` (B, H, D), ``v`` (B, H, M) of the new position; ``state`` (s, z) with s
    (B, H, D, M) and z (B, H, D), None at the start (s_0 = 0, z_0 = 0). Returns the output
    (B, H, M) and the new state: s_i = s_{i-1} + φ(k_i)v_iᵀ, z_i = z_{i-1} + φ(k_i),
    out = φ(q_i)ᵀs_i / (φ(q_i)ᵀz_i + ε). Constant time and memory per step.
    """
    fq, fk = feature_map(q), feature_map(k)
    if state is None:
        s = fk.new_zeros(fk.shape + (v.shape[-1],))
        z = fk.new_zeros(fk.shape)
    else:
        s, z = state
    s = s + fk.unsqueeze(-1) * v.unsqueeze(-2)
    z = z + fk
    num = torch.einsum("bhd,bhdm->bhm", fq, s)
    den = (fq * z).sum(-1, keepdim=True) + eps
    return num / den, (s, z)


# --------------------------------------------------------------------------- oracle top-k
def topk_attention(q, k, v, key_padding_mask=None, causal=False, topk: int = 32, dropout_p=0.0):
    """Each query's softmax over its own ``topk`` highest-scoring keys (oracle-top, [FT]
    exact-topk); the full score matrix is computed, so this is an O(N²) reference."""
    n = k.shape[-2]
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if key_padding_mask is not None:
        scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
    if causal:
        upper = torch.ones(q.shape[-2], n, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(upper, float("-inf"))
    kk = min(topk, n)
    if kk == 0:
        return v.new_zeros(q.shape[:-1] + (v.shape[-1],))
    top, idx = scores.topk(kk, dim=-1)
    p = F.dropout(torch.softmax(top, dim=-1), dropout_p, training=dropout_p > 0)
    weights = torch.zeros_like(scores).scatter_(-1, idx, p)
    return weights @ v


# --------------------------------------------------------------------------- one interface
def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kind: str = "softmax",
              key_padding_mask: Optional[torch.Tensor] = None, causal: bool = False, dropout_p: float = 0.0,
              clusters: int = 100, bits: int = 63, iterations: int = 10, topk: int = 32,
              generator: Optional[torch.Generator] = None, chunk: int = 64) -> torch.Tensor:
    """Attention of ``kind`` (one of KINDS) over (B, H, N, D) queries/keys and (B, H, N, M)
    values; see the module docstring. ``causal-linear`` is always causal; the clustered
    kinds cannot be (their centroids mix time steps)."""
    if kind == "softmax":
        return softmax_attention(q, k, v, key_padding_mask, causal, dropout_p)
    if kind == "linear" and not causal:
        return linear_attention(q, k, v, key_padding_mask)
    if kind in ("linear", "causal-linear"):
        return causal_linear_attention(q, k, v, key_padding_mask, chunk=chunk)
    if kind == "topk":
        return topk_attention(q, k, v, key_padding_mask, causal, topk, dropout_p)
    if kind in ("clustered", "improved-clustered"):
        if causal:
            raise ValueError(f"{kind} attention cannot be causal (cluster centroids mix time steps)")
        from frugal.models.attention_clustered import clustered_attention, improved_clustered_attention
        if kind == "clustered":
            return clustered_attention(q, k, v, key_padding_mask, clusters, bits, iterations,
                                       generator=generator, dropout_p=dropout_p)
        return improved_clustered_attention(q, k, v, key_padding_mask, clusters, bits, iterations, topk,
                                            generator=generator, dropout_p=dropout_p)
    raise ValueError(f"unknown attention {kind!r} (known: {', '.join(KINDS)})")
