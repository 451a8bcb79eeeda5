"""The dense search: a score vector over all graph states per utterance.

The best candidate of every (utterance, state) lives in one (B, num_states) tensor of
packed (score, arc row) pairs (frugal.decode.packing), so that one integer scatter-max
of a frame's candidates gives every state its best score and its backpointer, the best
arc into it. There is no per-token bookkeeping: the tokens are the states within the
beam, found by one comparison over the tensor, and a state that no candidate reaches
holds the pair of -inf and no arc. A frame is a few dozen tensor ops whatever the beam,
at a cost that grows with the graph. The pruning is the sparse search's, and so are the float
operations and their order, so both searches give the same results to the bit.

A frame (`_DenseSearch.frame`) runs these steps:

- `_expand_emitting`: the candidates, every emitting arc of the last frame's tokens;
- `_beam_cutoff`: the beam around each utterance's best candidate;
- `_scatter_candidates`: one scatter-max of the candidates' pairs into the states;
- `_epsilon_closure`: rank by rank, one scatter-max over the non-emitting arcs that
  leave the states of the rank;
- `_tokens_within_beam`, `_max_active_prune`: the states that hold a token;
- `_backpointers`: each token's best arc, read off its pair;
- `_drop_orphans`: tokens whose best arc leaves a pruned token of the frame go too;
- `_number_tokens`: token ids;
- `_record_lattice_links` or `_record_best_links`: the frame's links;
- `_end_frame`: the tokens become the last frame's.
"""
from __future__ import annotations

import math
from typing import List

import numpy as np
import torch

from frugal.decode.graph import DecodingGraph
from frugal.decode.packing import (LOW_MASK, NO_ARC, PackedPairs, high_word_scores, high_words, packed_constant,
                                   packed_threshold, unpack_scores, write_high_words)
from frugal.decode.search_common import Columns, DecoderConfig, SearchOutput, max_active_cutoff, segment_max

_select = torch.index_select


def search_dense(graph: DecodingGraph, config: DecoderConfig, scores: torch.Tensor, lengths: torch.Tensor,
                 lattice: bool) -> SearchOutput:
    """Beam search of log-likelihoods ``scores`` (B, T, D) with ``lengths`` [B] over score
    vectors; with ``lattice``, every link within the beam between kept tokens, else each
    token's best link only."""
    search = _DenseSearch(graph, config, scores, lengths, lattice)
    for t in range(scores.shape[1] + 1):
        if not search.frame(t):
            break
    return search.output()


class _Candidates:
    """The emitting arcs expanded in a frame, in token order: ``tok``, the token each
    leaves (an index into the last frame's tokens), ``arc``, its arc table row, ``key``,
    the key of the state it enters, and ``score``."""

    __slots__ = ("tok", "arc", "key", "score")

    def __init__(self, tok: torch.Tensor, arc: torch.Tensor, key: torch.Tensor, score: torch.Tensor):
        self.tok, self.arc, self.key, self.score = tok, arc, key, score


class _Tokens:
    """The tokens of one frame, by ascending key (utt * num_states + state), as the steps
    of the frame fill them in: ``keep`` (B, num_states) and its flat view ``keep_flat``
    mark the states that hold one; ``pairs`` are their packed pairs, until
    `_backpointers` reads them; ``arc`` is each one's best arc (table row), ``is_emit``
    whether it is emitting, ``has_arc`` (frame 0 only) whether there is one, ``src_key``
    the key of the state it leaves; ``ids`` are their token ids and ``pos`` the token ids
    by key (valid at kept keys only)."""

    __slots__ = ("keys", "utt", "scores", "ids", "keep", "keep_flat", "pairs", "arc", "is_emit", "has_arc",
                 "src_key", "pos")

    def __init__(self, keys, utt, scores, ids=None, keep=None, keep_flat=None, pairs=None):
        self.keys, self.utt, self.scores, self.ids = keys, utt, scores, ids
        self.keep, self.keep_flat, self.pairs = keep, keep_flat, pairs
        self.arc = self.is_emit = self.has_arc = self.src_key = self.pos = None


class _DenseSearch:
    """One search: its buffers over (utterance, state), the last frame's tokens and what
    the frames have output so far. ``cutoff``, passed between the steps of a frame, is
    the least score within the beam, per utterance ((B, 1); a Python float with one
    utterance: fewer tensor ops a frame); ``negative`` says that every score of the frame
    is negative, which makes packing and unpacking one op."""

    def __init__(self, graph: DecodingGraph, config: DecoderConfig, scores: torch.Tensor, lengths: torch.Tensor,
                 lattice: bool):
        A = graph.arcs
        device = graph.device
        B, T, D = scores.shape
        S = graph.num_states
        self.A, self.config, self.lattice, self.device = A, config, lattice, device
        self.B, self.T, self.D, self.S, self.E, self.N = B, T, D, S, A.num_emit, A.num_arcs
        self.ac = float(config.acoustic_scale)
        self.frames_flat, self.lengths = scores.view(-1), lengths
        self.utt0_frames = scores[0] if B == 1 else None  # (a frame of it is one view, not two)
        self.lengths_list = lengths.tolist()
        self.last_frames = set(self.lengths_list)
        self.links = Columns()
        self.tok_keys: List[torch.Tensor] = []
        self.tok_best: List[torch.Tensor] = []
        self.tok_scores: List[torch.Tensor] = []
        self.tok_frames: List[torch.Tensor] = []
        self.best_src, self.best_arc, self.best_utt, self.best_count = [], [], [], []  # 1-best links after frame 0
        self.finals: List = [None] * B
        self.num_tokens = self.num_links = 0
        # The best pair of each (utterance, state) in this frame.
        self.no_candidate = packed_constant(-math.inf, NO_ARC)
        self.packed = torch.empty((B, S), dtype=torch.long, device=device)
        self.packed_flat = self.packed.view(-1)
        # Word 2 * key + 1 of `score_words` is the high word (the score) of key's pair:
        # the closure gathers those, half the bytes of the pairs and no strided unpack.
        self.score_words = self.packed.view(torch.int32).view(-1)
        row_words = (torch.arange(B, device=device) * (2 * S) + 1).view(B, 1)
        if lattice:  # (see _record_lattice_links)
            E = A.num_emit
            self.p_src, self.p_dst, self.p_score = A.src[E:], A.dst[E:], A.score[E:]
            self.p_src_words = (row_words + 2 * self.p_src).view(-1)
            self.arc_link = torch.empty(B * A.num_arcs, dtype=torch.long, device=device)
        # Per epsilon rank: the score words of the arcs' sources, the arcs' scores and
        # destinations, and a buffer of their pairs.
        self.eps_groups = [((row_words + 2 * A.src[lo:hi]).view(-1), A.score[lo:hi], A.dst[lo:hi].expand(B, hi - lo),
                            PackedPairs(A.comp[lo:hi].expand(B, hi - lo)))
                           for lo, hi in zip(A.eps_splits[:-1], A.eps_splits[1:]) if hi > lo]
        # Token ids by key, of even and odd frames: this frame's and the last. Only the
        # entries of kept tokens are ever read, so the rest is left as it was.
        self.pos = [torch.full((B * S,), -1, dtype=torch.long, device=device) for _ in range(2)]
        self.no_utt = torch.zeros(S if B == 1 else 0, dtype=torch.long, device=device)  # (utterance 0)
        self.prev = _Tokens(None, None, None, torch.zeros(0, dtype=torch.long, device=device))

    def frame(self, t: int) -> bool:
        """Frame t: the start tokens (t = 0), or the tokens after reading scores[:, t - 1].
        Whether any token is left."""
        A = self.A
        self.packed.fill_(self.no_candidate)
        if t == 0:
            cand, cutoff, negative = self._start()
        else:
            if t - 1 in self.last_frames:
                self._drop_ended_utterances(t)
            cand = self._expand_emitting(t)
            cutoff, negative = self._beam_cutoff(cand)
            self._scatter_candidates(cand, negative)
            negative &= A.eps_scores_negative
        self._epsilon_closure(cutoff, negative)
        tok = self._tokens_within_beam(t, cutoff, negative)
        self._max_active_prune(tok)
        self._backpointers(t, tok)
        if A.num_eps and not A.eps_scores_negative:
            self._drop_orphans(t, tok)
        self._number_tokens(t, tok)
        if self.lattice:
            self._record_lattice_links(t, cand, cutoff, negative, tok)
        else:
            self._record_best_links(t, tok)
        self._end_frame(t, tok)
        return tok.keys.numel() > 0

    def _start(self):
        """Frame 0 has no candidates, only a start token in state 0 of each utterance, with
        score 0 and no arc."""
        B, beam, device = self.B, self.config.beam, self.device
        self.packed[:, 0] = packed_constant(0.0, NO_ARC)
        cutoff = float(np.float32(-beam)) if B == 1 else torch.full((B, 1), -beam, device=device)
        none = torch.zeros(0, dtype=torch.long, device=device)
        return _Candidates(none, none, none, torch.zeros(0, device=device)), cutoff, False

    def _drop_ended_utterances(self, t: int) -> None:
        """Drops the last frame's tokens of the utterances that ended with it."""
        prev = self.prev
        alive = torch.nonzero(_select(self.lengths, 0, prev.utt) >= t).squeeze(1)
        prev.keys, prev.utt, prev.scores, prev.ids = (
            _select(x, 0, alive) for x in (prev.keys, prev.utt, prev.scores, prev.ids))

    def _expand_emitting(self, t: int) -> _Candidates:
        """Every emitting arc of the last frame's tokens, in token order, scored with the
        token's score, the arc's graph score and the scaled log-likelihood of its column at
        frame t - 1. What is per token is computed per token, then spread to its arcs."""
        A, B, S, prev = self.A, self.B, self.S, self.prev
        keys, utt = prev.keys, prev.utt
        states = keys if B == 1 else keys - utt * S  # (with one utterance, a key is the state)
        deg = _select(A.emit_degree, 0, states)
        tok = torch.repeat_interleave(deg)
        first_arc = _select(A.emit_start, 0, states) - torch.cumsum(deg, 0) + deg
        arc = _select(first_arc, 0, tok) + torch.arange(tok.numel(), device=self.device)
        score = _select(prev.scores, 0, tok) + _select(A.score, 0, arc)
        if B == 1:
            loglik = _select(self.utt0_frames[t - 1], 0, _select(A.label, 0, arc))
        else:
            row = (utt * self.T + (t - 1)) * self.D
            loglik = _select(self.frames_flat, 0, _select(row, 0, tok) + _select(A.label, 0, arc))
        score += loglik * self.ac if self.ac != 1.0 else loglik
        key = _select(A.dst, 0, arc)
        if B > 1:
            key += _select(utt * S, 0, tok)
        return _Candidates(tok, arc, key, score)

    def _beam_cutoff(self, cand: _Candidates):
        """``cutoff``, from each utterance's best candidate, and whether all candidates
        score below 0. With one utterance, float32 arithmetic on Python floats, as on
        tensors."""
        B, beam = self.B, self.config.beam
        if B == 1:
            best = float(cand.score.max()) if cand.score.numel() else -math.inf
            return float(np.float32(best) - np.float32(beam)), best < 0
        best = segment_max(cand.score, _select(self.prev.utt, 0, cand.tok), B)
        negative = bool(best.max() < 0)
        return best.view(B, 1) - beam, negative

    def _scatter_candidates(self, cand: _Candidates, negative: bool) -> None:
        """Folds the candidates into the states they enter: one scatter-max of their
        packed pairs. Those below ``cutoff`` go in too: their states never qualify (see
        `_tokens_within_beam`)."""
        pairs = _select(self.A.comp, 0, cand.arc)
        write_high_words(high_words(pairs), cand.score, negative)
        self.packed_flat.scatter_reduce_(0, cand.key, pairs, reduce="amax")

    def _epsilon_closure(self, cutoff, negative: bool) -> None:
        """Rank by rank, the non-emitting arcs leaving the states of the rank, whose pairs
        are final when the rank comes, fold into the states they enter: one scatter-max.

        Candidates below the beam cutoff are dropped, as in the sparse search. With no
        positive non-emitting arc score that changes no token: such a candidate only wins
        in a state that stays below the cutoff, and so is pruned, as is everything reached
        from it."""
        B, packed, score_words, eps_negative = self.B, self.packed, self.score_words, self.A.eps_scores_negative
        for src_words, arc_score, dst, pairs in self.eps_groups:
            src_sc = high_word_scores(_select(score_words, 0, src_words), negative).view(B, -1)
            e_sc = src_sc + arc_score
            if not eps_negative:
                e_sc.masked_fill_((e_sc < cutoff) | (src_sc < cutoff), -math.inf)
            packed.scatter_reduce_(1, dst, pairs.pack(e_sc, negative), reduce="amax")

    def _tokens_within_beam(self, t: int, cutoff, negative: bool) -> _Tokens:
        """The states within the beam of their utterance's best one (hence within the beam
        of the best candidate: states whose candidates all fell below ``cutoff`` never
        qualify). With no positive non-emitting arc score, the best state holds the best
        candidate: that beam is ``cutoff``, and the packed pairs are compared with it as
        they are (they order like their scores), so only the tokens' scores are unpacked."""
        packed, S = self.packed, self.S
        if t > 0 and self.A.eps_scores_negative:
            keep = packed >= packed_threshold(cutoff)
        else:
            score = unpack_scores(packed, negative)
            keep = score >= (score.amax(1, keepdim=True) - self.config.beam).nan_to_num_(neginf=math.inf)
        keep_flat = keep.view(-1)
        keys = torch.nonzero(keep_flat).squeeze(1)
        utt = keys // S if self.B > 1 else self.no_utt[:keys.numel()]
        pairs = _select(self.packed_flat, 0, keys)
        return _Tokens(keys, utt, unpack_scores(pairs, negative), keep=keep, keep_flat=keep_flat, pairs=pairs)

    def _max_active_prune(self, tok: _Tokens) -> None:
        """Keeps the ``max_active`` best tokens of each utterance (ties at the cutoff all
        stay)."""
        if tok.keys.numel() <= self.config.max_active:  # (then no utterance has more)
            return
        stays = tok.scores >= max_active_cutoff(tok.scores, tok.utt, self.B, self.config.max_active)
        if not bool(stays.all()):
            tok.keep_flat.index_copy_(0, tok.keys, stays)
            stay = torch.nonzero(stays).squeeze(1)
            tok.keys, tok.utt, tok.scores, tok.pairs = (
                _select(x, 0, stay) for x in (tok.keys, tok.utt, tok.scores, tok.pairs))

    def _backpointers(self, t: int, tok: _Tokens) -> None:
        """Each token's best incoming arc, from the low word of its pair: its table row
        (emitting below num_emit) or, for a start token, none; and the key of the state
        it leaves."""
        win = torch.bitwise_not(tok.pairs).bitwise_and_(LOW_MASK)  # (LOW_MASK - row is ~row)
        tok.pairs = None
        tok.is_emit = win < self.E
        if t == 0:
            tok.has_arc = win < NO_ARC
            tok.arc = torch.where(tok.has_arc, win, 0)
        else:  # (after the start, every token has one)
            tok.arc = win
        src_key = _select(self.A.src, 0, tok.arc)
        if self.B > 1:
            src_key += tok.utt * self.S
        tok.src_key = src_key

    def _drop_orphans(self, t: int, tok: _Tokens) -> None:
        """Drops the tokens whose best arc is a non-emitting arc from a token pruned in this
        frame, then those whose best arc leaves these, and so on. Only needed when some
        non-emitting arc has a positive score: otherwise a token scores at most the token
        it comes from, and is pruned with it."""
        while True:
            bad = ~(tok.is_emit | _select(tok.keep_flat, 0, tok.src_key))
            if t == 0:
                bad &= tok.has_arc
            if not bool(bad.any()):
                return
            tok.keep_flat[tok.keys[bad]] = False
            good = ~bad
            tok.keys, tok.utt, tok.scores, tok.is_emit, tok.arc, tok.src_key = (
                x[good] for x in (tok.keys, tok.utt, tok.scores, tok.is_emit, tok.arc, tok.src_key))
            if t == 0:
                tok.has_arc = tok.has_arc[good]

    def _number_tokens(self, t: int, tok: _Tokens) -> None:
        """Token ids, following on from the last frame's, and the ids by key."""
        tok.ids = torch.arange(self.num_tokens, self.num_tokens + tok.keys.numel(), device=self.device)
        tok.pos = self.pos[t % 2]
        tok.pos.index_copy_(0, tok.keys, tok.ids)

    def _record_lattice_links(self, t: int, cand: _Candidates, cutoff, negative: bool, tok: _Tokens) -> None:
        """The frame's lattice links, every arc within the beam between kept tokens: the
        emitting candidates within the beam that enter a kept state, in candidate order,
        then the non-emitting arcs within the beam between kept states, by (utterance, arc
        row); and each token's best link, the link of its best arc. Their labels and scores
        are looked up after the search."""
        B, S, T, E, N = self.B, self.S, self.T, self.E, self.N
        keep, cur_pos = tok.keep, tok.pos
        e_link = cand.score >= (cutoff if B == 1 else _select(cutoff.view(-1), 0, cand.key // S))
        e_link &= _select(tok.keep_flat, 0, cand.key)
        e_li = torch.nonzero(e_link).squeeze(1)
        m = _select(keep, 1, self.p_src) & _select(keep, 1, self.p_dst)
        m &= high_word_scores(_select(self.score_words, 0, self.p_src_words), negative).view(B, -1) + self.p_score \
            >= cutoff
        u_p = torch.nonzero(m)
        p_utt, p_row = u_p[:, 0], u_p[:, 1]
        e_key, p_src_key, p_dst_key = (_select(cand.key, 0, e_li), _select(self.p_src, 0, p_row),
                                       _select(self.p_dst, 0, p_row))
        l_arc = torch.cat([_select(cand.arc, 0, e_li), p_row + E])
        if B > 1:
            l_utt = torch.cat([e_key // S, p_utt])
            p_src_key += p_utt * S
            p_dst_key += p_utt * S
        l_src = torch.cat([_select(self.prev.ids, 0, _select(cand.tok, 0, e_li)), _select(cur_pos, 0, p_src_key)])
        l_dst = torch.cat([_select(cur_pos, 0, e_key), _select(cur_pos, 0, p_dst_key)])
        self.links.add(src=l_src, dst=l_dst, arc=l_arc,
                       frame_row=torch.full_like(l_arc, t - 1) if B == 1 else l_utt * T + (t - 1))
        # Each token's best link, found by (utterance, arc row) in `arc_link`: a kept
        # token's best arc is always a link.
        l_code = l_arc if B == 1 else l_utt * N + l_arc
        self.arc_link.index_copy_(0, l_code, torch.arange(self.num_links, self.num_links + l_arc.numel(),
                                                          device=self.device))
        best_link = _select(self.arc_link, 0, tok.arc if B == 1 else tok.utt * N + tok.arc)
        self.tok_best.append(best_link if t > 0 else torch.where(tok.has_arc, best_link, -1))
        self.num_links += l_arc.numel()

    def _record_best_links(self, t: int, tok: _Tokens) -> None:
        """The 1-best links: each token's best arc, and the token it leaves, one of the last
        frame's (emitting arc) or of this one. After frame 0 every token has one, and
        `output` numbers them all at once, in token order."""
        src = _select(tok.pos, 0, tok.src_key)
        if t > 0:
            src = torch.where(tok.is_emit, _select(self.pos[(t + 1) % 2], 0, tok.src_key), src)
            self.best_src.append(src)
            self.best_arc.append(tok.arc)
            if self.B > 1:
                self.best_utt.append(tok.utt)
            self.best_count.append(tok.keys.numel())
            return
        # At frame 0, only the tokens reached by non-emitting arcs have one.
        li = torch.nonzero(tok.has_arc).squeeze(1)
        best_link = torch.full_like(tok.keys, -1)
        best_link[li] = self.num_links + torch.arange(li.numel(), device=self.device)
        self.links.add(src=_select(src, 0, li), arc=_select(tok.arc, 0, li),
                       frame_row=_select(tok.utt, 0, li) * self.T + (t - 1))
        self.num_links += li.numel()
        self.tok_best.append(best_link)

    def _end_frame(self, t: int, tok: _Tokens) -> None:
        """The frame's tokens become the last frame's; they are lattice states (with
        ``lattice``) and the final tokens of the utterances that end here."""
        self.prev = tok
        if self.lattice:
            self.tok_keys.append(tok.keys)
            self.tok_scores.append(tok.scores)
            self.tok_frames.append(torch.full_like(tok.keys, t))
        if t in self.last_frames:
            for u in range(self.B):
                if self.lengths_list[u] == t:
                    m = tok.utt == u
                    self.finals[u] = (tok.ids[m], tok.keys[m] % self.S, tok.scores[m])
        self.num_tokens += tok.keys.numel()

    def output(self) -> SearchOutput:
        """What the frames made. The 1-best links of frames 0, 1, ..., one per token in
        token order, get their ids and frames here at once, not a tensor op each per frame."""
        if self.best_count:
            B, T, device = self.B, self.T, self.device
            frame = torch.repeat_interleave(torch.arange(len(self.best_count), device=device),
                                            torch.tensor(self.best_count, device=device))
            self.links.add(src=torch.cat(self.best_src), arc=torch.cat(self.best_arc),
                           frame_row=frame if B == 1 else torch.cat(self.best_utt) * T + frame)
            self.tok_best.append(torch.arange(self.num_links, self.num_links + frame.numel(), device=device))
        return SearchOutput(self.finals, self.tok_keys, self.tok_scores, self.tok_frames, self.tok_best, self.links)
