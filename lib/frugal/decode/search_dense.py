"""The dense search: a score vector over all graph states per utterance."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, List

import numpy as np
import torch

from frugal.decode.graph import DecodingGraph
from frugal.decode.packing import (LOW_MASK, NO_ARC, PackedPairs, high_word_scores, high_words, packed_constant,
                                   packed_threshold, unpack_scores, write_high_words)
from frugal.decode.search_common import Columns, SearchOutput, max_active_cutoff, segment_max

if TYPE_CHECKING:
    from frugal.decode.decoder import DecoderConfig


def search_dense(graph: DecodingGraph, config: DecoderConfig, scores: torch.Tensor, lengths: torch.Tensor,
                 lattice: bool) -> SearchOutput:
    """Beam search with a score vector over all graph states per utterance. A frame
    expands the emitting arcs of the active tokens, and one integer scatter-max of
    packed (score, arc) pairs gives every state its best score and backpointer;
    the epsilon closure is one such scatter per epsilon rank over all non-emitting
    arcs. No per-token bookkeeping: pruned states just hold -inf. The pruning is the
    sparse search's, and so are the float operations and their order."""
    g, cfg, A = graph, config, graph.arcs
    device = g.device
    B, T, D = scores.shape
    S, E, N = g.num_states, A.num_emit, A.num_arcs
    ac = float(cfg.acoustic_scale)
    inf = math.inf
    select = torch.index_select
    no_candidate = packed_constant(-inf, NO_ARC)
    links = Columns()
    tok_keys: List[torch.Tensor] = []
    tok_best: List[torch.Tensor] = []
    tok_scores: List[torch.Tensor] = []
    tok_frames: List[torch.Tensor] = []
    best_src, best_arc, best_utt, best_count = [], [], [], []  # 1-best links after frame 0
    finals: List = [None] * B
    num_tokens = num_links = 0
    lengths_list = lengths.tolist()
    last_frames = set(lengths_list)
    packed = torch.empty((B, S), dtype=torch.long, device=device)
    packed_flat = packed.view(-1)
    # Word 2 * key + 1 of `score_words` is the high word (the score) of key's pair:
    # the closure gathers those, half the bytes of the pairs and no strided unpack.
    score_words = packed.view(torch.int32).view(-1)
    row_words = (torch.arange(B, device=device) * (2 * S) + 1).view(B, 1)
    if lattice:  # (see the links below)
        p_src, p_dst, p_score = A.src[E:], A.dst[E:], A.score[E:]
        p_src_words = (row_words + 2 * p_src).view(-1)
        arc_link = torch.empty(B * N, dtype=torch.long, device=device)
    eps_groups = [((row_words + 2 * A.src[lo:hi]).view(-1), A.score[lo:hi], A.dst[lo:hi].expand(B, hi - lo),
                   PackedPairs(A.comp[lo:hi].expand(B, hi - lo)))
                  for lo, hi in zip(A.eps_splits[:-1], A.eps_splits[1:]) if hi > lo]
    # Token ids by key, of this frame and the last. Only the entries of kept tokens
    # are ever read, so the rest is left as it was.
    pos = torch.full((2, B * S), -1, dtype=torch.long, device=device)
    no_utt = torch.zeros(S if B == 1 else 0, dtype=torch.long, device=device)  # (utterance 0)
    frames_flat = scores.view(-1)
    keys = utt = tok_sc = None
    ids = torch.zeros(0, dtype=torch.long, device=device)
    for t in range(T + 1):
        packed.fill_(no_candidate)
        if t == 0:  # the start tokens, no incoming arc
            packed[:, 0] = packed_constant(0.0, NO_ARC)
            cutoff = float(np.float32(-cfg.beam)) if B == 1 else torch.full((B, 1), -cfg.beam, device=device)
            negative = False
            c_tok = c_arc = c_key = torch.zeros(0, dtype=torch.long, device=device)
            c_score = torch.zeros(0, device=device)
        else:
            if t - 1 in last_frames:  # utterances that ended
                alive = torch.nonzero(select(lengths, 0, utt) >= t).squeeze(1)
                keys, utt, tok_sc, ids = (select(x, 0, alive) for x in (keys, utt, tok_sc, ids))
            # Candidates: the emitting arcs of the tokens, in token order (what is
            # per token is computed per token, then spread to its arcs).
            # (a key is utt * S + state: with one utterance, just the state)
            states = keys if B == 1 else keys - utt * S
            deg = select(A.emit_degree, 0, states)
            c_tok = torch.repeat_interleave(deg)
            first_arc = select(A.emit_start, 0, states) - torch.cumsum(deg, 0) + deg
            c_arc = select(first_arc, 0, c_tok) + torch.arange(c_tok.numel(), device=device)
            c_score = select(tok_sc, 0, c_tok) + select(A.score, 0, c_arc)
            if B == 1:
                loglik = select(scores[0, t - 1], 0, select(A.label, 0, c_arc))
            else:
                row = (utt * T + (t - 1)) * D
                loglik = select(frames_flat, 0, select(row, 0, c_tok) + select(A.label, 0, c_arc))
            c_score += loglik * ac if ac != 1.0 else loglik
            c_key = select(A.dst, 0, c_arc)
            if B > 1:
                c_key += select(utt * S, 0, c_tok)
            # Beam around the best candidate of each utterance (with one utterance, a
            # Python float: fewer tensor ops a frame).
            if B == 1:  # (float32 arithmetic, as on tensors)
                c_best = float(c_score.max()) if c_score.numel() else -inf
                negative = c_best < 0
                cutoff = float(np.float32(c_best) - np.float32(cfg.beam))
            else:
                c_best = segment_max(c_score, select(utt, 0, c_tok), B)
                negative = bool(c_best.max() < 0)
                cutoff = c_best.view(B, 1) - cfg.beam
            c_pairs = select(A.comp, 0, c_arc)
            write_high_words(high_words(c_pairs), c_score, negative)
            packed_flat.scatter_reduce_(0, c_key, c_pairs, reduce="amax")
            negative &= A.eps_scores_negative
        # Epsilon closure, rank by rank: a state's score is final when its rank comes.
        # Candidates below the beam cutoff are dropped, as in the sparse search. With
        # no positive non-emitting arc score that changes no token: such a candidate
        # only wins in a state that stays below the cutoff, and so is pruned, as is
        # everything reached from it.
        for src_words, arc_score, dst, pairs in eps_groups:
            src_sc = high_word_scores(select(score_words, 0, src_words), negative).view(B, -1)
            e_sc = src_sc + arc_score
            if not A.eps_scores_negative:
                e_sc.masked_fill_((e_sc < cutoff) | (src_sc < cutoff), -inf)
            packed.scatter_reduce_(1, dst, pairs.pack(e_sc, negative), reduce="amax")
        # Tokens: the states within the beam of the best one (hence within the beam of
        # the best candidate: states whose candidates all fell below `cutoff` never
        # qualify), then the max-active best of each utterance. With no positive
        # non-emitting arc score, the best state holds the best candidate: that beam
        # is `cutoff`, and the packed pairs are compared with it as they are (they
        # order like their scores), so only the tokens' scores are unpacked.
        if t > 0 and A.eps_scores_negative:
            keep = packed >= packed_threshold(cutoff)
        else:
            score = unpack_scores(packed, negative)
            keep = score >= (score.amax(1, keepdim=True) - cfg.beam).nan_to_num_(neginf=inf)
        keep_flat = keep.view(-1)
        new_keys = torch.nonzero(keep_flat).squeeze(1)
        new_utt = new_keys // S if B > 1 else no_utt[:new_keys.numel()]
        tok_pairs = select(packed_flat, 0, new_keys)
        new_sc = unpack_scores(tok_pairs, negative)
        if new_keys.numel() > cfg.max_active:  # (the k-th best of a row is among its tokens)
            stays = new_sc >= max_active_cutoff(new_sc, new_utt, B, cfg.max_active)
            if not bool(stays.all()):
                keep_flat.index_copy_(0, new_keys, stays)
                stay = torch.nonzero(stays).squeeze(1)
                new_keys, new_utt, new_sc, tok_pairs = (select(x, 0, stay) for x in (new_keys, new_utt, new_sc, tok_pairs))
        # Each token's best incoming arc (its table row: emitting below E) or none (a
        # start token), and the key of the state it leaves.
        win = torch.bitwise_not(tok_pairs).bitwise_and_(LOW_MASK)  # (LOW_MASK - row is ~row)
        is_emit = win < E
        has_arc = win < NO_ARC if t == 0 else None  # (after the start, every token has one)
        tok_arc = win if t > 0 else torch.where(has_arc, win, 0)
        src_key = select(A.src, 0, tok_arc)
        if B > 1:
            src_key += new_utt * S
        # A token whose best arc is a non-emitting arc from a pruned token goes too.
        # (Never when no such arc has a positive score: the token's score is at most
        # that of the pruned one.)
        while A.num_eps and not A.eps_scores_negative:
            bad = ~(is_emit | select(keep_flat, 0, src_key))
            if t == 0:
                bad &= has_arc
            if not bool(bad.any()):
                break
            keep_flat[new_keys[bad]] = False
            good = ~bad
            new_keys, new_utt, new_sc, win, is_emit, tok_arc, src_key = (
                x[good] for x in (new_keys, new_utt, new_sc, win, is_emit, tok_arc, src_key))
            if t == 0:
                has_arc = has_arc[good]
        # A token's source: a token of the last frame (emitting arc) or of this one.
        new_ids = torch.arange(num_tokens, num_tokens + new_keys.numel(), device=device)
        last_pos, cur_pos = pos[(t + 1) % 2], pos[t % 2]
        cur_pos.index_copy_(0, new_keys, new_ids)
        src_tok = select(cur_pos, 0, src_key)
        if t > 0:
            src_tok = torch.where(is_emit, select(last_pos, 0, src_key), src_tok)
        # Links: the best arc of each token (1-best), or every arc within the beam
        # between kept tokens (lattice). Labels and scores are looked up after the search.
        if lattice:
            # emitting: candidates within the beam into kept states, in candidate order
            e_link = c_score >= (cutoff if B == 1 else select(cutoff.view(-1), 0, c_key // S))
            e_link &= select(keep_flat, 0, c_key)
            e_li = torch.nonzero(e_link).squeeze(1)
            # non-emitting: by (utterance, arc row)
            m = select(keep, 1, p_src) & select(keep, 1, p_dst)
            m &= high_word_scores(select(score_words, 0, p_src_words), negative).view(B, -1) + p_score >= cutoff
            u_p = torch.nonzero(m)
            p_utt, p_row = u_p[:, 0], u_p[:, 1]
            e_key, p_src_key, p_dst_key = select(c_key, 0, e_li), select(p_src, 0, p_row), select(p_dst, 0, p_row)
            l_arc = torch.cat([select(c_arc, 0, e_li), p_row + E])
            if B > 1:
                l_utt = torch.cat([e_key // S, p_utt])
                p_src_key += p_utt * S
                p_dst_key += p_utt * S
            l_src = torch.cat([select(ids, 0, select(c_tok, 0, e_li)), select(cur_pos, 0, p_src_key)])
            l_dst = torch.cat([select(cur_pos, 0, e_key), select(cur_pos, 0, p_dst_key)])
            links.add(src=l_src, dst=l_dst, arc=l_arc,
                      frame_row=torch.full_like(l_arc, t - 1) if B == 1 else l_utt * T + (t - 1))
            # Each token's best link: the link of its best arc, found by (utterance, arc
            # row) in `arc_link`; a kept token's best arc is always a link.
            l_code = l_arc if B == 1 else l_utt * N + l_arc
            arc_link.index_copy_(0, l_code, torch.arange(num_links, num_links + l_arc.numel(), device=device))
            best_link = select(arc_link, 0, tok_arc if B == 1 else new_utt * N + tok_arc)
            tok_best.append(best_link if t > 0 else torch.where(has_arc, best_link, -1))
            num_links += l_arc.numel()
        elif t > 0:  # every token has its link, numbered in token order (see below)
            best_src.append(src_tok)
            best_arc.append(tok_arc)
            if B > 1:
                best_utt.append(new_utt)
            best_count.append(new_keys.numel())
        else:  # only tokens reached by non-emitting arcs
            li = torch.nonzero(has_arc).squeeze(1)
            best_link = torch.full_like(new_keys, -1)
            best_link[li] = num_links + torch.arange(li.numel(), device=device)
            links.add(src=select(src_tok, 0, li), arc=select(tok_arc, 0, li),
                      frame_row=select(new_utt, 0, li) * T + (t - 1))
            num_links += li.numel()
            tok_best.append(best_link)
        keys, utt, tok_sc, ids = new_keys, new_utt, new_sc, new_ids
        if lattice:  # the tokens themselves are lattice states
            tok_keys.append(keys)
            tok_scores.append(tok_sc)
            tok_frames.append(torch.full_like(keys, t))
        if t in last_frames:
            for u in range(B):
                if lengths_list[u] == t:
                    m = utt == u
                    finals[u] = (ids[m], keys[m] % S, tok_sc[m])
        num_tokens += keys.numel()
        if keys.numel() == 0:
            break
    if best_count:
        # The 1-best links of frames 0, 1, ..., one per token in token order: link ids
        # and frames are made here at once, not a tensor op each per frame.
        frame = torch.repeat_interleave(torch.arange(len(best_count), device=device),
                                        torch.tensor(best_count, device=device))
        links.add(src=torch.cat(best_src), arc=torch.cat(best_arc),
                  frame_row=frame if B == 1 else torch.cat(best_utt) * T + frame)
        tok_best.append(torch.arange(num_links, num_links + frame.numel(), device=device))
    return SearchOutput(finals, tok_keys, tok_scores, tok_frames, tok_best, links)
