"""What the sparse and the dense search share: their options, the token lattice they return
and the per-utterance pruning ops both use (so that both prune alike, to the bit)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, NamedTuple, Optional

import torch

from frugal.decode.graph import DecodingGraph


@dataclass
class DecoderConfig:
    """The search's options; their defaults are the defaults of `frugal decode` and steps/decode.sh."""

    beam: float = 15.0
    max_active: int = 7000
    lattice_beam: float = 8.0
    acoustic_scale: float = 1.0
    search: str = "auto"    # one of SEARCHES


# A link can only survive lattice-beam pruning if its candidate score is within the lattice
# beam of its destination token's score: the best path through it scores at most its
# candidate score minus the token's plus the best path overall (the token's forward score is
# the best of its candidates, and a token's forward plus backward score is at most the best
# path's). The sparse and compiled searches keep no other links; this margin covers float32
# rounding, so the pruned lattices are those of all links.
LATTICE_MARGIN = 1.0

# dense: score vectors over all states; sparse: lists of active tokens; compiled: the sparse
# search as a compiled loop (CPU); timed: dense or sparse, whichever was faster so far;
# auto: compiled on CPU, timed on a GPU.
SEARCHES = ("auto", "compiled", "timed", "dense", "sparse")


class SearchOutput(NamedTuple):
    """The tokens and links of a search. Tokens are numbered in the order they are made
    (frame by frame), links by their row in ``links``; the blocks of the per-token lists
    come in token order.

    ``finals[u]``: (token ids, graph states, scores) of the tokens of utterance u's last
    frame, or None if none is left. ``tok_keys``, ``tok_scores``, ``tok_frames``: each
    token's key (utt * num_states + state), score and frame (the dense search makes them
    only for lattices). ``tok_best``: each token's best incoming link, -1 for a start
    token. ``links``: columns ``src`` and ``dst`` (token ids; the dense search's 1-best
    has no ``dst``) and either the labels (``ilabel``, ``olabel``, ``graph``, ``loglik``:
    sparse search) or the arc table row and score row, ``utt * T + frame`` (``arc``,
    ``frame_row``: dense search), from which `link_labels` looks them up.
    """

    finals: List[Optional[tuple]]
    tok_keys: List[torch.Tensor]
    tok_scores: List[torch.Tensor]
    tok_frames: List[torch.Tensor]
    tok_best: List[torch.Tensor]
    links: "Columns"


class Columns:
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


def link_labels(graph: DecodingGraph, links, scores: torch.Tensor, idx: Optional[torch.Tensor] = None):
    """(ilabel, olabel, graph score, log-likelihood) of the links ``idx`` (default all) of
    ``links`` (the columns concatenated): stored by the sparse search, looked up from the
    arc and frame by the dense one."""
    def take(x):
        return x if idx is None else x.index_select(0, idx)

    if "arc" not in links:
        return tuple(take(links[n]) for n in ("ilabel", "olabel", "graph", "loglik"))
    A = graph.arcs
    arc, frame_row = take(links["arc"]), take(links["frame_row"])
    emitting = arc < A.num_emit
    loglik = scores.reshape(-1).index_select(
        0, torch.where(emitting, frame_row * scores.shape[2] + A.label.index_select(0, arc), 0))
    return (A.ilabel.index_select(0, arc), A.olabel.index_select(0, arc), A.score.index_select(0, arc),
            loglik.masked_fill_(~emitting, 0.0))


def segment_max(values: torch.Tensor, segment: torch.Tensor, num_segments: int) -> torch.Tensor:
    out = torch.full((num_segments,), -math.inf, device=values.device, dtype=values.dtype)
    return out.scatter_reduce(0, segment, values, reduce="amax")


def max_active_cutoff(scores: torch.Tensor, utt: torch.Tensor, num_utts: int, max_active: int) -> torch.Tensor:
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
