"""The decoding graph as the searches read it.

A decoding graph is an `Fsa` converted from an HLG/HCLG (``from_openfst(fst,
label_offset=1)``): an arc's label is the network output column it reads (token or pdf
id), label -1 marks a non-emitting (input-epsilon) arc such as an LM backoff arc, and
aux labels are word ids. `DecodingGraph` lays it out for the decoder: the arcs grouped
by source state (CSR), emitting and non-emitting apart, for the sparse search; all arcs
in one table, non-emitting ones by epsilon rank, for the dense search; and each state's
epsilon rank, its depth in the (acyclic) graph of non-emitting arcs, by which both run
the epsilon closure.
"""
from __future__ import annotations

import numpy as np
import torch

from frugal.decode.packing import LOW_MASK, NO_ARC
from frugal.errors import FrugalError
from frugal.fsa import Fsa
from frugal.fsa.openfst import from_openfst


class DecodingGraph:
    """A decoding graph laid out for the decoder: arcs grouped by source state (CSR),
    emitting (``emit``) and non-emitting (``eps``) apart, all arcs in one table for the
    dense search (``arcs``), and each state's rank among non-emitting arcs."""

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
        self.has_eps = self.eps.start[1:] > self.eps.start[:-1]
        self.final_scores = fsa.final_scores.float().to(device)
        self.arcs = _ArcTable(self.emit, self.eps, self.eps_rank, self.max_eps_rank, device)
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
        out.has_eps = self.has_eps.to(device)
        out.arcs = self.arcs.to(device)
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


class _ArcTable:
    """Every arc of the graph in one table, for the dense search: emitting arcs first, in
    the order of ``DecodingGraph.emit`` (by source state), then non-emitting arcs sorted by
    the epsilon rank of their source."""

    def __init__(self, emit: _CsrArcs, eps: _CsrArcs, eps_rank: torch.Tensor, max_eps_rank: int, device):
        cols = {}
        for name, csr in (("emit", emit), ("eps", eps)):
            src = torch.repeat_interleave(torch.arange(csr.start.numel() - 1), (csr.start[1:] - csr.start[:-1]).cpu())
            cols[name] = (src, csr.dst.cpu(), csr.label.cpu(), csr.olabel.cpu(), csr.score.cpu())
        e_src, e_dst, e_label, e_olabel, e_score = cols["emit"]
        p_src, p_dst, _, p_olabel, p_score = cols["eps"]
        p_rank = eps_rank.cpu()[p_src]
        order = torch.sort(p_rank, stable=True).indices
        p_src, p_dst, p_olabel, p_score, p_rank = (x[order] for x in (p_src, p_dst, p_olabel, p_score, p_rank))
        self.num_emit, self.num_eps = e_src.numel(), p_src.numel()
        self.num_arcs = self.num_emit + self.num_eps
        # Rows [eps_splits[r], eps_splits[r + 1]) are the non-emitting arcs leaving rank r.
        self.eps_splits = (self.num_emit + torch.cat([torch.zeros(1, dtype=torch.long), torch.bincount(
            p_rank, minlength=max_eps_rank + 1).cumsum(0)])).tolist()
        self.src = torch.cat([e_src, p_src]).to(device)
        self.dst = torch.cat([e_dst, p_dst]).to(device)
        self.label = torch.cat([e_label, torch.zeros_like(p_src)]).to(device)     # output column read
        self.ilabel = torch.cat([e_label + 1, torch.zeros_like(p_src)]).to(device)  # OpenFst input label
        self.olabel = torch.cat([e_olabel, p_olabel]).to(device)
        self.score = torch.cat([e_score, p_score]).to(device)
        self.eps_scores_negative = bool((p_score <= 0).all())  # (a path through them only loses score)
        self.emit_start = emit.start[:-1].to(device)
        self.emit_degree = (emit.start[1:] - emit.start[:-1]).to(device)
        if self.num_arcs >= NO_ARC:
            raise FrugalError(f"decoding graph has {self.num_arcs} arcs: the decoder takes fewer than 2**32 - 1")
        # The low word of each row's packed (score, row) pairs (see frugal.decode.packing).
        self.comp = (LOW_MASK - torch.arange(self.num_arcs)).to(device)

    def to(self, device) -> "_ArcTable":
        out = object.__new__(_ArcTable)
        out.__dict__.update({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.__dict__.items()})
        return out


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
