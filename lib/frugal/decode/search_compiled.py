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

from typing import List

import numpy as np
import torch
from numba import njit

from frugal.decode.graph import DecodingGraph
from frugal.decode.search_common import LATTICE_MARGIN, Columns, DecoderConfig, SearchOutput

_NONE = np.int32(np.iinfo(np.int32).max)
# An arc, with the epsilon rank of its destination (-1 where that has no non-emitting arcs).
_ARC = np.dtype([("dst", np.int32), ("label", np.int32), ("olabel", np.int32), ("score", np.float32),
                 ("dst_rank", np.int32)])
# A candidate: the arc from a token (``src``: its id, or its key for a non-emitting arc of
# this frame, ``inframe``) to a key, with the labels and scores of the link it would be.
_CAND = np.dtype([("key", np.int64), ("src", np.int64), ("utt", np.int32), ("state", np.int32),
                  ("score", np.float32), ("ilabel", np.int32), ("olabel", np.int32), ("graph", np.float32),
                  ("loglik", np.float32), ("dst_rank", np.int32), ("inframe", np.bool_), ("islink", np.bool_)])
# One record per key (utt * num_states + state), so that a key's fields share a cache line:
# the best candidate score and index of this frame, the scatter call that set them, the
# token id made for the key, and the kept flag of the orphan check.
_SLOT = np.dtype([("best", np.float32), ("arg", np.int32), ("stamp", np.int32), ("pos", np.int32), ("kept", np.int32)])


@njit(cache=True)
def _grow(a, n):
    """``a`` with room for at least ``n`` elements (doubling), its content kept."""
    if n <= a.shape[0]:
        return a
    out = np.empty(max(n, 2 * a.shape[0]), dtype=a.dtype)
    out[:a.shape[0]] = a
    return out


@njit(cache=True, error_model="numpy")
def _scatter(C, lo, hi, slot, call):
    """Fold candidates lo..hi-1 into the per-key best score and its candidate: within one
    call the lowest candidate of the best score, over an earlier call's equal score."""
    for i in range(lo, hi):
        k = C[i].key
        s = C[i].score
        if s > slot[k].best:
            slot[k].best = s
            slot[k].arg = i
            slot[k].stamp = call
        elif s == slot[k].best and slot[k].stamp != call:
            slot[k].arg = i
            slot[k].stamp = call


@njit(cache=True, error_model="numpy")
def _search(slot, e_start, E, p_start, P, start_rank, max_eps_rank, eps_can_gain, scores, lengths, S, ac, beam, max_active,
            lattice, link_beam):
    B, T, D = scores.shape
    ac = np.float32(ac)
    beam = np.float32(beam)
    link_beam = np.float32(link_beam)
    C = np.empty(4096, _CAND)        # this frame's candidates
    eps_list = np.empty(1024, np.int64)  # those in states with non-emitting arcs, in order
    # all tokens and links
    t_key, t_frame, t_best = np.empty(4096, np.int64), np.empty(4096, np.int64), np.empty(4096, np.int64)
    t_score = np.empty(4096, np.float32)
    l_src, l_dst = np.empty(4096, np.int64), np.empty(4096, np.int64)
    l_ilabel, l_olabel = np.empty(4096, np.int64), np.empty(4096, np.int64)
    l_graph, l_loglik = np.empty(4096, np.float32), np.empty(4096, np.float32)
    cur_utt = np.arange(B)
    cur_state = np.zeros(B, np.int64)
    cur_scores = np.zeros(B, np.float32)
    cur_ids = np.full(B, -1, np.int64)
    num_tokens = 0
    num_links = 0
    uttmax = np.empty(B, np.float32)
    cutoff = np.empty(B, np.float32)
    cnt = np.empty(B, np.int64)
    macut = np.empty(B, np.float32)
    best_tok = np.empty(B, np.int64)
    for t in range(T + 1):
        n = 0
        if t == 0:
            for u in range(B):
                C[n].key = u * S
                C[n].utt = u
                C[n].state = 0
                C[n].score = 0.0
                C[n].src = -1
                C[n].inframe = False
                C[n].ilabel = 0
                C[n].olabel = 0
                C[n].graph = 0.0
                C[n].loglik = 0.0
                C[n].islink = False
                C[n].dst_rank = start_rank
                n += 1
        else:
            # The emitting arcs of the alive tokens. The arcs of each utterance's best token
            # first give a candidate score, so that most candidates below the beam are never
            # stored: below the running best minus the beam, they are below the final one.
            uttmax[:] = -np.inf
            best_tok[:] = -1
            total = 0
            for i in range(cur_utt.shape[0]):
                u = cur_utt[i]
                if lengths[u] > t - 1:
                    s = cur_state[i]
                    total += e_start[s + 1] - e_start[s]
                    if best_tok[u] < 0 or cur_scores[i] > cur_scores[best_tok[u]]:
                        best_tok[u] = i
            C = _grow(C, total)
            for u in range(B):
                i = best_tok[u]
                if i >= 0:
                    s = cur_state[i]
                    for a in range(e_start[s], e_start[s + 1]):
                        c = (cur_scores[i] + E[a].score) + ac * scores[u, t - 1, E[a].label]
                        if c > uttmax[u]:
                            uttmax[u] = c
            for i in range(cur_utt.shape[0]):
                u = cur_utt[i]
                if lengths[u] <= t - 1:
                    continue
                s = cur_state[i]
                sc = cur_scores[i]
                for a in range(e_start[s], e_start[s + 1]):
                    ll = scores[u, t - 1, E[a].label]
                    c = (sc + E[a].score) + ac * ll
                    if c < uttmax[u] - beam:
                        continue
                    C[n].score = c
                    C[n].utt = u
                    C[n].src = cur_ids[i]
                    C[n].loglik = ll
                    C[n].ilabel = a  # the arc, until the beam below
                    if c > uttmax[u]:
                        uttmax[u] = c
                    n += 1
            m = 0
            for i in range(n):
                u = C[i].utt
                if C[i].score >= uttmax[u] - beam:
                    a = C[i].ilabel
                    dst = E[a].dst
                    C[m].key = u * S + dst
                    C[m].utt = u
                    C[m].state = dst
                    C[m].score = C[i].score
                    C[m].src = C[i].src
                    C[m].loglik = C[i].loglik
                    C[m].inframe = False
                    C[m].ilabel = E[a].label + 1
                    C[m].olabel = E[a].olabel
                    C[m].graph = E[a].score
                    C[m].islink = True
                    C[m].dst_rank = E[a].dst_rank
                    m += 1
            n = m
            if n == 0:
                break
        _scatter(C, 0, n, slot, 0)
        cutoff[:] = -np.inf
        for i in range(n):
            if C[i].score > cutoff[C[i].utt]:
                cutoff[C[i].utt] = C[i].score
        for u in range(B):
            cutoff[u] = cutoff[u] - beam
        # Epsilon closure, rank by rank: the candidates of a rank that are their key's best
        # expand their non-emitting arcs (which lead to higher ranks only).
        eps_list = _grow(eps_list, n)
        nb = 0
        for i in range(n):
            if C[i].dst_rank >= 0:
                eps_list[nb] = i
                nb += 1
        call = 0
        for r in range(max_eps_rank + 1):
            lo = n
            for j in range(nb):
                i = eps_list[j]
                if C[i].dst_rank != r or slot[C[i].key].arg != i:
                    continue
                s = C[i].state
                u = C[i].utt
                k = C[i].key
                sc = C[i].score
                C = _grow(C, n + p_start[s + 1] - p_start[s])
                for a in range(p_start[s], p_start[s + 1]):
                    e = sc + P[a].score
                    if e >= cutoff[u]:
                        dst = P[a].dst
                        C[n].key = u * S + dst
                        C[n].utt = u
                        C[n].state = dst
                        C[n].score = e
                        C[n].src = k
                        C[n].inframe = True
                        C[n].ilabel = 0
                        C[n].olabel = P[a].olabel
                        C[n].graph = P[a].score
                        C[n].loglik = 0.0
                        C[n].islink = True
                        C[n].dst_rank = P[a].dst_rank
                        n += 1
            if n == lo:
                continue
            call += 1
            _scatter(C, lo, n, slot, call)
            eps_list = _grow(eps_list, nb + n - lo)
            for i in range(lo, n):
                if C[i].dst_rank >= 0:
                    eps_list[nb] = i
                    nb += 1
        # Tokens: each key's best candidate, in candidate order; pruned by beam and max-active.
        w = np.empty(n, np.int64)
        nw = 0
        uttmax[:] = -np.inf
        cnt[:] = 0
        for i in range(n):
            if slot[C[i].key].arg == i:
                w[nw] = i
                nw += 1
                u = C[i].utt
                cnt[u] += 1
                if C[i].score > uttmax[u]:
                    uttmax[u] = C[i].score
        macut[:] = -np.inf
        for u in range(B):
            if cnt[u] > max_active:
                own = np.empty(cnt[u], np.float32)
                q = 0
                for j in range(nw):
                    if C[w[j]].utt == u:
                        own[q] = C[w[j]].score
                        q += 1
                # the (n - max_active + 1)-th smallest: torch.kthvalue's
                macut[u] = np.partition(own, q - max_active)[q - max_active]
        keep = np.empty(nw, np.bool_)
        for j in range(nw):
            i = w[j]
            u = C[i].utt
            keep[j] = C[i].score >= uttmax[u] - beam and C[i].score >= macut[u]
        # A token whose best link starts at a pruned token of this frame goes too
        # (impossible when no non-emitting arc gains score: a token's in-frame source
        # scores at least as much as the token).
        while eps_can_gain:
            for j in range(nw):
                if keep[j]:
                    slot[C[w[j]].key].kept = 1
            bad = False
            for j in range(nw):
                i = w[j]
                if keep[j] and C[i].inframe and slot[C[i].src].kept == 0:
                    keep[j] = False
                    bad = True
            for j in range(nw):
                slot[C[w[j]].key].kept = 0
            if not bad:
                break
        nk = 0
        for j in range(nw):
            if keep[j]:
                nk += 1
        need = num_tokens + nk
        t_key, t_frame, t_best, t_score = _grow(t_key, need), _grow(t_frame, need), _grow(t_best, need), _grow(t_score, need)
        new_utt = np.empty(nk, np.int64)
        new_state = np.empty(nk, np.int64)
        new_scores = np.empty(nk, np.float32)
        new_ids = np.empty(nk, np.int64)
        q = 0
        for j in range(nw):
            if keep[j]:
                i = w[j]
                new_utt[q] = C[i].utt
                new_state[q] = C[i].state
                new_scores[q] = C[i].score
                new_ids[q] = num_tokens + q
                slot[C[i].key].pos = num_tokens + q
                q += 1
        # Links: every candidate between kept tokens (lattice), or the kept winners' only.
        need = num_links + n
        l_src, l_dst, l_ilabel, l_olabel = _grow(l_src, need), _grow(l_dst, need), _grow(l_ilabel, need), _grow(l_olabel, need)
        l_graph, l_loglik = _grow(l_graph, need), _grow(l_loglik, need)
        link_of = np.full(n, -1, np.int64)
        if lattice:
            for i in range(n):
                src_id = slot[C[i].src].pos if C[i].inframe else C[i].src
                dst_id = slot[C[i].key].pos
                if C[i].islink and dst_id >= 0 and src_id >= 0 and C[i].score >= slot[C[i].key].best - link_beam:
                    link_of[i] = num_links
                    l_src[num_links], l_dst[num_links] = src_id, dst_id
                    l_ilabel[num_links], l_olabel[num_links] = C[i].ilabel, C[i].olabel
                    l_graph[num_links], l_loglik[num_links] = C[i].graph, C[i].loglik
                    num_links += 1
        else:
            for j in range(nw):
                i = w[j]
                if keep[j] and C[i].islink:
                    link_of[i] = num_links
                    l_src[num_links] = slot[C[i].src].pos if C[i].inframe else C[i].src
                    l_dst[num_links] = slot[C[i].key].pos
                    l_ilabel[num_links], l_olabel[num_links] = C[i].ilabel, C[i].olabel
                    l_graph[num_links], l_loglik[num_links] = C[i].graph, C[i].loglik
                    num_links += 1
        q = num_tokens
        for j in range(nw):
            if keep[j]:
                i = w[j]
                t_key[q] = C[i].key
                t_score[q] = C[i].score
                t_frame[q] = t
                t_best[q] = link_of[i] if C[i].islink else -1
                q += 1
        # The records touched go back to their clean state.
        for i in range(n):
            k = C[i].key
            slot[k].best = -np.inf
            slot[k].arg = _NONE
            slot[k].stamp = -1
            slot[k].pos = -1
        num_tokens += nk
        cur_utt, cur_state, cur_scores, cur_ids = new_utt, new_state, new_scores, new_ids
    return (t_key[:num_tokens], t_score[:num_tokens], t_frame[:num_tokens], t_best[:num_tokens], l_src[:num_links],
            l_dst[:num_links], l_ilabel[:num_links], l_olabel[:num_links], l_graph[:num_links], l_loglik[:num_links])


def _slots(graph: DecodingGraph, size: int) -> np.ndarray:
    """The graph's per-key records, made once for the largest batch so far: a search
    leaves every record it touched as it found it."""
    slots = graph.__dict__.get("_compiled_slots")
    if slots is None or slots.shape[0] < size:
        slots = np.empty(size, dtype=_SLOT)
        slots["best"], slots["arg"], slots["stamp"], slots["pos"], slots["kept"] = -np.inf, _NONE, -1, -1, 0
        graph._compiled_slots = slots
    return slots


def _arc_records(csr, state_rank: np.ndarray) -> np.ndarray:
    """The arcs of a `_CsrArcs` as records, so that an arc's fields share a cache line."""
    out = np.empty(csr.dst.numel(), dtype=_ARC)
    for name in ("dst", "label", "olabel", "score"):
        out[name] = getattr(csr, name).numpy()
    out["dst_rank"] = state_rank[csr.dst.numpy()]
    return out


def search_compiled(graph: DecodingGraph, config: DecoderConfig, scores: torch.Tensor, lengths: torch.Tensor,
                    lattice: bool) -> SearchOutput:
    """`search_sparse`'s result, computed by the compiled loop (CPU tensors only)."""
    g = graph
    if g.device.type != "cpu":
        raise ValueError("the compiled search runs on CPU; use the sparse or dense search on a GPU")
    if "_compiled_arcs" not in g.__dict__:  # made once per graph
        state_rank = np.where(g.has_eps.numpy(), g.eps_rank.numpy(), -1)
        g._compiled_arcs = (_arc_records(g.emit, state_rank), _arc_records(g.eps, state_rank), int(state_rank[0]))
    emit, eps, start_rank = g._compiled_arcs
    out = _search(_slots(g, scores.shape[0] * g.num_states), g.emit.start.numpy(), emit, g.eps.start.numpy(),
                       eps, start_rank, g.max_eps_rank, not g.arcs.eps_scores_negative, scores.numpy(),
                       lengths.numpy(), g.num_states, float(config.acoustic_scale), float(config.beam),
                       int(config.max_active), bool(lattice), float(config.lattice_beam + LATTICE_MARGIN))
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
