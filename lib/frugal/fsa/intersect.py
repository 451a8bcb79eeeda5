"""Intersection of FSAs with dense network outputs: forward-backward and Viterbi.

Every graph arc consumes exactly one frame and its label is the column of the dense
log-probs it reads, so a path of T arcs through a graph scores::

    sum_t (arc_score[a_t] + dense[b, t, label[a_t]]) + final_score[dst(a_T)]

`intersect_dense` returns, per sequence, the log-sum-exp (semiring "log") or the max
("tropical") of that score over all paths of the sequence's length that end in a final
state. It is batched two ways:

- one `Fsa` shared by every sequence (an LF-MMI denominator): the recursion runs on a
  [B, S] matrix of state scores, reading the arcs once for the whole batch;
- an `FsaVec` with one graph per sequence (numerators, CTC graphs): the graphs are laid
  side by side as one big graph with states [1, S_total], whose arcs read column
  ``b * D + label`` of the frame's [1, B * D] scores.

Both loop over frames in Python with a handful of batched tensor ops per frame
(gather, scatter-max, index_add), the same on CPU and CUDA, without host syncs per frame.

Numerics: state scores are kept in log space and renormalised after every frame (the
best state of each sequence is at 0), with the removed offsets summed in float64, so
long utterances do not lose precision even in float32; each log-sum-exp over the arcs
entering a state subtracts that state's own maximum first.

The backward pass is explicit (a `torch.autograd.Function`): a backward recursion over
frames computes the arc posteriors ``exp(alpha_t[src] + arc + beta_{t+1}[dst] - total)``,
whose sums per column are the gradient w.r.t. the dense log-probs (the expected label
occupancies), per arc the gradient w.r.t. the arc scores; the final-state posteriors
are the gradient w.r.t. the final scores. In the tropical semiring the gradient is
that of the best path (a subgradient of the max).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple, Union

import torch

from frugal.fsa.dense import DenseFsaVec
from frugal.fsa.fsa import Fsa, FsaVec

Graphs = Union[Fsa, FsaVec]
SEMIRINGS = ("log", "tropical")
NEG_INF = -math.inf


class _Layout:
    """The arcs of the graph(s) indexed for the per-frame recursion (see the module docstring).

    ``G`` rows of ``S`` states; arc a goes from state ``src[a]`` to ``dst[a]`` and reads
    column ``col[a]`` of the frame's scores reshaped to [G, -1].
    """

    def __init__(self, graphs: Graphs, dense: DenseFsaVec):
        B, D = dense.batch_size, dense.num_columns
        if graphs.device != dense.device:
            raise ValueError(f"graphs are on {graphs.device} but dense scores on {dense.device}")
        labels = graphs.arcs[:, 2].long()
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= D):
            raise ValueError(f"arc labels must lie in [0, {D}) (the dense columns); got "
                             f"[{int(labels.min())}, {int(labels.max())}] (label -1 is an epsilon: remove it first)")
        self.B, self.D = B, D
        self.labels = labels
        self.shared = isinstance(graphs, Fsa)
        device = dense.device
        if self.shared:
            self.G, self.S = B, graphs.num_states
            self.src = graphs.arcs[:, 0].long()
            self.dst = graphs.arcs[:, 1].long()
            self.col = labels
            self.start = torch.zeros(B, dtype=torch.long, device=device)
            self.row = torch.arange(B, device=device)  # row of sequence b
            self.arc_offset = torch.zeros(B, dtype=torch.long, device=device)
            self.state_offset = torch.zeros(B, dtype=torch.long, device=device)
        else:
            if len(graphs) != B:
                raise ValueError(f"{len(graphs)} graphs for a batch of {B} sequences")
            self.G, self.S = 1, graphs.final_scores.numel()
            self.arc_seq = graphs.arc_fsa_index()
            self.state_seq = graphs.state_fsa_index()
            offset = graphs.state_splits[self.arc_seq]
            self.src = graphs.arcs[:, 0].long() + offset
            self.dst = graphs.arcs[:, 1].long() + offset
            self.col = self.arc_seq * D + labels
            self.start = graphs.state_splits[:-1]
            self.row = torch.zeros(B, dtype=torch.long, device=device)
            self.arc_offset = graphs.arc_splits[:-1]
            self.state_offset = graphs.state_splits[:-1]
        self.A = self.src.numel()

    # Per-sequence values [B] broadcast to the state matrix [G, S] or arc matrix [G, A].
    def per_state(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, None] if self.shared else x[self.state_seq][None, :]

    def per_arc(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, None] if self.shared else x[self.arc_seq][None, :]

    def seq_max(self, x: torch.Tensor) -> torch.Tensor:
        """[G, S] -> [B]: the best state score of each sequence."""
        if self.shared:
            return x.amax(dim=1) if self.S else x.new_full((self.B,), NEG_INF)
        return x.new_full((self.B,), NEG_INF).scatter_reduce_(0, self.state_seq, x[0], "amax")

    def seq_logsumexp(self, x: torch.Tensor) -> torch.Tensor:
        if self.shared:
            return torch.logsumexp(x, dim=1)
        m = _finite_or_zero(self.seq_max(x))
        s = x.new_zeros(self.B).index_add_(0, self.state_seq, torch.exp(x[0] - m[self.state_seq]))
        return m + torch.log(s)

    def seq_argmax(self, x: torch.Tensor) -> torch.Tensor:
        """[G, S] -> [B]: index (in its row) of the best state of each sequence."""
        if self.shared:
            return x.argmax(dim=1)
        m = self.seq_max(x)
        idx = torch.arange(self.S, device=x.device)
        cand = torch.where(x[0] == m[self.state_seq], idx, -1)
        return torch.full((self.B,), -1, dtype=torch.long, device=x.device).scatter_reduce_(
            0, self.state_seq, cand, "amax")

    def initial(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        alpha = torch.full((self.G, self.S), NEG_INF, dtype=dtype, device=device)
        alpha[self.row, self.start] = 0.0
        return alpha

    def scatter_max(self, v: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        out = v.new_full((self.G, self.S), NEG_INF)
        return out.scatter_reduce_(1, index.expand(self.G, -1), v, "amax")

    def scatter_logsumexp(self, v: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        m = _finite_or_zero(self.scatter_max(v, index))
        s = torch.zeros_like(m).index_add_(1, index, torch.exp(v - m.index_select(1, index)))
        return m + torch.log(s)


def _finite_or_zero(x: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isfinite(x), x, torch.zeros_like(x))


def _compute_dtype(dense_scores: torch.Tensor) -> torch.dtype:
    return torch.float64 if dense_scores.dtype == torch.float64 else torch.float32


@dataclass
class _ForwardResult:
    totals: torch.Tensor                  # float64 [B]
    alphas: Optional[torch.Tensor]        # [T+1, G, S] normalised state scores (log semiring)
    offsets: Optional[torch.Tensor]       # float64 [T+1, B], removed by the normalisation
    backpointers: Optional[torch.Tensor]  # int32 [T, G, S]: best arc entering a state at t
    last_alpha: torch.Tensor              # [G, S] state scores after each sequence's last frame


def _forward(lay: _Layout, dense: torch.Tensor, arc_scores: torch.Tensor, final: torch.Tensor,
             lengths: torch.Tensor, tropical: bool, keep_alphas: bool) -> _ForwardResult:
    T = int(lengths.max()) if lay.B else 0
    device, dtype = dense.device, dense.dtype
    alpha = lay.initial(dtype, device)
    offset = torch.zeros(lay.B, dtype=torch.float64, device=device)
    alphas = offsets = backpointers = None
    if keep_alphas:
        alphas = torch.empty((T + 1, lay.G, lay.S), dtype=dtype, device=device)
        offsets = torch.empty((T + 1, lay.B), dtype=torch.float64, device=device)
        alphas[0], offsets[0] = alpha, offset
    if tropical:
        backpointers = torch.empty((T, lay.G, lay.S), dtype=torch.int32, device=device)
        arc_ids = torch.arange(lay.A, device=device)
    for t in range(T):
        emissions = dense[:, t].reshape(lay.G, -1)
        v = alpha.index_select(1, lay.src) + emissions.index_select(1, lay.col) + arc_scores
        if tropical:
            new = lay.scatter_max(v, lay.dst)
            # The arc that attains the max (the highest-numbered one on ties).
            cand = torch.where(v == new.index_select(1, lay.dst), arc_ids, -1)
            best = torch.full((lay.G, lay.S), -1, dtype=torch.long, device=device)
            backpointers[t] = best.scatter_reduce_(1, lay.dst.expand(lay.G, -1), cand, "amax")
        else:
            new = lay.scatter_logsumexp(v, lay.dst)
        norm = _finite_or_zero(lay.seq_max(new))
        active = lengths > t
        alpha = torch.where(lay.per_state(active), new - lay.per_state(norm), alpha)
        offset = offset + torch.where(active, norm.double(), 0.0)
        if keep_alphas:
            alphas[t + 1], offsets[t + 1] = alpha, offset
    end = alpha + final
    totals = (lay.seq_max(end) if tropical else lay.seq_logsumexp(end)).double() + offset
    return _ForwardResult(totals, alphas, offsets, backpointers, alpha)


def _backtrace(lay: _Layout, fw: _ForwardResult, final: torch.Tensor,
               lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Best paths from tropical backpointers: (arcs [B, T] in layout numbering, -1 where
    there is none; final state [B] in layout numbering, -1 where there is no path)."""
    T = fw.backpointers.shape[0]
    has_path = torch.isfinite(fw.totals)
    state = torch.where(has_path, lay.seq_argmax(fw.last_alpha + final), -1)
    final_state = state
    arcs = torch.full((lay.B, T), -1, dtype=torch.long, device=lengths.device)
    if lay.A == 0:  # then no sequence with frames has a path
        return arcs, final_state
    for t in reversed(range(T)):
        active = (lengths > t) & has_path
        arc = fw.backpointers[t][lay.row, state.clamp(min=0)].long()
        arc = torch.where(active, arc, -1)
        arcs[:, t] = arc
        state = torch.where(active, lay.src[arc.clamp(min=0)], state)
    return arcs, final_state


def _posterior_pass(lay: _Layout, dense: torch.Tensor, arc_scores: torch.Tensor, final: torch.Tensor,
                    lengths: torch.Tensor, fw: _ForwardResult, weights: torch.Tensor,
                    on_frame: Callable[[int, torch.Tensor], None]) -> torch.Tensor:
    """Backward recursion: calls ``on_frame(t, post)`` for t = T-1..0 with the arc
    posteriors [G, A] of frame t times the sequence's weight (0 for frames past the end
    and for sequences without a path); returns the final-state posteriors [G, S], weighted."""
    T = fw.alphas.shape[0] - 1
    ok = torch.isfinite(fw.totals)
    totals = torch.where(ok, fw.totals, 0.0)
    weights = torch.where(ok, weights, torch.zeros_like(weights))

    shift = (fw.offsets[T] - totals).to(dense.dtype)
    final_post = torch.exp(fw.alphas[T] + final + lay.per_state(shift)) * lay.per_state(weights)

    beta = final.expand(lay.G, lay.S)
    norm = _finite_or_zero(lay.seq_max(beta))
    beta = beta - lay.per_state(norm)
    beta_offset = norm.double()
    for t in reversed(range(T)):
        emissions = dense[:, t].reshape(lay.G, -1)
        v = beta.index_select(1, lay.dst) + emissions.index_select(1, lay.col) + arc_scores
        in_seq = lengths > t
        active = in_seq & ok
        shift = torch.where(active, fw.offsets[t] + beta_offset - totals, 0.0).to(dense.dtype)
        log_post = fw.alphas[t].index_select(1, lay.src) + v + lay.per_arc(shift)
        post = torch.where(lay.per_arc(active), torch.exp(log_post) * lay.per_arc(weights), 0.0)
        on_frame(t, post)
        new = lay.scatter_logsumexp(v, lay.src)
        norm = _finite_or_zero(lay.seq_max(new))
        beta = torch.where(lay.per_state(in_seq), new - lay.per_state(norm), beta)
        beta_offset = beta_offset + torch.where(in_seq, norm.double(), 0.0)
    return final_post


class _IntersectDense(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dense_scores: torch.Tensor, arc_scores: torch.Tensor, final_scores: torch.Tensor,
                lay: _Layout, lengths: torch.Tensor, tropical: bool) -> torch.Tensor:
        cdtype = _compute_dtype(dense_scores)
        dense, arcs, final = dense_scores.to(cdtype), arc_scores.to(cdtype), final_scores.to(cdtype)
        fw = _forward(lay, dense, arcs, final, lengths, tropical, keep_alphas=not tropical)
        ctx.lay, ctx.tropical, ctx.fw = lay, tropical, fw
        ctx.dtypes = (dense_scores.dtype, arc_scores.dtype, final_scores.dtype)
        ctx.save_for_backward(dense, arcs, final, lengths)
        return fw.totals.to(dense_scores.dtype)

    @staticmethod
    def backward(ctx, grad_totals: torch.Tensor):
        dense, arcs, final, lengths = ctx.saved_tensors
        lay, fw = ctx.lay, ctx.fw
        B, T, D = dense.shape
        weights = grad_totals.to(dense.dtype)
        grad_dense = torch.zeros_like(dense)
        grad_arcs = torch.zeros_like(arcs)
        grad_final = torch.zeros_like(final)
        if ctx.tropical:
            path, final_state = _backtrace(lay, fw, final, lengths)
            seq, frame = torch.nonzero(path >= 0, as_tuple=True)
            arc = path[seq, frame]
            grad_dense.index_put_((seq, frame, lay.labels[arc]), weights[seq], accumulate=True)
            grad_arcs.index_add_(0, arc, weights[seq])
            has_path = final_state >= 0
            grad_final.index_add_(0, final_state[has_path], weights[has_path])
        else:
            def on_frame(t: int, post: torch.Tensor) -> None:
                cols = torch.zeros((lay.G, B * D // lay.G), dtype=dense.dtype, device=dense.device)
                grad_dense[:, t] = cols.index_add_(1, lay.col, post).view(B, D)
                grad_arcs.add_(post.sum(0))

            final_post = _posterior_pass(lay, dense, arcs, final, lengths, fw, weights, on_frame)
            grad_final = final_post.sum(0)
        dense_dtype, arc_dtype, final_dtype = ctx.dtypes
        return (grad_dense.to(dense_dtype),
                grad_arcs.to(arc_dtype) if ctx.needs_input_grad[1] else None,
                grad_final.to(final_dtype) if ctx.needs_input_grad[2] else None,
                None, None, None)


def _check_semiring(semiring: str) -> bool:
    if semiring not in SEMIRINGS:
        raise ValueError(f"semiring must be one of {SEMIRINGS}, got {semiring!r}")
    return semiring == "tropical"


def intersect_dense(graphs: Graphs, dense: DenseFsaVec, semiring: str = "log") -> torch.Tensor:
    """Total score of each sequence [B] (dtype of the dense scores); see the module docstring.

    ``graphs``: one `Fsa` shared by all sequences, or an `FsaVec` with one graph per
    sequence. Differentiable w.r.t. ``dense.scores``, ``graphs.scores`` and
    ``graphs.final_scores``. A sequence that no path accepts totals -inf and gets zero
    gradient.
    """
    tropical = _check_semiring(semiring)
    lay = _Layout(graphs, dense)
    return _IntersectDense.apply(dense.scores, graphs.scores, graphs.final_scores, lay, dense.lengths, tropical)


def arc_posteriors(graphs: Graphs, dense: DenseFsaVec) -> Tuple[List[torch.Tensor], torch.Tensor]:
    """Per-frame arc posteriors (log semiring) and the totals.

    Returns ``(posts, totals)``: ``posts[b]`` is a [lengths[b], num_arcs of b's graph]
    tensor whose row t is the posterior probability of each arc consuming frame t (rows
    sum to 1 when the sequence has a path, else they are 0). Memory is T x (arcs) per
    sequence: for large graphs use the gradient of `intersect_dense` (label occupancies).
    """
    lay = _Layout(graphs, dense)
    cdtype = _compute_dtype(dense.scores)
    with torch.no_grad():
        d = dense.scores.to(cdtype)
        a, f = graphs.scores.to(cdtype), graphs.final_scores.to(cdtype)
        fw = _forward(lay, d, a, f, dense.lengths, tropical=False, keep_alphas=True)
        T = fw.alphas.shape[0] - 1
        frames = torch.zeros((T, lay.G, lay.A), dtype=cdtype, device=d.device)

        def on_frame(t: int, post: torch.Tensor) -> None:
            frames[t] = post

        ones = torch.ones(lay.B, dtype=cdtype, device=d.device)
        _posterior_pass(lay, d, a, f, dense.lengths, fw, ones, on_frame)
    lengths = dense.lengths.tolist()
    if lay.shared:
        posts = [frames[:n, b] for b, n in enumerate(lengths)]
    else:
        splits = graphs.arc_splits.tolist()
        posts = [frames[:n, 0, splits[b]:splits[b + 1]] for b, n in enumerate(lengths)]
    return posts, fw.totals.to(dense.scores.dtype)


@dataclass
class BestPaths:
    """Viterbi best path of each sequence (T is the longest sequence's length).

    ``arcs`` [B, T] long: arc index (in the sequence's own graph) consuming each frame,
    -1 past the sequence's length or when no path exists; ``labels`` [B, T]: their labels
    (dense columns), -1 likewise; ``aux_labels`` [B, T]: their aux labels, 0 (no output)
    likewise; ``final_states`` [B]: the final state reached (-1 when no path);
    ``scores`` [B]: the path scores (the tropical totals; -inf when no path).
    """
    scores: torch.Tensor
    arcs: torch.Tensor
    labels: torch.Tensor
    aux_labels: torch.Tensor
    final_states: torch.Tensor

    def aux_label_sequences(self) -> List[List[int]]:
        """Per sequence, the nonzero aux labels along the best path (e.g. the words)."""
        return [[a for a in row if a != 0] for row in self.aux_labels.tolist()]


def best_paths(graphs: Graphs, dense: DenseFsaVec) -> BestPaths:
    """Viterbi (tropical) best path of each sequence through its graph, for alignment."""
    lay = _Layout(graphs, dense)
    cdtype = _compute_dtype(dense.scores)
    with torch.no_grad():
        final = graphs.final_scores.to(cdtype)
        fw = _forward(lay, dense.scores.to(cdtype), graphs.scores.to(cdtype), final,
                      dense.lengths, tropical=True, keep_alphas=False)
        arcs, final_state = _backtrace(lay, fw, final, dense.lengths)
    valid = arcs >= 0
    safe = arcs.clamp(min=0)
    labels = torch.where(valid, lay.labels[safe] if lay.A else safe, -1)
    aux = graphs.arcs[:, 3].long()
    aux_labels = torch.where(valid, aux[safe] if lay.A else safe, 0)
    local_arcs = torch.where(valid, arcs - lay.arc_offset[:, None], -1)
    local_final = torch.where(final_state >= 0, final_state - lay.state_offset, -1)
    return BestPaths(fw.totals.to(dense.scores.dtype), local_arcs, labels, aux_labels, local_final)
