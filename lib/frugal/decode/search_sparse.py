"""The sparse search: lists of active tokens.

A frame's work is in proportion to the tokens alive and their arcs, not to the graph,
which suits large graphs and narrow beams. Candidates are the arcs leaving the active
tokens; per-key scratch arrays (`_KeyBuffers`, over utt * num_states + state, reset by
touching only the keys used) give each (utterance, state) its best candidate, the
lowest one of the best score. The epsilon closure expands, rank by rank, only the
candidates that are the best of their key in states with non-emitting arcs.
"""
from __future__ import annotations

import math
from typing import List

import torch

from frugal.decode.graph import DecodingGraph
from frugal.decode.search_common import (LATTICE_MARGIN, Columns, DecoderConfig, SearchOutput, max_active_cutoff,
                                         segment_max)


def search_sparse(graph: DecodingGraph, config: DecoderConfig, scores: torch.Tensor, lengths: torch.Tensor,
                  lattice: bool) -> SearchOutput:
    """Beam search of log-likelihoods ``scores`` (B, T, D) with ``lengths`` [B] over lists
    of active tokens; with ``lattice``, every link within the beam between kept tokens,
    else each token's best link only."""
    g, cfg = graph, config
    device = g.device
    B, T, D = scores.shape
    S = g.num_states
    ac = float(cfg.acoustic_scale)
    buf = _KeyBuffers(B * S, device)
    links = Columns()           # all links kept so far; a link's id is its row
    tok_keys: List[torch.Tensor] = []
    tok_best: List[torch.Tensor] = []
    tok_scores: List[torch.Tensor] = []
    tok_frames: List[torch.Tensor] = []
    finals: List = [None] * B    # (token ids, graph states, scores) of each utterance's last frame
    num_tokens = num_links = 0
    cur_keys = torch.arange(B, device=device) * S
    cur_scores = torch.zeros(B, device=device)
    cur_ids = torch.full((B,), -1, dtype=torch.long, device=device)

    for t in range(T + 1):
        cand = Columns()
        if t == 0:  # start tokens: no incoming link
            cand.add(key=cur_keys, score=cur_scores, src=cur_ids, in_frame=torch.zeros_like(cur_ids, dtype=torch.bool),
                     ilabel=torch.zeros_like(cur_ids), olabel=torch.zeros_like(cur_ids),
                     graph=cur_scores, loglik=cur_scores, is_link=torch.zeros_like(cur_ids, dtype=torch.bool))
        else:
            alive = _where(lengths.index_select(0, cur_keys // S) > t - 1)
            k, sc, ids = cur_keys.index_select(0, alive), cur_scores.index_select(0, alive), cur_ids.index_select(0, alive)
            utt = k // S
            tok, arc = g.emit.expand(k % S)
            c_utt = utt.index_select(0, tok)
            frame = scores[:, t - 1].reshape(-1)  # (B * D) log-likelihoods of this frame
            loglik = frame.index_select(0, c_utt * D + g.emit.label.index_select(0, arc))
            c_scores = sc.index_select(0, tok) + g.emit.score.index_select(0, arc) + ac * loglik
            keep = _where(c_scores >= segment_max(c_scores, c_utt, B)[c_utt] - cfg.beam)
            tok, arc, c_scores, c_utt, loglik = tok.index_select(0, keep), arc.index_select(0, keep), c_scores.index_select(0, keep), c_utt.index_select(0, keep), loglik.index_select(0, keep)
            if tok.numel() == 0:
                break
            cand.add(key=c_utt * S + g.emit.dst.index_select(0, arc), score=c_scores, src=ids.index_select(0, tok),
                     in_frame=torch.zeros_like(tok, dtype=torch.bool), ilabel=g.emit.label.index_select(0, arc) + 1,
                     olabel=g.emit.olabel.index_select(0, arc), graph=g.emit.score.index_select(0, arc), loglik=loglik,
                     is_link=torch.ones_like(tok, dtype=torch.bool))
        buf.scatter(cand.key[0], cand.score[0], 0)
        cutoff = segment_max(cand.score[0], cand.key[0] // S, B) - cfg.beam
        # Epsilon closure, rank by rank: a token's score is final when its rank comes.
        # Only candidates in states with non-emitting arcs are looked at.
        n_cand = cand.key[0].numel()
        has_eps = g.has_eps.index_select(0, cand.key[0] % S)
        eps_idx = [torch.nonzero(has_eps).squeeze(1)]
        eps_keys, eps_scores = [cand.key[0].index_select(0, eps_idx[0])], [cand.score[0].index_select(0, eps_idx[0])]
        for rank in range(g.max_eps_rank + 1):
            idx, keys_all, scores_all = torch.cat(eps_idx), torch.cat(eps_keys), torch.cat(eps_scores)
            sel = (g.eps_rank.index_select(0, keys_all % S) == rank) & (buf.arg.index_select(0, keys_all) == idx)  # one per key: its best
            if not bool(sel.any()):
                continue
            sel = _where(sel)
            k, sc = keys_all.index_select(0, sel), scores_all.index_select(0, sel)
            tok, arc = g.eps.expand(k % S)
            e_scores = sc.index_select(0, tok) + g.eps.score.index_select(0, arc)
            e_utt = k.index_select(0, tok) // S
            keep = _where(e_scores >= cutoff.index_select(0, e_utt))
            tok, arc, e_scores, e_utt = tok.index_select(0, keep), arc.index_select(0, keep), e_scores.index_select(0, keep), e_utt.index_select(0, keep)
            if tok.numel() == 0:
                continue
            e_keys = e_utt * S + g.eps.dst.index_select(0, arc)
            cand.add(key=e_keys, score=e_scores, src=k.index_select(0, tok), in_frame=torch.ones_like(tok, dtype=torch.bool),
                     ilabel=torch.zeros_like(arc), olabel=g.eps.olabel.index_select(0, arc), graph=g.eps.score.index_select(0, arc),
                     loglik=torch.zeros_like(e_scores), is_link=torch.ones_like(tok, dtype=torch.bool))
            buf.scatter(e_keys, e_scores, n_cand)
            m = torch.nonzero(g.has_eps.index_select(0, e_keys % S)).squeeze(1)
            eps_idx.append(m + n_cand)
            eps_keys.append(e_keys[m])
            eps_scores.append(e_scores[m])
            n_cand += e_keys.numel()
        c = {name: torch.cat(getattr(cand, name)) for name in cand.names}
        # Tokens: the best candidate of each key.
        winner = torch.nonzero(buf.arg.index_select(0, c["key"]) == torch.arange(n_cand, device=device)).squeeze(1)
        keys, tok_sc = c["key"].index_select(0, winner), c["score"].index_select(0, winner)
        # Prune by beam and max-active.
        keep = tok_sc >= segment_max(tok_sc, keys // S, B)[keys // S] - cfg.beam
        keep &= tok_sc >= max_active_cutoff(tok_sc, keys // S, B, cfg.max_active)
        # A token whose best link starts at a pruned token of this frame goes too
        # (possible when a non-emitting arc has a positive score).
        w_in_frame, w_src = c["in_frame"].index_select(0, winner), c["src"].index_select(0, winner)
        while True:
            buf.kept[keys[keep]] = True
            bad = keep & w_in_frame & ~buf.kept.index_select(0, torch.where(w_in_frame, w_src, 0))
            buf.kept[keys] = False
            if not bool(bad.any()):
                break
            keep &= ~bad
        keep = _where(keep)
        keys, tok_sc, winner = keys.index_select(0, keep), tok_sc.index_select(0, keep), winner.index_select(0, keep)
        ids = num_tokens + torch.arange(keys.numel(), device=device)
        buf.pos[keys] = ids
        # Links: every candidate between kept tokens (lattice), or only the winners.
        if lattice:
            src_id = torch.where(c["in_frame"], buf.pos.index_select(0, torch.where(c["in_frame"], c["src"], 0)), c["src"])
            is_link = c["is_link"] & (buf.pos.index_select(0, c["key"]) >= 0) & (src_id >= 0)
            # (and within the lattice beam of the key's best: see LATTICE_MARGIN)
            is_link &= c["score"] >= buf.best.index_select(0, c["key"]) - (cfg.lattice_beam + LATTICE_MARGIN)
            link_id = torch.cumsum(is_link.long(), 0) - 1 + num_links
        else:
            is_link = torch.zeros(n_cand, dtype=torch.bool, device=device)
            is_link[winner] = c["is_link"].index_select(0, winner)
            src_id = torch.where(c["in_frame"], buf.pos.index_select(0, torch.where(c["in_frame"], c["src"], 0)), c["src"])
            link_id = torch.cumsum(is_link.long(), 0) - 1 + num_links
        li = _where(is_link)
        links.add(src=src_id.index_select(0, li), dst=buf.pos.index_select(0, c["key"].index_select(0, li)), ilabel=c["ilabel"].index_select(0, li),
                  olabel=c["olabel"].index_select(0, li), graph=c["graph"].index_select(0, li), loglik=c["loglik"].index_select(0, li))
        num_links += li.numel()
        tok_best.append(torch.where(c["is_link"].index_select(0, winner), link_id.index_select(0, winner), -1))
        tok_keys.append(keys)
        tok_scores.append(tok_sc)
        tok_frames.append(torch.full_like(keys, t))
        buf.reset(c["key"], keys)
        ending = lengths.index_select(0, keys // S) == t
        if bool(ending.any()):
            for u in torch.unique(keys[ending] // S).tolist():
                m = ending & (keys // S == u)
                finals[u] = (ids[m], keys[m] % S, tok_sc[m])
        num_tokens += keys.numel()
        cur_keys, cur_scores, cur_ids = keys, tok_sc, ids
    return SearchOutput(finals, tok_keys, tok_scores, tok_frames, tok_best, links)


class _KeyBuffers:
    """Per-key scratch arrays (key = utt * num_states + state), reset after each frame by
    touching only the keys used, so a frame costs O(candidates), not O(B * states)."""

    def __init__(self, size: int, device):
        self.best = torch.full((size,), -math.inf, device=device)
        self.arg = torch.full((size,), _BIG, dtype=torch.long, device=device)
        self.pos = torch.full((size,), -1, dtype=torch.long, device=device)
        self.kept = torch.zeros(size, dtype=torch.bool, device=device)

    def scatter(self, keys: torch.Tensor, scores: torch.Tensor, offset: int) -> None:
        """Fold candidates (global indices offset..) into the per-key best score and the
        lowest index of a candidate reaching it."""
        self.best.scatter_reduce_(0, keys, scores, reduce="amax")
        idx = torch.arange(offset, offset + keys.numel(), device=keys.device)
        # A key whose best improved forgets its old argmax; then the lowest best index wins.
        improved = scores == self.best[keys]
        self.arg[keys[improved]] = _BIG
        self.arg.scatter_reduce_(0, keys[improved], idx[improved], reduce="amin")

    def reset(self, cand_keys: torch.Tensor, tok_keys: torch.Tensor) -> None:
        self.best[cand_keys] = -math.inf
        self.arg[cand_keys] = _BIG
        self.pos[tok_keys] = -1


_BIG = torch.iinfo(torch.long).max


def _where(mask: torch.Tensor) -> torch.Tensor:
    """Indices of a bool mask: index several tensors with one nonzero instead of one each."""
    return torch.nonzero(mask).squeeze(1)
