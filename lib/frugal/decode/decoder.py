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

Three searches implement this, with the same results to the bit: the sparse one
(frugal.decode.search_sparse) keeps lists of active tokens, at a cost per frame that grows
with them; the dense one (frugal.decode.search_dense) keeps a score vector over all states
per utterance, so a frame is a few dozen tensor ops whatever the beam, at a cost that grows
with the graph; the compiled one (frugal.decode.search_compiled, CPU only) is the sparse
search's algorithm as a compiled loop over tokens and arcs, and decodes one utterance a
call. ``search="auto"`` is the compiled search on CPU and the timed choice on a GPU:
``search="timed"`` measures, as which of dense and sparse is faster depends on the graph
and on how many tokens the beam keeps more than any size rule captures; its first call runs
the search a size rule guesses (dense while the graph has at most 12 states and
non-emitting arcs per ``max_active`` token), its second call the other one, and later calls
whichever took less time per utterance-frame (calls of fewer than 100 utterance-frames,
such as a warm-up, are not timed: their fixed costs would dominate).

Every candidate kept (the arc from a surviving token to a surviving token, within the
beam) is a link of the raw lattice, as in Kaldi's LatticeSimpleDecoder: its graph cost
and its unscaled acoustic cost are kept. The 1-best is the traceback of each token's
best incoming link; the lattice is the raw token lattice pruned with ``lattice_beam``
by forward-backward (Kaldi's lattice-prune, frugal.decode.lattice_builder), optionally
determinised to a word lattice.
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
from frugal.decode.search_common import SEARCHES, DecoderConfig, link_labels
from frugal.decode.search_compiled import search_compiled
from frugal.decode.search_dense import search_dense
from frugal.decode.search_sparse import search_sparse
from frugal.lattice.lattice import Lattice
from frugal.errors import FrugalError


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
        if config.search not in SEARCHES:
            raise FrugalError(f"decoder search must be one of {', '.join(SEARCHES)}, not {config.search!r}")
        if config.search == "compiled" and graph.device.type != "cpu":
            raise FrugalError("the compiled search runs on CPU; on a GPU use auto, timed, dense or sparse")
        # Seconds and utterance-frames of each search in earlier calls (module docstring).
        self.search_seconds = {"dense": 0.0, "sparse": 0.0, "compiled": 0.0}
        self.search_frames = {"dense": 0, "sparse": 0, "compiled": 0}

    @property
    def kind(self) -> str:
        """The search the next ``decode`` call runs: dense, sparse or compiled."""
        search = self.config.search
        if search == "auto":
            search = "compiled" if self.graph.device.type == "cpu" else "timed"
        if search != "timed":
            return search
        tried = [k for k in ("dense", "sparse") if self.search_frames[k]]
        if not tried:
            small = self.graph.num_states + self.graph.arcs.num_eps <= _DENSE_SIZE_PER_ACTIVE * self.config.max_active
            return "dense" if small else "sparse"
        if len(tried) == 1:
            return "dense" if tried[0] == "sparse" else "sparse"
        dense_faster = (self.search_seconds["dense"] / self.search_frames["dense"]
                        <= self.search_seconds["sparse"] / self.search_frames["sparse"])
        return "dense" if dense_faster else "sparse"

    @property
    def dense(self) -> bool:
        """Whether the next ``decode`` call runs the dense search."""
        return self.kind == "dense"

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
        kind = self.kind
        if kind == "compiled" and scores.shape[0] > 1:
            # One utterance at a time: the per-key records of one utterance stay in cache,
            # and a batch gains nothing in a loop.
            return [r for u, n in enumerate(lengths.tolist())
                    for r in self.decode(scores[u:u + 1, :n], lengths[u:u + 1], lattice, determinize)]
        search = {"dense": search_dense, "sparse": search_sparse, "compiled": search_compiled}[kind]
        t0 = time.perf_counter()
        finals, tok_keys, tok_scores, tok_frames, tok_best, links = search(g, self.config, scores, lengths, lattice)
        if g.device.type == "cuda":
            torch.cuda.synchronize(g.device)
        if int(lengths.sum()) >= _MIN_TIMED_FRAMES:
            self.search_seconds[kind] += time.perf_counter() - t0
            self.search_frames[kind] += int(lengths.sum())
        links = {name: _cat(getattr(links, name)) for name in links.names}
        lattices = None
        if lattice:
            lattices = build_lattices(g, scores.shape[0], finals, _cat(tok_keys), _cat(tok_scores),
                                      _cat(tok_frames), links, link_labels(g, links, scores),
                                      self.config.acoustic_scale, self.config.lattice_beam)
        return self._results(scores.shape[0], finals, tok_best, links, scores, lattices, determinize)

    def _results(self, B, finals, tok_best, links, scores, lattices, determinize):
        """The 1-best of each utterance, traced back by best incoming links from its best
        final token (its best token if none is final), with its lattice if any."""
        g, cfg = self.graph, self.config
        best_link = _cat(tok_best).cpu().numpy()
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
            l_il, l_ol, l_graph, l_loglik = (x.cpu().numpy() for x in link_labels(
                g, links, scores, torch.tensor(path, dtype=torch.long, device=g.device)))
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


def _cat(blocks: List[torch.Tensor]) -> torch.Tensor:
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks)  # (a single block is not copied)


_DENSE_SIZE_PER_ACTIVE = 12
_MIN_TIMED_FRAMES = 100
