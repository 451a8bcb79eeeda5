"""Frame-synchronous Viterbi beam search over a decoding graph, with lattice generation.

The decoding graph is a `DecodingGraph` (frugal.decode.graph) made from an HLG/HCLG: an
arc reads a network output column (token or pdf id) or, if non-emitting, none (as an LM
backoff arc), and outputs a word id or none. Everything runs on PyTorch tensors, batched
over utterances (a token is the pair (utterance, graph state), keyed
``utt * num_states + state``), on CPU or GPU alike.

Per frame t, for the tokens alive after frame t-1:

1. expand every token over the emitting arcs of its state (CSR layout by source state),
   adding the graph score and ``acoustic_scale`` times the frame's log-likelihood;
2. drop candidates more than ``beam`` below the utterance's best candidate;
3. epsilon closure: graph states are ranked by their depth in the (acyclic) graph of
   non-emitting arcs, and the closure runs rank by rank, so a token's score is final
   before its non-emitting arcs are expanded (one pass, no re-expansion);
4. reduce candidates to the best per (utterance, state) with a segment max, then prune
   by ``beam`` and ``max_active`` (top scores per utterance).

Two searches implement this: the sparse one keeps lists of active tokens, at a cost per
frame that grows with them; the dense one keeps a score vector over all states per
utterance and gets each state's best score and backpointer from one integer scatter-max of
packed (score, arc) pairs, so a frame is a few dozen tensor ops whatever the beam, at
a cost that grows with the graph. Both give the same results, to the bit. Which is faster
depends on the graph and on how many tokens the beam keeps, more than any size rule
captures: on egs/mini's HCLG (63k states + non-emitting arcs; dev set, lattices, batches of
8, one CPU thread) dense took 1.9x the time of sparse at beam 8, 1.0x at beam 11 and 0.64x at
beam 20; on tools/bench's 15k HCLG, 0.34x at beam 12. So ``search="auto"`` measures: its
first call runs the search a size rule guesses (dense while the graph has at most 12 states
and non-emitting arcs per ``max_active`` token), its second call the other one, and later
calls whichever took less time per utterance-frame (calls of fewer than 100 utterance-frames,
such as a warm-up, are not timed: their fixed costs would dominate).

Every candidate kept (the arc from a surviving token to a surviving token, within the
beam) is a link of the raw lattice, as in Kaldi's LatticeSimpleDecoder: its graph cost
and its unscaled acoustic cost are kept. The 1-best is the traceback of each token's
best incoming link; the lattice is the raw token lattice pruned with ``lattice_beam``
by forward-backward (Kaldi's lattice-prune), optionally determinised to a word lattice.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch

from frugal.decode.graph import DecodingGraph
from frugal.decode.lattice_builder import build_lattices, empty_lattice
from frugal.decode.packing import (LOW_MASK, NO_ARC, PackedPairs, high_word_scores, high_words, packed_constant,
                                   packed_threshold, unpack_scores, write_high_words)
from frugal.lattice.lattice import Lattice
from frugal.errors import FrugalError


@dataclass
class DecoderConfig:
    beam: float = 16.0
    max_active: int = 7000
    lattice_beam: float = 8.0
    acoustic_scale: float = 1.0
    search: str = "auto"    # dense (score vectors over all states), sparse (active lists), or by graph size


@dataclass
class DecodeResult:
    """1-best of one utterance: word ids, the graph input labels read per frame (OpenFst
    labels: column + 1), and the path's graph cost and unscaled acoustic cost."""

    words: List[int]
    ilabels: List[int]
    graph_cost: float
    acoustic_cost: float
    reached_final: bool
    lattice: Optional[Lattice] = None

    def total_cost(self, acoustic_scale: float) -> float:
        return self.graph_cost + acoustic_scale * self.acoustic_cost


class Decoder:
    """Batched beam search over one `DecodingGraph`; see the module docstring."""

    def __init__(self, graph: DecodingGraph, config: DecoderConfig = DecoderConfig()):
        self.graph = graph
        self.config = config
        if config.search not in ("auto", "dense", "sparse"):
            raise FrugalError(f"decoder search must be auto, dense or sparse, not {config.search!r}")
        # Seconds and utterance-frames of each search in earlier calls (module docstring).
        self.search_seconds = {"dense": 0.0, "sparse": 0.0}
        self.search_frames = {"dense": 0, "sparse": 0}

    @property
    def dense(self) -> bool:
        """Whether the next ``decode`` call runs the dense search."""
        if self.config.search != "auto":
            return self.config.search == "dense"
        tried = [k for k in ("dense", "sparse") if self.search_frames[k]]
        if not tried:
            return self.graph.num_states + self.graph.arcs.num_eps <= _DENSE_SIZE_PER_ACTIVE * self.config.max_active
        if len(tried) == 1:
            return tried[0] == "sparse"
        return (self.search_seconds["dense"] / self.search_frames["dense"]
                <= self.search_seconds["sparse"] / self.search_frames["sparse"])

    @torch.inference_mode()
    def decode(self, scores: torch.Tensor, lengths: torch.Tensor, lattice: bool = False,
               determinize: bool = False) -> List[DecodeResult]:
        """Decode log-likelihoods ``scores`` (B, T, D) with ``lengths`` [B].

        With ``lattice``, each result carries the raw state-level lattice pruned with the
        lattice beam (or, with ``determinize``, its word-level determinisation).
        """
        g = self.graph
        if scores.dim() != 3:
            raise FrugalError(f"decoder scores must be (B, T, D), got shape {tuple(scores.shape)}")
        if g.max_label >= scores.shape[2]:
            raise FrugalError(f"the decoding graph reads output columns up to {g.max_label} "
                              f"(input label {g.max_label + 1}) but the model has only "
                              f"{scores.shape[2]} outputs: graph and model do not match")
        scores = scores.to(g.device).float().contiguous()
        lengths = lengths.to(g.device).long()
        kind = "dense" if self.dense else "sparse"
        search = self._search_dense if kind == "dense" else self._search_sparse
        t0 = time.perf_counter()
        finals, tok_keys, tok_scores, tok_frames, tok_best, links = search(scores, lengths, lattice)
        if g.device.type == "cuda":
            torch.cuda.synchronize(g.device)
        if int(lengths.sum()) >= _MIN_TIMED_FRAMES:
            self.search_seconds[kind] += time.perf_counter() - t0
            self.search_frames[kind] += int(lengths.sum())
        links = {name: torch.cat(getattr(links, name)) for name in links.names}
        lattices = None
        if lattice:
            lattices = build_lattices(g, scores.shape[0], finals, torch.cat(tok_keys), torch.cat(tok_scores),
                                      torch.cat(tok_frames), links, self._link_labels(links, scores),
                                      self.config.acoustic_scale, self.config.lattice_beam)
        return self._results(scores.shape[0], finals, tok_best, links, scores, lattices, determinize)

    def _link_labels(self, links, scores, idx: Optional[torch.Tensor] = None):
        """(ilabel, olabel, graph score, log-likelihood) of the links ``idx`` (default all):
        stored by the sparse search, looked up from the arc and frame by the dense one."""
        def take(x):
            return x if idx is None else x.index_select(0, idx)

        if "arc" not in links:
            return tuple(take(links[n]) for n in ("ilabel", "olabel", "graph", "loglik"))
        A = self.graph.arcs
        arc, frame_row = take(links["arc"]), take(links["frame_row"])
        emitting = arc < A.num_emit
        loglik = scores.reshape(-1).index_select(
            0, torch.where(emitting, frame_row * scores.shape[2] + A.label.index_select(0, arc), 0))
        return (A.ilabel.index_select(0, arc), A.olabel.index_select(0, arc), A.score.index_select(0, arc),
                loglik.masked_fill_(~emitting, 0.0))

    def _search_sparse(self, scores: torch.Tensor, lengths: torch.Tensor, lattice: bool):
        """Beam search over lists of active tokens: cost per frame grows with the tokens
        alive, not with the graph (for graphs too large for the dense search)."""
        g, cfg = self.graph, self.config
        device = g.device
        B, T, D = scores.shape
        S = g.num_states
        ac = float(cfg.acoustic_scale)
        buf = _DenseBuffers(B * S, device)
        links = _Columns()           # all links kept so far; a link's id is its row
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
            cand = _Columns()
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
                keep = _where(c_scores >= _segment_max(c_scores, c_utt, B)[c_utt] - cfg.beam)
                tok, arc, c_scores, c_utt, loglik = tok.index_select(0, keep), arc.index_select(0, keep), c_scores.index_select(0, keep), c_utt.index_select(0, keep), loglik.index_select(0, keep)
                if tok.numel() == 0:
                    break
                cand.add(key=c_utt * S + g.emit.dst.index_select(0, arc), score=c_scores, src=ids.index_select(0, tok),
                         in_frame=torch.zeros_like(tok, dtype=torch.bool), ilabel=g.emit.label.index_select(0, arc) + 1,
                         olabel=g.emit.olabel.index_select(0, arc), graph=g.emit.score.index_select(0, arc), loglik=loglik,
                         is_link=torch.ones_like(tok, dtype=torch.bool))
            buf.scatter(cand.key[0], cand.score[0], 0)
            cutoff = _segment_max(cand.score[0], cand.key[0] // S, B) - cfg.beam
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
            keep = tok_sc >= _segment_max(tok_sc, keys // S, B)[keys // S] - cfg.beam
            keep &= tok_sc >= _max_active_cutoff(tok_sc, keys // S, B, cfg.max_active)
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
        return finals, tok_keys, tok_scores, tok_frames, tok_best, links

    def _search_dense(self, scores: torch.Tensor, lengths: torch.Tensor, lattice: bool):
        """Beam search with a score vector over all graph states per utterance. A frame
        expands the emitting arcs of the active tokens, and one integer scatter-max of
        packed (score, arc) pairs gives every state its best score and backpointer;
        the epsilon closure is one such scatter per epsilon rank over all non-emitting
        arcs. No per-token bookkeeping: pruned states just hold -inf. The pruning is the
        sparse search's, and so are the float operations and their order."""
        g, cfg, A = self.graph, self.config, self.graph.arcs
        device = g.device
        B, T, D = scores.shape
        S, E, N = g.num_states, A.num_emit, A.num_arcs
        ac = float(cfg.acoustic_scale)
        inf = math.inf
        select = torch.index_select
        no_candidate = packed_constant(-inf, NO_ARC)
        links = _Columns()
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
                    c_best = _segment_max(c_score, select(utt, 0, c_tok), B)
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
                stays = new_sc >= _max_active_cutoff(new_sc, new_utt, B, cfg.max_active)
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
        return finals, tok_keys, tok_scores, tok_frames, tok_best, links

    def _results(self, B, finals, tok_best, links, scores, lattices, determinize):
        g, cfg = self.graph, self.config
        best_link = torch.cat(tok_best).cpu().numpy()
        l_src = links["src"].cpu().numpy() if links else np.zeros(0, dtype=np.int64)
        final_scores = g.final_scores.cpu()
        results = []
        for u in range(B):
            if finals[u] is None:
                results.append(DecodeResult([], [], math.inf, math.inf, False,
                                            empty_lattice() if lattices is not None else None))
                continue
            ids, states, sc = (x.cpu() for x in finals[u])
            final_sc = final_scores[states]
            reached = bool((final_sc > -math.inf).any())
            tot = sc + final_sc if reached else sc
            best = int(torch.argmax(tot))
            path = []
            tok = int(ids[best])
            while best_link[tok] >= 0:
                path.append(int(best_link[tok]))
                tok = int(l_src[best_link[tok]])
            path.reverse()
            l_il, l_ol, l_graph, l_loglik = (x.cpu().numpy() for x in self._link_labels(
                links, scores, torch.tensor(path, dtype=torch.long, device=g.device)))
            path = np.arange(len(path))
            words = [int(l_ol[a]) for a in path if l_ol[a] != 0]
            ilabels = [int(l_il[a]) for a in path if l_il[a] != 0]
            graph_cost = -float(np.sum(l_graph[path].astype(np.float64))) - (float(final_sc[best]) if reached else 0.0)
            ac_cost = -float(np.sum(l_loglik[path].astype(np.float64)))
            lat = None
            if lattices is not None:
                lat = lattices[u]
                if determinize:
                    from frugal.lattice.determinize import determinize_lattice
                    lat = determinize_lattice(lat, acoustic_scale=cfg.acoustic_scale)
            results.append(DecodeResult(words, ilabels, graph_cost, ac_cost, reached, lat))
        return results


class _Columns:
    """Named lists of tensor blocks (columns of a growing table)."""

    def __init__(self):
        self.names: List[str] = []

    def add(self, **cols):
        if not self.names:
            self.names = list(cols)
            for n in self.names:
                setattr(self, n, [])
        for n, v in cols.items():
            getattr(self, n).append(v)

    def __getattr__(self, name):  # a table with no rows yet has empty columns
        if name.startswith("__"):
            raise AttributeError(name)
        return []


class _DenseBuffers:
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
_DENSE_SIZE_PER_ACTIVE = 12
_MIN_TIMED_FRAMES = 100


def _where(mask: torch.Tensor) -> torch.Tensor:
    """Indices of a bool mask: index several tensors with one nonzero instead of one each."""
    return torch.nonzero(mask).squeeze(1)


def _segment_max(values: torch.Tensor, segment: torch.Tensor, num_segments: int) -> torch.Tensor:
    out = torch.full((num_segments,), -math.inf, device=values.device, dtype=values.dtype)
    return out.scatter_reduce(0, segment, values, reduce="amax")


def _max_active_cutoff(scores: torch.Tensor, utt: torch.Tensor, num_utts: int, max_active: int) -> torch.Tensor:
    """Per token, the score of the ``max_active``-th best token of its utterance (-inf where
    an utterance has no more tokens than that); ties at the cutoff all stay, as in Kaldi."""
    if num_utts == 1:
        n = scores.numel()
        return torch.kthvalue(scores, n - max_active + 1).values.expand(n) if n > max_active \
            else torch.full_like(scores, -math.inf)
    cutoff = torch.full((num_utts,), -math.inf, device=scores.device, dtype=scores.dtype)
    counts = torch.bincount(utt, minlength=num_utts)
    for u in torch.nonzero(counts > max_active).flatten().tolist():
        own = scores[utt == u]
        cutoff[u] = torch.kthvalue(own, own.numel() - max_active + 1).values
    return cutoff.index_select(0, utt)
