"""Clustered and improved clustered attention (thesis §5.5, App. B.2; Vyas et al. 2020).

Queries are grouped per (sequence, head) by locality-sensitive hashing and K-means in
Hamming space; each cluster's centroid (the mean of its queries) attends with softmax to all
keys, and every query takes its cluster's output (`clustered_attention`, eq. 5.25-5.28).
Improved clustered attention (`improved_clustered_attention`, eq. 5.29-5.32) recomputes,
for each query, the attention on the ``topk`` keys its centroid attends to most exactly,
scaled to the centroid's mass on them, and keeps the centroid's attention on the rest.

Grouping (as the authors' library, [FT] hash_cpu.cpp and cluster_cpu.cpp):

- `hash_queries`: ``bits`` random hyperplanes a_b with offsets β_b, all N(0, 1) (a
  (bits, D + 1) tensor); bit b of query q is [q·a_b > β_b]; the bits are packed into an
  int64 (bits ≤ 63, so hashes are non-negative);
- `kmeans_hamming`: centroids start as the first C hashes of each sequence; then
  ``iterations`` - 1 rounds of (assign each hash to the centroid at the smallest Hamming
  distance, popcount(h XOR c); new centroid bit = majority vote of its members' bits; an
  empty cluster takes the hash of a random valid query), and a last assignment. Padded
  queries are never clustered: they take no part in centroids, counts or initialisation
  (they are still given their nearest centroid, whose output they get and callers ignore).

Everything is vectorised over batch, heads, queries and clusters; the K-means rounds loop.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

_M1, _M2, _M4 = 0x5555555555555555, 0x3333333333333333, 0x0F0F0F0F0F0F0F0F


def popcount(x: torch.Tensor) -> torch.Tensor:
    """Number of set bits of non-negative int64 values (SWAR bit counting with torch ops).
    Works in place on (and returns) ``x``: pass a tensor that may be overwritten."""
    t = x >> 1
    t &= _M1
    x -= t
    torch.bitwise_right_shift(x, 2, out=t)
    t &= _M2
    x &= _M2
    x += t
    for shift, mask in ((4, _M4), (8, None), (16, None), (32, None)):
        torch.bitwise_right_shift(x, shift, out=t)
        x += t
        if mask is not None:
            x &= mask
    x &= 0x7F
    return x


def random_planes(dim: int, bits: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """(bits, dim + 1) hyperplanes and offsets ~ N(0, 1), drawn on the CPU (same draws on any device)."""
    return torch.randn(bits, dim + 1, generator=generator, dtype=torch.float64)


def hash_queries(q: torch.Tensor, planes: torch.Tensor) -> torch.Tensor:
    """(..., N, D) queries -> (..., N) int64 hashes: bit b = [q·a_b > β_b]."""
    d = q.shape[-1]
    planes = planes.to(device=q.device, dtype=q.dtype)
    bits = (q.detach() @ planes[:, :d].T) > planes[:, d]
    weights = torch.ones((), dtype=torch.int64, device=q.device) << torch.arange(planes.shape[0], device=q.device)
    return (bits.to(torch.int64) * weights).sum(-1)


def hamming(hashes: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """(..., N) and (..., C) hashes -> (..., N, C) Hamming distances."""
    return popcount(hashes.unsqueeze(-1) ^ centroids.unsqueeze(-2))


def kmeans_hamming(hashes: torch.Tensor, clusters: int, iterations: int, bits: int,
                   valid: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """K-means of (B, H, N) hashes into ``clusters`` in Hamming space, ``iterations`` Lloyd
    assignments (see the module docstring). ``valid`` (B, N) is True for real queries.

    Returns (assignment (B, H, N) int64, centroids (B, H, C) int64, counts (B, H, C) of
    valid queries): every hash's assignment is its nearest centroid of the returned
    centroids (the first one on ties).
    """
    B, H, N = hashes.shape
    C = clusters
    device = hashes.device
    if valid is None:
        valid = torch.ones(B, N, dtype=torch.bool, device=device)
    lengths = valid.sum(-1)                                                  # (B,)
    # Valid positions first, in order: init with the first C valid hashes (the last one repeated).
    order = torch.argsort((~valid).to(torch.int8), dim=-1, stable=True)     # (B, N)
    first = torch.minimum(torch.arange(C, device=device).unsqueeze(0), (lengths - 1).clamp(min=0).unsqueeze(1))
    init_pos = torch.gather(order, 1, first)                                 # (B, C)
    centroids = torch.gather(hashes, 2, init_pos[:, None, :].expand(B, H, C))
    member = valid[:, None, :].expand(B, H, N).to(torch.int64)
    shifts = torch.arange(bits, device=device)
    for it in range(iterations):
        assign = hamming(hashes, centroids).argmin(-1)                       # (B, H, N)
        counts = torch.zeros(B, H, C, dtype=torch.int64, device=device).scatter_add_(2, assign, member)
        if it == iterations - 1:
            break
        hash_bits = ((hashes.unsqueeze(-1) >> shifts) & 1) * member.unsqueeze(-1)   # (B, H, N, bits)
        ones = torch.zeros(B, H, C, bits, dtype=torch.int64, device=device).scatter_add_(
            2, assign.unsqueeze(-1).expand(B, H, N, bits), hash_bits)
        majority = (2 * ones > counts.unsqueeze(-1)).to(torch.int64)
        new = (majority << shifts).sum(-1)
        # Empty clusters: the hash of a random valid query of the sequence.
        r = torch.rand(B, H, C, generator=generator, dtype=torch.float64).to(device)
        pick = (r * lengths[:, None, None].clamp(min=1)).long().clamp(max=N - 1)
        pos = torch.gather(order[:, None, :].expand(B, H, N), 2, pick)
        reseed = torch.gather(hashes, 2, pos)
        centroids = torch.where(counts == 0, reseed, new)
    return assign, centroids, counts


def cluster_queries(q: torch.Tensor, key_padding_mask: Optional[torch.Tensor], clusters: int, bits: int,
                    iterations: int, generator: Optional[torch.Generator] = None
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Hash + K-means of (B, H, N, D) queries: (assignment (B, H, N), counts (B, H, C))."""
    valid = None if key_padding_mask is None else ~key_padding_mask
    planes = random_planes(q.shape[-1], bits, generator)
    hashes = hash_queries(q, planes)
    assign, _, counts = kmeans_hamming(hashes, clusters, iterations, bits, valid, generator)
    return assign, counts


def centroid_queries(q: torch.Tensor, assign: torch.Tensor, counts: torch.Tensor,
                     key_padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
    """(B, H, C, D) means of each cluster's valid queries (eq. 5.25); zero for empty ones."""
    B, H, N, D = q.shape
    C = counts.shape[-1]
    if key_padding_mask is not None:
        q = q.masked_fill(key_padding_mask[:, None, :, None], 0.0)
    sums = q.new_zeros(B, H, C, D).scatter_add(2, assign.unsqueeze(-1).expand(B, H, N, D), q)
    return sums / counts.clamp(min=1).unsqueeze(-1).to(q.dtype)


def _centroid_attention(qc, k, key_padding_mask):
    """A^c = softmax(Q^c Kᵀ / √D) over the valid keys (eq. 5.26), (B, H, C, N)."""
    scores = (qc @ k.transpose(-1, -2)) / math.sqrt(qc.shape[-1])
    if key_padding_mask is not None:
        scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
    return torch.softmax(scores, dim=-1)


def _broadcast(per_cluster: torch.Tensor, assign: torch.Tensor) -> torch.Tensor:
    """(B, H, C, M) cluster rows -> (B, H, N, M), row i = the row of query i's cluster (eq. 5.28)."""
    B, H, N = assign.shape
    return torch.gather(per_cluster, 2, assign.unsqueeze(-1).expand(B, H, N, per_cluster.shape[-1]))


def clustered_attention(q, k, v, key_padding_mask=None, clusters: int = 100, bits: int = 63,
                        iterations: int = 10, generator=None, dropout_p: float = 0.0, assign=None):
    """Clustered attention (eq. 5.25-5.28). ``assign`` (B, H, N), a given clustering into
    ``clusters`` groups, replaces hashing and K-means (tests; any clustering)."""
    if assign is None:
        assign, counts = cluster_queries(q, key_padding_mask, clusters, bits, iterations, generator)
    else:
        counts = _counts(assign, clusters, key_padding_mask)
    qc = centroid_queries(q, assign, counts, key_padding_mask)
    ac = _centroid_attention(qc, k, key_padding_mask)
    ac = F.dropout(ac, dropout_p, training=dropout_p > 0)
    return _broadcast(ac @ v, assign)


def improved_clustered_attention(q, k, v, key_padding_mask=None, clusters: int = 100, bits: int = 63,
                                 iterations: int = 10, topk: int = 32, generator=None, dropout_p: float = 0.0,
                                 assign=None):
    """Improved clustered attention (eq. 5.29-5.32, App. B.2).

    T = each cluster's ``topk`` keys by A^c; m̂_j = Σ_{l∈T_j} A^c_jl. Query i of cluster j:
    A^t_il = m̂_j softmax_{l∈T_j}(Q_iK_lᵀ/√D) on T_j, A^c_jl elsewhere. The bottom part
    Σ_{l∉T_j} A^c_jl V_l is computed once per cluster; the top part per query by gathering
    its cluster's k keys and values (O(N k max(D, M)) time and memory).
    """
    if assign is None:
        assign, counts = cluster_queries(q, key_padding_mask, clusters, bits, iterations, generator)
    else:
        counts = _counts(assign, clusters, key_padding_mask)
    B, H, N, D = q.shape
    M = v.shape[-1]
    qc = centroid_queries(q, assign, counts, key_padding_mask)
    ac = _centroid_attention(qc, k, key_padding_mask)                       # (B, H, C, N)
    kk = min(topk, k.shape[-2])
    if kk == 0:
        return _broadcast(F.dropout(ac, dropout_p, training=dropout_p > 0) @ v, assign)
    top_idx = ac.detach().topk(kk, dim=-1).indices                          # (B, H, C, k)
    mass = torch.gather(ac, -1, top_idx).sum(-1, keepdim=True)              # m̂_j, (B, H, C, 1)
    bottom = ac.scatter(-1, top_idx, 0.0)
    bottom = F.dropout(bottom, dropout_p, training=dropout_p > 0)
    out_bottom = _broadcast(bottom @ v, assign)                             # (B, H, N, M)
    # Top part: each query's own softmax over its cluster's k keys.
    idx = _broadcast(top_idx, assign)                                       # (B, H, N, k)
    flat = idx.reshape(B, H, N * kk, 1)
    k_top = torch.gather(k, 2, flat.expand(B, H, N * kk, D)).view(B, H, N, kk, D)
    v_top = torch.gather(v, 2, flat.expand(B, H, N * kk, M)).view(B, H, N, kk, M)
    scores = torch.einsum("bhnd,bhnkd->bhnk", q, k_top) / math.sqrt(D)
    if key_padding_mask is not None:
        padded = torch.gather(key_padding_mask[:, None, :].expand(B, H, -1), 2,
                              idx.reshape(B, H, N * kk)).view(B, H, N, kk)
        scores = scores.masked_fill(padded, float("-inf"))
    p = torch.softmax(scores, dim=-1) * _broadcast(mass, assign)
    p = F.dropout(p, dropout_p, training=dropout_p > 0)
    return out_bottom + torch.einsum("bhnk,bhnkm->bhnm", p, v_top)


def _counts(assign: torch.Tensor, clusters: int, key_padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
    B, H, N = assign.shape
    member = torch.ones(B, H, N, dtype=torch.int64, device=assign.device)
    if key_padding_mask is not None:
        member = member * (~key_padding_mask)[:, None, :]
    return torch.zeros(B, H, clusters, dtype=torch.int64, device=assign.device).scatter_add_(2, assign, member)
