"""The compiled search: the sparse search's algorithm as one loop over tokens and arcs, for CPU.

On CPU a frame of the sparse search is a hundred or so tensor operations over a few
thousand tokens, and their fixed costs and the intermediate arrays dominate; Kaldi's
decoders walk the tokens and arcs in a loop instead. This module is that loop, compiled by
numba (torch has no kernel for a token-passing search), computing exactly what
`search_sparse` computes, to the bit: the same candidates in the same order, float32
arithmetic in the same order, the same tie-breaking (the lowest candidate of a key's best
score within one scatter, a later scatter's equal score over an earlier one), the same
beam and max-active pruning, and the same tokens and links out. The tests compare the two
on every output array. GPUs run the tensor searches.

Candidates of a frame: the emitting arcs of the tokens alive (start tokens at t = 0), then,
rank by rank, the non-emitting arcs of the candidates that are their key's best in states
of that rank. A key is ``utt * num_states + state``; per-key scratch arrays are reset by
touching only the keys used.
"""
from __future__ import annotations

import math
from typing import List

import numpy as np
import torch
from numba import njit

from frugal.decode.graph import DecodingGraph
from frugal.decode.search_common import Columns, DecoderConfig, SearchOutput

_NONE = np.int32(np.iinfo(np.int32).max)


@njit(cache=True)
def _grow(a, n):
    """``a`` with room for at least ``n`` elements (doubling), its content kept."""
    if n <= a.shape[0]:
        return a
    out = np.empty(max(n, 2 * a.shape[0]), dtype=a.dtype)
    out[:a.shape[0]] = a
    return out


@njit(cache=True)
def _scatter(c_key, c_score, lo, hi, best, arg, stamp, call):
    """Fold candidates lo..hi-1 into the per-key best score and its candidate: within one
    call the lowest candidate of the best score, over an earlier call's equal score."""
    for i in range(lo, hi):
        k = c_key[i]
        s = c_score[i]
        if s > best[k]:
            best[k] = s
            arg[k] = i
            stamp[k] = call
        elif s == best[k] and stamp[k] != call:
            arg[k] = i
            stamp[k] = call


@njit(cache=True)
def _kth_largest_cutoff(values, n, max_active):
    """The (n - max_active + 1)-th smallest of values[:n] (torch.kthvalue's value)."""
    return np.partition(values[:n].copy(), n - max_active)[n - max_active]


@njit(cache=True)
def _search(e_start, e_dst, e_label, e_olabel, e_score, p_start, p_dst, p_olabel, p_score, eps_rank, max_eps_rank,
            scores, lengths, S, ac, beam, max_active, lattice):
    B, T, D = scores.shape
    f32 = np.float32
    ac = f32(ac)
    beam = f32(beam)
    NK = B * S
    best = np.full(NK, -np.inf, dtype=np.float32)
    arg = np.full(NK, _NONE, dtype=np.int32)   # candidate indices of a frame
    stamp = np.full(NK, -1, dtype=np.int32)
    pos = np.full(NK, -1, dtype=np.int64)
    kept = np.zeros(NK, dtype=np.bool_)
    # this frame's candidates
    cap = 1024
    c_key = np.empty(cap, np.int64)
    c_score = np.empty(cap, np.float32)
    c_src = np.empty(cap, np.int64)
    c_inframe = np.empty(cap, np.bool_)
    c_ilabel = np.empty(cap, np.int64)
    c_olabel = np.empty(cap, np.int64)
    c_graph = np.empty(cap, np.float32)
    c_loglik = np.empty(cap, np.float32)
    c_islink = np.empty(cap, np.bool_)
    # all tokens and links
    tcap = 1024
    t_key = np.empty(tcap, np.int64)
    t_score = np.empty(tcap, np.float32)
    t_frame = np.empty(tcap, np.int64)
    t_best = np.empty(tcap, np.int64)
    lcap = 1024
    l_src = np.empty(lcap, np.int64)
    l_dst = np.empty(lcap, np.int64)
    l_ilabel = np.empty(lcap, np.int64)
    l_olabel = np.empty(lcap, np.int64)
    l_graph = np.empty(lcap, np.float32)
    l_loglik = np.empty(lcap, np.float32)
    cur_keys = np.arange(B) * S
    cur_scores = np.zeros(B, np.float32)
    cur_ids = np.full(B, -1, np.int64)
    num_tokens = 0
    num_links = 0
    uttmax = np.empty(B, np.float32)
    cutoff = np.empty(B, np.float32)
    eps_buckets = np.empty(1024, np.int64)  # candidates in states with eps arcs, in candidate order
    ranks_list = np.empty(1024, np.int64)   # and their states' ranks
    for t in range(T + 1):
        n = 0
        if t == 0:
            for u in range(B):
                c_key[n] = cur_keys[u]
                c_score[n] = cur_scores[u]
                c_src[n] = cur_ids[u]
                c_inframe[n] = False
                c_ilabel[n] = 0
                c_olabel[n] = 0
                c_graph[n] = cur_scores[u]
                c_loglik[n] = cur_scores[u]
                c_islink[n] = False
                n += 1
        else:
            # emitting arcs of the alive tokens, then the beam over them per utterance
            uttmax[:] = -np.inf
            total = 0
            for i in range(cur_keys.shape[0]):
                u = cur_keys[i] // S
                if lengths[u] > t - 1:
                    s = cur_keys[i] % S
                    total += e_start[s + 1] - e_start[s]
            if total > c_key.shape[0]:
                c_key = _grow(c_key, total)
                c_score = _grow(c_score, total)
                c_src = _grow(c_src, total)
                c_inframe = _grow(c_inframe, total)
                c_ilabel = _grow(c_ilabel, total)
                c_olabel = _grow(c_olabel, total)
                c_graph = _grow(c_graph, total)
                c_loglik = _grow(c_loglik, total)
                c_islink = _grow(c_islink, total)
            # The arcs of each utterance's best token first give a candidate score, so that
            # most candidates below the beam are never stored: they are below the running
            # best minus the beam, hence below the final best minus the beam.
            best_tok = np.full(B, -1, np.int64)
            for i in range(cur_keys.shape[0]):
                u = cur_keys[i] // S
                if lengths[u] > t - 1 and (best_tok[u] < 0 or cur_scores[i] > cur_scores[best_tok[u]]):
                    best_tok[u] = i
            for u in range(B):
                i = best_tok[u]
                if i >= 0:
                    s = cur_keys[i] % S
                    for a in range(e_start[s], e_start[s + 1]):
                        c = (cur_scores[i] + e_score[a]) + ac * scores[u, t - 1, e_label[a]]
                        if c > uttmax[u]:
                            uttmax[u] = c
            for i in range(cur_keys.shape[0]):
                u = cur_keys[i] // S
                if lengths[u] <= t - 1:
                    continue
                s = cur_keys[i] % S
                sc = cur_scores[i]
                for a in range(e_start[s], e_start[s + 1]):
                    ll = scores[u, t - 1, e_label[a]]
                    c = (sc + e_score[a]) + ac * ll
                    if c < uttmax[u] - beam:
                        continue
                    c_key[n] = u * S + e_dst[a]
                    c_score[n] = c
                    c_src[n] = cur_ids[i]
                    c_loglik[n] = ll
                    c_ilabel[n] = a  # the arc, for now
                    if c > uttmax[u]:
                        uttmax[u] = c
                    n += 1
            m = 0
            for i in range(n):
                u = c_key[i] // S
                if c_score[i] >= uttmax[u] - beam:
                    a = c_ilabel[i]
                    c_key[m] = c_key[i]
                    c_score[m] = c_score[i]
                    c_src[m] = c_src[i]
                    c_loglik[m] = c_loglik[i]
                    c_inframe[m] = False
                    c_ilabel[m] = e_label[a] + 1
                    c_olabel[m] = e_olabel[a]
                    c_graph[m] = e_score[a]
                    c_islink[m] = True
                    m += 1
            n = m
            if n == 0:
                break
        _scatter(c_key, c_score, 0, n, best, arg, stamp, 0)
        cutoff[:] = -np.inf
        for i in range(n):
            u = c_key[i] // S
            if c_score[i] > cutoff[u]:
                cutoff[u] = c_score[i]
        for u in range(B):
            cutoff[u] = cutoff[u] - beam
        # epsilon closure, rank by rank
        nb = 0
        eps_buckets = _grow(eps_buckets, n)
        ranks_list = _grow(ranks_list, n)
        for i in range(n):
            s = c_key[i] % S
            if p_start[s + 1] > p_start[s]:
                eps_buckets[nb] = i
                ranks_list[nb] = eps_rank[s]
                nb += 1
        call = 0
        for r in range(max_eps_rank + 1):
            lo = n
            # candidates of this rank that are their key's best, in candidate order
            for j in range(nb):
                if ranks_list[j] != r:
                    continue
                i = eps_buckets[j]
                k = c_key[i]
                if arg[k] != i:
                    continue
                s = k % S
                u = k // S
                sc = c_score[i]
                deg = p_start[s + 1] - p_start[s]
                if n + deg > c_key.shape[0]:
                    need = n + deg
                    c_key = _grow(c_key, need)
                    c_score = _grow(c_score, need)
                    c_src = _grow(c_src, need)
                    c_inframe = _grow(c_inframe, need)
                    c_ilabel = _grow(c_ilabel, need)
                    c_olabel = _grow(c_olabel, need)
                    c_graph = _grow(c_graph, need)
                    c_loglik = _grow(c_loglik, need)
                    c_islink = _grow(c_islink, need)
                for a in range(p_start[s], p_start[s + 1]):
                    e = sc + p_score[a]
                    if e >= cutoff[u]:
                        c_key[n] = u * S + p_dst[a]
                        c_score[n] = e
                        c_src[n] = k
                        c_inframe[n] = True
                        c_ilabel[n] = 0
                        c_olabel[n] = p_olabel[a]
                        c_graph[n] = p_score[a]
                        c_loglik[n] = 0.0
                        c_islink[n] = True
                        n += 1
            if n == lo:
                continue
            call += 1
            _scatter(c_key, c_score, lo, n, best, arg, stamp, call)
            eps_buckets = _grow(eps_buckets, nb + n - lo)
            ranks_list = _grow(ranks_list, nb + n - lo)
            for i in range(lo, n):
                s = c_key[i] % S
                if p_start[s + 1] > p_start[s]:
                    eps_buckets[nb] = i
                    ranks_list[nb] = eps_rank[s]
                    nb += 1
        # tokens: each key's best candidate, in candidate order
        w = np.empty(n, np.int64)
        nw = 0
        for i in range(n):
            if arg[c_key[i]] == i:
                w[nw] = i
                nw += 1
        w = w[:nw]
        # prune by beam and max-active
        uttmax[:] = -np.inf
        cnt = np.zeros(B, np.int64)
        for j in range(nw):
            u = c_key[w[j]] // S
            cnt[u] += 1
            if c_score[w[j]] > uttmax[u]:
                uttmax[u] = c_score[w[j]]
        macut = np.full(B, -np.inf, np.float32)
        for u in range(B):
            if cnt[u] > max_active:
                own = np.empty(cnt[u], np.float32)
                q = 0
                for j in range(nw):
                    if c_key[w[j]] // S == u:
                        own[q] = c_score[w[j]]
                        q += 1
                macut[u] = _kth_largest_cutoff(own, q, max_active)
        keep = np.empty(nw, np.bool_)
        for j in range(nw):
            u = c_key[w[j]] // S
            sc = c_score[w[j]]
            keep[j] = sc >= uttmax[u] - beam and sc >= macut[u]
        # a token whose best link starts at a pruned token of this frame goes too
        while True:
            for j in range(nw):
                if keep[j]:
                    kept[c_key[w[j]]] = True
            bad = False
            for j in range(nw):
                i = w[j]
                if keep[j] and c_inframe[i] and not kept[c_src[i]]:
                    keep[j] = False
                    bad = True
            for j in range(nw):
                kept[c_key[w[j]]] = False
            if not bad:
                break
        nk = 0
        for j in range(nw):
            if keep[j]:
                nk += 1
        new_keys = np.empty(nk, np.int64)
        new_scores = np.empty(nk, np.float32)
        new_ids = np.empty(nk, np.int64)
        if num_tokens + nk > t_key.shape[0]:
            t_key = _grow(t_key, num_tokens + nk)
            t_score = _grow(t_score, num_tokens + nk)
            t_frame = _grow(t_frame, num_tokens + nk)
            t_best = _grow(t_best, num_tokens + nk)
        q = 0
        for j in range(nw):
            if keep[j]:
                i = w[j]
                new_keys[q] = c_key[i]
                new_scores[q] = c_score[i]
                new_ids[q] = num_tokens + q
                pos[c_key[i]] = num_tokens + q
                q += 1
        # links: every candidate between kept tokens (lattice), or the kept winners' only
        if num_links + n > l_src.shape[0]:
            need = num_links + n
            l_src = _grow(l_src, need)
            l_dst = _grow(l_dst, need)
            l_ilabel = _grow(l_ilabel, need)
            l_olabel = _grow(l_olabel, need)
            l_graph = _grow(l_graph, need)
            l_loglik = _grow(l_loglik, need)
        link_of = np.full(n, -1, np.int64)
        if lattice:
            for i in range(n):
                src_id = pos[c_src[i]] if c_inframe[i] else c_src[i]
                if c_islink[i] and pos[c_key[i]] >= 0 and src_id >= 0:
                    link_of[i] = num_links
                    l_src[num_links] = src_id
                    l_dst[num_links] = pos[c_key[i]]
                    l_ilabel[num_links] = c_ilabel[i]
                    l_olabel[num_links] = c_olabel[i]
                    l_graph[num_links] = c_graph[i]
                    l_loglik[num_links] = c_loglik[i]
                    num_links += 1
        else:
            for j in range(nw):
                i = w[j]
                if keep[j] and c_islink[i]:
                    link_of[i] = num_links
                    l_src[num_links] = pos[c_src[i]] if c_inframe[i] else c_src[i]
                    l_dst[num_links] = pos[c_key[i]]
                    l_ilabel[num_links] = c_ilabel[i]
                    l_olabel[num_links] = c_olabel[i]
                    l_graph[num_links] = c_graph[i]
                    l_loglik[num_links] = c_loglik[i]
                    num_links += 1
        q = 0
        for j in range(nw):
            if keep[j]:
                i = w[j]
                t_key[num_tokens + q] = c_key[i]
                t_score[num_tokens + q] = c_score[i]
                t_frame[num_tokens + q] = t
                t_best[num_tokens + q] = link_of[i] if c_islink[i] else -1
                q += 1
        # reset the scratch arrays
        for i in range(n):
            best[c_key[i]] = -np.inf
            arg[c_key[i]] = _NONE
            stamp[c_key[i]] = -1
        for q in range(nk):
            pos[new_keys[q]] = -1
        num_tokens += nk
        cur_keys, cur_scores, cur_ids = new_keys, new_scores, new_ids
    return (t_key[:num_tokens], t_score[:num_tokens], t_frame[:num_tokens], t_best[:num_tokens],
            l_src[:num_links], l_dst[:num_links], l_ilabel[:num_links], l_olabel[:num_links], l_graph[:num_links],
            l_loglik[:num_links])


def search_compiled(graph: DecodingGraph, config: DecoderConfig, scores: torch.Tensor, lengths: torch.Tensor,
                    lattice: bool) -> SearchOutput:
    """`search_sparse`'s result, computed by the compiled loop (CPU tensors only)."""
    g = graph
    if g.device.type != "cpu":
        raise ValueError("the compiled search runs on CPU; use the sparse or dense search on a GPU")

    def np_(x):
        return x.numpy()

    out = _search(np_(g.emit.start), np_(g.emit.dst), np_(g.emit.label), np_(g.emit.olabel), np_(g.emit.score),
                  np_(g.eps.start), np_(g.eps.dst), np_(g.eps.olabel), np_(g.eps.score), np_(g.eps_rank),
                  g.max_eps_rank, np_(scores), np_(lengths), g.num_states, float(config.acoustic_scale),
                  float(config.beam), int(config.max_active), bool(lattice))
    t_key, t_score, t_frame, t_best, l_src, l_dst, l_il, l_ol, l_graph, l_loglik = (torch.from_numpy(x) for x in out)
    S = g.num_states
    # each utterance's tokens of its last frame, in token order
    utt = t_key // S
    ending = t_frame == lengths.index_select(0, utt)
    finals: List = [None] * scores.shape[0]
    for u in torch.unique(utt[ending]).tolist():
        ids = torch.nonzero(ending & (utt == u)).squeeze(1)
        finals[u] = (ids, t_key[ids] % S, t_score[ids])
    links = Columns()
    links.add(src=l_src, dst=l_dst, ilabel=l_il, olabel=l_ol, graph=l_graph, loglik=l_loglik)
    return SearchOutput(finals, [t_key], [t_score], [t_frame], [t_best], links)
