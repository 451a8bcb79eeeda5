"""CTC losses: on token sequences (torch's ctc_loss) and over a lexicon (graph CTC).

- `ctc_loss`: characters, BPE pieces or phones given as one token sequence per utterance,
  through ``torch.nn.functional.ctc_loss`` (log-softmax applied here when asked).
- `lexicon_ctc_graphs` + `graph_ctc_loss`: when words have several pronunciations (token
  sequences), the utterance's graph is the CTC topology over the token acceptor of all
  pronunciation sequences (alternatives per word, weighted by their log-probabilities or
  not), intersected with the network output by the FSA core (`intersect_dense`). With one
  pronunciation a word this equals torch's CTC loss; with alternatives whose token
  sequences differ it is the log-sum-exp over them.

CTC expansion of a token acceptor A (epsilon-free, start state 0, states q, arcs a:
q -t-> q'), built directly: state B(q) = "in blank (or nothing yet) at q", state T(a) =
"emitting the token of arc a". Every arc consumes one frame: B(q) loops on blank and goes
to T(a) on t for each arc a leaving q; T(a) loops on t, goes to B(q') on blank, and to
T(a') on t' for each arc a' leaving q' whose token t' differs from t (equal tokens need a
blank between them). B(q) and T(a) with q' final are final. The start state is B(0),
which is the linear `ctc_graph`'s construction for a linear A. Aux labels: the token on
the frame that enters it (0 elsewhere).
"""
from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

from frugal.fsa.dense import DenseFsaVec
from frugal.fsa.fsa import Fsa, FsaVec
from frugal.fsa.intersect import intersect_dense

# word -> [(token ids, probability)]
Pronunciations = Dict[str, List[Tuple[Sequence[int], float]]]


def ctc_loss(log_probs: torch.Tensor, lengths: torch.Tensor, targets: Sequence[Sequence[int]],
             blank: int = 0, reduction: str = "sum", apply_log_softmax: bool = False) -> torch.Tensor:
    """torch's CTC loss (negative log-likelihood) on (B, T, C) outputs and token sequences.

    ``reduction``: "sum", "mean" (per frame: the sum over the total number of frames) or
    "none" (per sequence). Impossible alignments give inf (torch's ``zero_infinity=False``).
    """
    if apply_log_softmax:
        log_probs = log_probs.log_softmax(-1)
    flat = torch.tensor([t for seq in targets for t in seq], dtype=torch.int64)
    target_lengths = torch.tensor([len(seq) for seq in targets], dtype=torch.int64)
    losses = F.ctc_loss(log_probs.transpose(0, 1), flat, lengths.cpu().long(), target_lengths,
                        blank=blank, reduction="none")
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    if reduction == "mean":
        return losses.sum() / lengths.sum().clamp(min=1).to(losses.dtype)
    raise ValueError(f"reduction must be 'sum', 'mean' or 'none', got {reduction!r}")


def token_acceptor(words: Sequence[str], prons: Pronunciations, use_pron_probs: bool = False
                   ) -> Tuple[int, List[Tuple[int, int, int, float]], int]:
    """The word sequence's token acceptor: (num states, arcs (src, dst, token, log weight),
    final state). Each word is a bundle of pronunciation chains between two states."""
    arcs: List[Tuple[int, int, int, float]] = []
    num_states = 1
    cur = 0
    for w in words:
        if w not in prons or not prons[w]:
            raise KeyError(f"word {w!r} has no pronunciation")
        end = num_states
        num_states += 1
        for tokens, prob in prons[w]:
            if not tokens:
                raise ValueError(f"word {w!r} has an empty pronunciation")
            weight = math.log(prob) if use_pron_probs else 0.0
            src = cur
            for k, t in enumerate(tokens):
                if k == len(tokens) - 1:
                    dst = end
                else:
                    dst = num_states
                    num_states += 1
                arcs.append((src, dst, int(t), weight if k == 0 else 0.0))
                src = dst
        cur = end
    return num_states, arcs, cur


def ctc_expand(num_states: int, arcs: Sequence[Tuple[int, int, int, float]], finals: Sequence[int],
               blank: int = 0) -> Fsa:
    """The CTC graph of an epsilon-free token acceptor (see the module docstring)."""
    by_src: List[List[int]] = [[] for _ in range(num_states)]
    for a, (s, _, t, _) in enumerate(arcs):
        if t == blank or t < 0:
            raise ValueError(f"token {t} must be >= 0 and differ from the blank {blank}")
        by_src[s].append(a)
    # States: B(q) = q, T(a) = num_states + a.
    out: List[Tuple[int, int, int, int]] = []
    scores: List[float] = []

    def arc(s: int, d: int, label: int, aux: int, w: float) -> None:
        out.append((s, d, label, aux))
        scores.append(w)

    for q in range(num_states):
        arc(q, q, blank, 0, 0.0)
        for a in by_src[q]:
            arc(q, num_states + a, arcs[a][2], arcs[a][2], arcs[a][3])
    for a, (_, q2, t, _) in enumerate(arcs):
        ta = num_states + a
        arc(ta, ta, t, 0, 0.0)
        arc(ta, q2, blank, 0, 0.0)
        for a2 in by_src[q2]:
            if arcs[a2][2] != t:
                arc(ta, num_states + a2, arcs[a2][2], arcs[a2][2], arcs[a2][3])
    final = torch.full((num_states + len(arcs),), -math.inf)
    final_set = set(finals)
    for q in final_set:
        final[q] = 0.0
    for a, (_, q2, _, _) in enumerate(arcs):
        if q2 in final_set:
            final[num_states + a] = 0.0
    return Fsa(torch.tensor(out, dtype=torch.int32).reshape(-1, 4),
               torch.tensor(scores, dtype=torch.float32), final)


def lexicon_ctc_graphs(transcripts: Sequence[Sequence[str]], prons: Pronunciations,
                       blank: int = 0, use_pron_probs: bool = False) -> FsaVec:
    """One CTC graph over all pronunciations per transcript (words -> token alternatives)."""
    fsas = []
    for words in transcripts:
        n, arcs, final = token_acceptor(words, prons, use_pron_probs)
        fsas.append(ctc_expand(n, arcs, [final], blank))
    return FsaVec.from_fsas(fsas)


def graph_ctc_loss(log_probs: torch.Tensor, lengths: torch.Tensor, graphs: FsaVec,
                   reduction: str = "sum") -> torch.Tensor:
    """Negative log-likelihood of each sequence's CTC graph (inf where no path exists)."""
    dense = DenseFsaVec(log_probs, lengths.to(device=log_probs.device, dtype=torch.int64))
    losses = -intersect_dense(graphs.to(log_probs.device), dense, "log")
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    if reduction == "mean":
        return losses.sum() / lengths.sum().clamp(min=1).to(losses.dtype)
    raise ValueError(f"reduction must be 'sum', 'mean' or 'none', got {reduction!r}")
