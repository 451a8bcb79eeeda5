"""Frame-synchronous Viterbi beam search over a decoding graph, with lattice generation.

The decoding graph is an `Fsa` converted from an HLG/HCLG (``from_openfst(fst,
label_offset=1)``): an arc's label is the network output column it reads (token or pdf
id), label -1 marks a non-emitting (input-epsilon) arc such as an LM backoff arc, and
aux labels are word ids. Everything runs on PyTorch tensors, batched over utterances
(a token is the pair (utterance, graph state), keyed ``utt * num_states + state``), on
CPU or GPU alike.

Per frame t, for the tokens alive after frame t-1:

1. expand every token over the emitting arcs of its state (CSR layout by source state),
   adding the graph score and ``acoustic_scale`` times the frame's log-likelihood;
2. drop candidates more than ``beam`` below the utterance's best candidate;
3. epsilon closure: graph states are ranked by their depth in the (acyclic) graph of
   non-emitting arcs, and the closure runs rank by rank, so a token's score is final
   before its non-emitting arcs are expanded (one pass, no re-expansion);
4. reduce candidates to the best per (utterance, state) with a segment max, then prune
   by ``beam`` and ``max_active`` (top scores per utterance).

Every candidate kept (the arc from a surviving token to a surviving token, within the
beam) is a link of the raw lattice, as in Kaldi's LatticeSimpleDecoder: its graph cost
and its unscaled acoustic cost are kept. The 1-best is the traceback of each token's
best incoming link; the lattice is the raw token lattice pruned with ``lattice_beam``
by forward-backward (Kaldi's lattice-prune), optionally determinised to a word lattice.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import torch

from frugal.decode.lattice import Lattice
from frugal.errors import FrugalError
from frugal.fsa import Fsa
from frugal.fsa.openfst import from_openfst


@dataclass
class DecoderConfig:
    beam: float = 16.0
    max_active: int = 7000
    lattice_beam: float = 8.0
    acoustic_scale: float = 1.0


class DecodingGraph:
    """A decoding graph laid out for the decoder: arcs grouped by source state (CSR),
    emitting and non-emitting apart, and each state's rank among non-emitting arcs."""

    def __init__(self, fsa: Fsa, device: torch.device | str = "cpu"):
        device = torch.device(device)
        fsa = fsa.to("cpu")
        self.num_states = fsa.num_states
        self.max_label = int(fsa.labels.max()) if fsa.num_arcs else -1
        arcs = fsa.arcs.long()
        emitting = arcs[:, 2] >= 0
        self.emit = _CsrArcs(arcs[emitting], fsa.scores[emitting].float(), self.num_states, device)
        self.eps = _CsrArcs(arcs[~emitting], fsa.scores[~emitting].float(), self.num_states, device)
        self.eps_rank = torch.from_numpy(_epsilon_ranks(self.num_states, arcs[~emitting, :2].numpy())).to(device)
        self.max_eps_rank = int(self.eps_rank.max())
        self.final_scores = fsa.final_scores.float().to(device)
        self.device = device

    @classmethod
    def from_openfst(cls, fst, device: torch.device | str = "cpu") -> "DecodingGraph":
        """From an HLG/HCLG StdVectorFst: input label i reads column i - 1; 0 is epsilon."""
        return cls(from_openfst(fst, label_offset=1), device)

    def to(self, device: torch.device | str) -> "DecodingGraph":
        out = object.__new__(DecodingGraph)
        out.__dict__.update(self.__dict__)
        device = torch.device(device)
        out.emit, out.eps = self.emit.to(device), self.eps.to(device)
        out.eps_rank, out.final_scores, out.device = self.eps_rank.to(device), self.final_scores.to(device), device
        return out


class _CsrArcs:
    """Arcs sorted by source state with row starts; labels kept as frugal labels."""

    def __init__(self, arcs: torch.Tensor, scores: torch.Tensor, num_states: int, device):
        order = torch.sort(arcs[:, 0], stable=True).indices
        arcs, scores = arcs[order], scores[order]
        counts = torch.bincount(arcs[:, 0], minlength=num_states)
        self.start = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)]).to(device)
        self.dst = arcs[:, 1].to(device)
        self.label = arcs[:, 2].to(device)
        self.olabel = arcs[:, 3].to(device)
        self.score = scores.to(device)

    def to(self, device) -> "_CsrArcs":
        out = object.__new__(_CsrArcs)
        out.__dict__.update({k: v.to(device) for k, v in self.__dict__.items()})
        return out

    def expand(self, states: torch.Tensor):
        """(token index, arc index) for every arc leaving each of ``states``."""
        begin = self.start[states]
        deg = self.start[states + 1] - begin
        tok = torch.repeat_interleave(torch.arange(states.numel(), device=states.device), deg)
        first = torch.cumsum(deg, 0) - deg
        arc = begin[tok] + torch.arange(tok.numel(), device=states.device) - first[tok]
        return tok, arc


def _epsilon_ranks(num_states: int, eps_arcs: np.ndarray) -> np.ndarray:
    """Longest-path depth of each state in the graph of non-emitting arcs (Kahn)."""
    rank = np.zeros(num_states, dtype=np.int64)
    if eps_arcs.shape[0] == 0:
        return rank
    src, dst = eps_arcs[:, 0], eps_arcs[:, 1]
    if (src == dst).any():
        raise FrugalError("decoding graph has a non-emitting self-loop (an epsilon cycle)")
    indeg = np.bincount(dst, minlength=num_states)
    order = np.argsort(src, kind="stable")
    heads = np.searchsorted(src[order], np.arange(num_states + 1)).tolist()
    targets = dst[order].tolist()
    touched = np.unique(np.concatenate([src, dst]))
    indeg_l = indeg.tolist()
    stack = [int(s) for s in touched if indeg_l[s] == 0]
    seen = 0
    while stack:
        s = stack.pop()
        seen += 1
        for d in targets[heads[s]:heads[s + 1]]:
            rank[d] = max(rank[d], rank[s] + 1)
            indeg_l[d] -= 1
            if indeg_l[d] == 0:
                stack.append(d)
    if seen != touched.size:
        raise FrugalError("decoding graph has a cycle of non-emitting (epsilon) arcs")
    return rank


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


@dataclass
class _Links:
    """Links of one frame: source token id, destination key, arc data."""

    src: List[torch.Tensor] = field(default_factory=list)
    src_is_key: List[torch.Tensor] = field(default_factory=list)
    dst_key: List[torch.Tensor] = field(default_factory=list)
    score: List[torch.Tensor] = field(default_factory=list)
    ilabel: List[torch.Tensor] = field(default_factory=list)
    olabel: List[torch.Tensor] = field(default_factory=list)
    graph: List[torch.Tensor] = field(default_factory=list)
    loglik: List[torch.Tensor] = field(default_factory=list)

    def add(self, **parts):
        for k, v in parts.items():
            getattr(self, k).append(v)

    def cat(self, name):
        return torch.cat(getattr(self, name))


class Decoder:
    """Batched beam search over one `DecodingGraph`; see the module docstring."""

    def __init__(self, graph: DecodingGraph, config: DecoderConfig = DecoderConfig()):
        self.graph = graph
        self.config = config

    @torch.no_grad()
    def decode(self, scores: torch.Tensor, lengths: torch.Tensor, lattice: bool = False,
               determinize: bool = False) -> List[DecodeResult]:
        """Decode log-likelihoods ``scores`` (B, T, D) with ``lengths`` [B].

        With ``lattice``, each result carries the raw state-level lattice pruned with the
        lattice beam (or, with ``determinize``, its word-level determinisation).
        """
        g, cfg = self.graph, self.config
        if scores.dim() != 3:
            raise FrugalError(f"decoder scores must be (B, T, D), got shape {tuple(scores.shape)}")
        if g.max_label >= scores.shape[2]:
            raise FrugalError(f"the decoding graph reads output columns up to {g.max_label} "
                              f"(input label {g.max_label + 1}) but the model has only "
                              f"{scores.shape[2]} outputs: graph and model do not match")
        device = g.device
        scores = scores.to(device)
        lengths = lengths.to(device).long()
        B, T, _ = scores.shape
        S = g.num_states
        ac = float(cfg.acoustic_scale)

        # History: tokens (key, score) and links of all frames, with global token ids.
        tok_keys: List[torch.Tensor] = []
        tok_scores: List[torch.Tensor] = []
        best_link: List[torch.Tensor] = []
        links_all = _Links()
        num_tokens = 0
        num_links = 0
        finals = [None] * B  # (first token id, keys, scores) of the utterance's last frame

        start_keys = torch.arange(B, device=device) * S
        cur_keys = cur_scores = cur_ids = None
        for t in range(T + 1):
            links = _Links()
            if t == 0:
                cand_keys = start_keys
                cand_scores = torch.zeros(B, device=device)
                cand_link = torch.full((B,), -1, dtype=torch.long, device=device)  # -1: no link
            else:
                alive = lengths[cur_keys // S] > t - 1
                k, sc, ids = cur_keys[alive], cur_scores[alive], cur_ids[alive]
                utt, st = k // S, k % S
                tok, arc = g.emit.expand(st)
                loglik = scores[utt[tok], t - 1, g.emit.label[arc]]
                cand_scores = sc[tok] + g.emit.score[arc] + ac * loglik
                cand_keys = utt[tok] * S + g.emit.dst[arc]
                best = _segment_max(cand_scores, cand_keys // S, B)
                keep = cand_scores >= best[cand_keys // S] - cfg.beam
                tok, arc, cand_scores, cand_keys = tok[keep], arc[keep], cand_scores[keep], cand_keys[keep]
                links.add(src=ids[tok], src_is_key=torch.zeros_like(tok, dtype=torch.bool),
                          dst_key=cand_keys, score=cand_scores, ilabel=g.emit.label[arc] + 1,
                          olabel=g.emit.olabel[arc], graph=g.emit.score[arc], loglik=loglik[keep])
                cand_link = torch.arange(cand_keys.numel(), device=device)
            if cand_keys.numel() == 0 and t > 0:
                cur_keys = cand_keys
                cur_scores = cand_scores
                cur_ids = cand_keys
                break
            cutoff = _segment_max(cand_scores, cand_keys // S, B) - cfg.beam
            # Epsilon closure, rank by rank.
            all_keys, all_scores, all_link = [cand_keys], [cand_scores], [cand_link]
            n_link = cand_keys.numel() if t > 0 else 0
            for rank in range(g.max_eps_rank + 1):
                keys, best_sc, _ = _reduce(torch.cat(all_keys), torch.cat(all_scores), torch.cat(all_link))
                st = keys % S
                sel = (g.eps_rank[st] == rank) & (g.eps.start[st + 1] > g.eps.start[st])
                if not bool(sel.any()):
                    continue
                k, sc = keys[sel], best_sc[sel]
                tok, arc = g.eps.expand(k % S)
                e_scores = sc[tok] + g.eps.score[arc]
                e_keys = (k[tok] // S) * S + g.eps.dst[arc]
                keep = e_scores >= cutoff[e_keys // S]
                tok, arc, e_scores, e_keys = tok[keep], arc[keep], e_scores[keep], e_keys[keep]
                if e_keys.numel() == 0:
                    continue
                links.add(src=k[tok], src_is_key=torch.ones_like(tok, dtype=torch.bool), dst_key=e_keys,
                          score=e_scores, ilabel=torch.zeros_like(arc), olabel=g.eps.olabel[arc],
                          graph=g.eps.score[arc], loglik=torch.zeros_like(e_scores))
                all_keys.append(e_keys)
                all_scores.append(e_scores)
                all_link.append(torch.arange(n_link, n_link + e_keys.numel(), device=device))
                n_link += e_keys.numel()
            keys, tok_sc, link_of_tok = _reduce(torch.cat(all_keys), torch.cat(all_scores), torch.cat(all_link))
            # Prune the frame's tokens by beam and max-active.
            keep = tok_sc >= _segment_max(tok_sc, keys // S, B)[keys // S] - cfg.beam
            keep &= _rank_in_segment(tok_sc, keys // S) < cfg.max_active
            if links.dst_key:
                l_dst_pos, l_dst_ok = _find(keys, links.cat("dst_key"))
                l_src = links.cat("src")
                l_src_is_key = links.cat("src_is_key")
                l_src_pos, _ = _find(keys, torch.where(l_src_is_key, l_src, torch.zeros_like(l_src)))
                # A token whose best link starts at a pruned token of this frame goes too
                # (possible when a non-emitting arc has a positive score).
                has_link = link_of_tok >= 0
                best_src_in_frame = has_link & l_src_is_key[link_of_tok.clamp(min=0)]
                best_src_pos = l_src_pos[link_of_tok.clamp(min=0)]
                while True:
                    bad = keep & best_src_in_frame & ~keep[best_src_pos]
                    if not bool(bad.any()):
                        break
                    keep &= ~bad
                new_pos = torch.cumsum(keep.long(), 0) - 1
                ok = l_dst_ok & keep[l_dst_pos] & (~l_src_is_key | keep[l_src_pos])
                l_src_id = torch.where(l_src_is_key, num_tokens + new_pos[l_src_pos], l_src)
                new_index = torch.cumsum(ok.long(), 0) - 1 + num_links
                tok_best = torch.where(has_link, new_index[link_of_tok.clamp(min=0)], -1)[keep]
                links_all.add(src=l_src_id[ok], dst_key=num_tokens + new_pos[l_dst_pos[ok]],
                              ilabel=links.cat("ilabel")[ok], olabel=links.cat("olabel")[ok],
                              graph=links.cat("graph")[ok], loglik=links.cat("loglik")[ok])
                num_links += int(ok.sum())
            else:
                tok_best = torch.full_like(link_of_tok, -1)[keep]
            keys, tok_sc = keys[keep], tok_sc[keep]
            ids = num_tokens + torch.arange(keys.numel(), device=device)
            tok_keys.append(keys)
            tok_scores.append(tok_sc)
            best_link.append(tok_best)
            # Utterances that end at this frame.
            ending = (lengths[keys // S] == t)
            if bool(ending.any()):
                for u in torch.unique(keys[ending] // S).tolist():
                    m = ending & (keys // S == u)
                    finals[u] = (ids[m], keys[m] % S, tok_sc[m])
            num_tokens += keys.numel()
            cur_keys, cur_scores, cur_ids = keys, tok_sc, ids
            if t == T:
                break

        return self._results(B, finals, tok_keys, best_link, links_all, num_tokens, lattice, determinize)

    def _results(self, B, finals, tok_keys, best_link, links_all, num_tokens, want_lattice, determinize):
        g, cfg = self.graph, self.config
        S = g.num_states
        best_link = torch.cat(best_link).cpu().numpy()
        keys = torch.cat(tok_keys).cpu().numpy()
        if links_all.src:
            l_src = links_all.cat("src").cpu().numpy()
            l_dst = links_all.cat("dst_key").cpu().numpy()
            l_il = links_all.cat("ilabel").cpu().numpy()
            l_ol = links_all.cat("olabel").cpu().numpy()
            l_graph = links_all.cat("graph").cpu().numpy()
            l_loglik = links_all.cat("loglik").cpu().numpy()
        else:
            l_src = l_dst = l_il = l_ol = np.zeros(0, dtype=np.int64)
            l_graph = l_loglik = np.zeros(0, dtype=np.float32)
        results = []
        for u in range(B):
            if finals[u] is None:
                results.append(DecodeResult([], [], math.inf, math.inf, False,
                                            _empty_lattice() if want_lattice else None))
                continue
            ids, states, sc = (x.cpu() for x in finals[u])
            final_sc = g.final_scores.cpu()[states]
            reached = bool((final_sc > -math.inf).any())
            tot = sc + final_sc if reached else sc
            best_tok = int(ids[int(torch.argmax(tot))])
            path = []
            tok = best_tok
            while best_link[tok] >= 0:
                path.append(int(best_link[tok]))
                tok = int(l_src[best_link[tok]])
            path.reverse()
            final_graph = -float(final_sc[int(torch.argmax(tot))]) if reached else 0.0
            words = [int(l_ol[a]) for a in path if l_ol[a] != 0]
            ilabels = [int(l_il[a]) for a in path if l_il[a] != 0]
            graph_cost = -float(np.sum(l_graph[path].astype(np.float64))) + final_graph
            ac_cost = -float(np.sum(l_loglik[path].astype(np.float64)))
            lat = None
            if want_lattice:
                lat = self._lattice(u, keys, l_src, l_dst, l_il, l_ol, l_graph, l_loglik,
                                    ids.numpy(), final_sc.numpy(), reached)
                if determinize:
                    from frugal.decode.lattice_ops import determinize_lattice
                    lat = determinize_lattice(lat, beam=cfg.lattice_beam, acoustic_scale=cfg.acoustic_scale)
            results.append(DecodeResult(words, ilabels, graph_cost, ac_cost, reached, lat))
        return results

    def _lattice(self, u, keys, l_src, l_dst, l_il, l_ol, l_graph, l_loglik, final_ids, final_sc, reached):
        S = self.graph.num_states
        tok_of_u = np.nonzero(keys // S == u)[0]
        new_id = np.full(keys.size, -1, dtype=np.int64)
        new_id[tok_of_u] = np.arange(tok_of_u.size)
        m = new_id[l_dst] >= 0
        arcs = np.stack([new_id[l_src[m]], new_id[l_dst[m]], l_il[m], l_ol[m]], axis=1)
        weights = np.stack([-l_graph[m], -l_loglik[m]], axis=1)
        finals = np.full((tok_of_u.size, 2), math.inf, dtype=np.float32)
        f = new_id[final_ids]
        finals[f, 0] = -final_sc if reached else 0.0
        finals[f, 1] = 0.0
        if reached:
            finals[f[~np.isfinite(final_sc)]] = math.inf
        lat = Lattice(arcs, weights, finals)
        return lat.prune(self.config.lattice_beam, acoustic_scale=self.config.acoustic_scale)


def _empty_lattice() -> Lattice:
    return Lattice(np.zeros((0, 4)), np.zeros((0, 2)), np.full((1, 2), math.inf))


def _segment_max(values: torch.Tensor, segment: torch.Tensor, num_segments: int) -> torch.Tensor:
    out = torch.full((num_segments,), -math.inf, device=values.device, dtype=values.dtype)
    return out.scatter_reduce(0, segment, values, reduce="amax")


def _reduce(keys: torch.Tensor, scores: torch.Tensor, link: torch.Tensor):
    """Unique keys (sorted) with their best score and the index of a best candidate's link
    (the lowest link index among ties)."""
    uniq, inv = torch.unique(keys, return_inverse=True)
    best = torch.full((uniq.numel(),), -math.inf, device=keys.device, dtype=scores.dtype)
    best = best.scatter_reduce(0, inv, scores, reduce="amax")
    is_best = scores == best[inv]
    big = torch.iinfo(torch.long).max
    idx = torch.where(is_best, torch.arange(keys.numel(), device=keys.device), big)
    first = torch.full((uniq.numel(),), big, device=keys.device).scatter_reduce(0, inv, idx, reduce="amin")
    return uniq, best, link[first]


def _rank_in_segment(scores: torch.Tensor, segment: torch.Tensor) -> torch.Tensor:
    """Rank (0 = best) of each score among those of its segment."""
    order = torch.sort(scores, descending=True, stable=True).indices
    order = order[torch.sort(segment[order], stable=True).indices]
    seg_sorted = segment[order]
    pos = torch.arange(order.numel(), device=scores.device)
    first = torch.zeros_like(pos)
    if pos.numel():
        boundary = torch.ones_like(seg_sorted, dtype=torch.bool)
        boundary[1:] = seg_sorted[1:] != seg_sorted[:-1]
        first = torch.cummax(torch.where(boundary, pos, torch.zeros_like(pos)), 0).values
    rank = torch.empty_like(pos)
    rank[order] = pos - first
    return rank


def _find(sorted_keys: torch.Tensor, queries: torch.Tensor):
    """(position, found) of each query in the sorted unique ``sorted_keys``."""
    pos = torch.searchsorted(sorted_keys, queries)
    pos_c = pos.clamp(max=max(sorted_keys.numel() - 1, 0))
    found = (pos < sorted_keys.numel()) & (sorted_keys[pos_c] == queries) if sorted_keys.numel() else \
        torch.zeros_like(queries, dtype=torch.bool)
    return pos_c, found
