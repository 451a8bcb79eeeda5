"""Per-utterance lattices from a search's raw token lattice, pruned with the lattice beam.

The tokens a search keeps are the raw lattice's states, and its links (every arc within
the beam between kept tokens, as in Kaldi's LatticeSimpleDecoder) are the arcs, with
their graph cost and unscaled acoustic cost. `build_lattices` prunes them as Kaldi's
lattice-prune does and makes one `Lattice` per utterance, states in topological order.
"""
from __future__ import annotations

import math
from typing import List

import numpy as np
import torch
from numba import njit

from frugal.decode.graph import DecodingGraph
from frugal.lattice.lattice import Lattice


def build_lattices(graph: DecodingGraph, num_utts: int, finals, keys: torch.Tensor, alpha: torch.Tensor,
                   frames: torch.Tensor, links, labels, acoustic_scale: float, lattice_beam: float) -> List[Lattice]:
    """Raw token lattices pruned with the lattice beam (Kaldi's lattice-prune): a link
    stays if the best path through it is within ``lattice_beam`` of the best path.

    alpha (the best score from the start) is each token's score; beta (the best score
    to the end) is computed backwards layer by layer, a layer being the tokens of one
    frame and one epsilon rank, so every link leads to a layer already done. The links
    kept form a connected lattice: the best path through a kept link only uses kept links.

    The tokens are given by their ``keys``, scores ``alpha`` and ``frames``, the links by
    their columns ``links`` (token ids ``src`` and ``dst``) and ``labels`` (ilabel, olabel,
    graph score, log-likelihood); ``finals`` are the tokens of each utterance's last frame.
    """
    g = graph
    B, S, R = num_utts, g.num_states, g.max_eps_rank + 1
    device = keys.device
    if not links:
        return [empty_lattice() for _ in range(B)]
    src, dst = links["src"], links["dst"]
    final_score = torch.full_like(alpha, -math.inf)
    for u in range(B):
        if finals[u] is not None:
            ids, states, _ = finals[u]
            fs = g.final_scores[states]
            final_score[ids] = fs if bool((fs > -math.inf).any()) else torch.zeros_like(fs)
    utt = keys // S
    states = keys - utt * S
    layer = frames * R + g.eps_rank.index_select(0, states)
    is_start = (frames == 0) & (states == 0)
    if device.type == "cpu":  # the same sums and maxima, in a compiled loop
        keep, keep_final, best = (torch.from_numpy(x) for x in _prune(
            src.numpy(), dst.numpy(), labels[2].numpy(), labels[3].numpy(), float(acoustic_scale), alpha.numpy(),
            final_score.numpy(), layer.numpy(), utt.numpy(), is_start.numpy(), B, float(lattice_beam)))
    else:
        keep, keep_final, best = _prune_tensors(src, dst, labels, acoustic_scale, alpha, final_score, layer, utt,
                                                is_start, B, lattice_beam)
    # To numpy, per utterance.
    kept = torch.nonzero(keep).squeeze(1)
    src, dst = src.index_select(0, kept).cpu().numpy(), dst.index_select(0, kept).cpu().numpy()
    il, ol, l_graph, l_loglik = (x.index_select(0, kept).cpu().numpy() for x in labels)
    w = np.stack([-l_graph, -l_loglik], 1)
    utt_np, layer_np = utt.cpu().numpy(), layer.cpu().numpy()
    start_np, keep_final_np = is_start.cpu().numpy(), keep_final.cpu().numpy()
    final_np = final_score.cpu().numpy()
    # Links, start tokens and final tokens grouped by utterance: each utterance then
    # costs in proportion to its own lattice.
    link_order = np.argsort(utt_np[src], kind="stable")
    link_splits = np.searchsorted(utt_np[src][link_order], np.arange(B + 1))
    start_ids = np.nonzero(start_np)[0]
    start_of = dict(zip(utt_np[start_ids].tolist(), start_ids.tolist()))
    final_ids = np.nonzero(keep_final_np)[0]
    new_id = np.full(utt_np.size, -1, dtype=np.int64)
    out = []
    for u in range(B):
        if u not in start_of or not np.isfinite(float(best[u])):
            out.append(empty_lattice())
            continue
        m = link_order[link_splits[u]:link_splits[u + 1]]
        start = start_of[u]
        finals_u = final_ids[utt_np[final_ids] == u] if final_ids.size else final_ids
        used = np.unique(np.concatenate([[start], src[m], dst[m], finals_u]))
        # State numbers in (frame, epsilon rank) order, start first: topological.
        used = used[np.lexsort((used, layer_np[used], used != start))]
        new_id[used] = np.arange(used.size)
        arcs = np.stack([new_id[src[m]], new_id[dst[m]], il[m], ol[m]], 1)
        fin = np.full((used.size, 2), math.inf, dtype=np.float32)
        fin[new_id[finals_u], 0] = -final_np[finals_u]
        fin[new_id[finals_u], 1] = 0.0
        new_id[used] = -1
        by_src = np.argsort(arcs[:, 0], kind="stable")  # arcs grouped by state, as Kaldi's
        out.append(Lattice(arcs[by_src], w[m][by_src], fin))
    return out


def _prune_tensors(src, dst, labels, acoustic_scale, alpha, final_score, layer, utt, is_start, B, lattice_beam):
    """(links kept, final tokens kept, best path score per utterance) in tensor operations,
    layer by layer (see `build_lattices`)."""
    device = src.device
    score = labels[2] + acoustic_scale * labels[3]
    beta = final_score.clone()
    num_layers = int(layer.max()) + 1
    src_layer = layer.index_select(0, src)
    # Links come out of the search nearly in layer order: a stable merge sort (numpy's
    # timsort) is close to linear on them, unlike a general sort.
    order = torch.from_numpy(np.argsort(src_layer.cpu().numpy(), kind="stable")).to(device)
    splits = torch.cat([torch.zeros(1, dtype=torch.long, device=device),
                        torch.bincount(src_layer, minlength=num_layers).cumsum(0)]).tolist()
    src_o, dst_o, score_o = (x.index_select(0, order) for x in (src, dst, score))
    for L in reversed(range(num_layers)):
        lo, hi = splits[L], splits[L + 1]
        if lo == hi:
            continue
        beta.scatter_reduce_(0, src_o[lo:hi], score_o[lo:hi] + beta.index_select(0, dst_o[lo:hi]), reduce="amax")
    best = torch.full((B,), -math.inf, device=device)
    best[utt[is_start]] = beta[is_start]
    threshold = best - lattice_beam
    keep = alpha.index_select(0, src) + score + beta.index_select(0, dst) >= \
        threshold.index_select(0, utt.index_select(0, src))
    keep_final = alpha + final_score >= threshold.index_select(0, utt)
    return keep, keep_final, best


@njit(cache=True, error_model="numpy")
def _prune(src, dst, graph, loglik, ac, alpha, final_score, layer, utt, is_start, B, lattice_beam):
    """`_prune_tensors`, to the bit, as one loop: beta backwards over the links in an order
    where the links leaving a link's destination come after it (so its beta is final when
    the link is read), then the thresholds."""
    ac = np.float32(ac)
    score = np.empty(src.shape[0], np.float32)
    src_layer = np.empty(src.shape[0], np.int64)
    for i in range(src.shape[0]):
        score[i] = graph[i] + ac * loglik[i]
        src_layer[i] = layer[src[i]]
    # The searches record a frame's links after the previous frame's, and within a frame
    # by the rank of their source, so the links leaving a link's destination usually all
    # come after it: then the reverse of the given order is a valid order, and no sort is
    # needed (checked in one pass).
    first_out = np.full(alpha.shape[0], src.shape[0], np.int64)
    for i in range(src.shape[0] - 1, -1, -1):
        first_out[src[i]] = i
    in_order = True
    for i in range(src.shape[0]):
        if first_out[dst[i]] <= i:
            in_order = False
            break
    order = np.arange(src.shape[0]) if in_order else np.argsort(src_layer, kind="mergesort")
    beta = final_score.copy()
    for j in range(order.shape[0] - 1, -1, -1):
        i = order[j]
        v = score[i] + beta[dst[i]]
        if v > beta[src[i]]:
            beta[src[i]] = v
    best = np.full(B, -np.inf, np.float32)
    for t in range(alpha.shape[0]):
        if is_start[t]:
            best[utt[t]] = beta[t]
    threshold = best - np.float32(lattice_beam)
    keep = np.empty(src.shape[0], np.bool_)
    for i in range(src.shape[0]):
        keep[i] = (alpha[src[i]] + score[i]) + beta[dst[i]] >= threshold[utt[src[i]]]
    keep_final = np.empty(alpha.shape[0], np.bool_)
    for t in range(alpha.shape[0]):
        keep_final[t] = alpha[t] + final_score[t] >= threshold[utt[t]]
    return keep, keep_final, best


def empty_lattice() -> Lattice:
    """A lattice with no arcs and a start state that is not final."""
    return Lattice(np.zeros((0, 4)), np.zeros((0, 2)), np.full((1, 2), math.inf))
