"""wav2vec 2.0 pre-training losses: the contrastive task (thesis eq. 4.1), its negatives, and
the codebook diversity term.

For each masked step t, with context c_t and quantised target q_t:

    L_t = -log [ exp(sim(c_t, q_t) / kappa) / sum_{q in {q_t} + negatives} exp(sim(c_t, q) / kappa) ]

sim is the cosine similarity, kappa = ``temperature`` (fairseq logit_temp 0.1).

Decisions where fairseq differs or the description left room:
- Negatives come from the OTHER MASKED steps of the same utterance (the thesis: "sampled
  uniformly from other masked steps"); fairseq draws from all of the utterance's steps but t.
  They are drawn uniformly with replacement.
- An utterance with exactly one masked step has no other masked step: `sample_negatives`
  raises ValueError (span masking with mask_length > 1 never makes one).
- A negative equal to the positive (the same codevectors) gets logit -inf, as in fairseq.
- Accuracy counts a step as right when its positive logit is strictly above every
  negative's: ties (e.g. all candidates equal) count as wrong, as fairseq's argmax/argmin rule.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F


def sample_negatives(mask: torch.Tensor, num_negatives: int, generator: Optional[torch.Generator] = None
                     ) -> torch.Tensor:
    """(B, T, K) int64: for each masked step (b, t), K time indices of other masked steps of
    utterance b, uniform with replacement, never t itself; -1 at unmasked steps.

    Draws come from ``generator`` (torch's global one when None) on the CPU, utterance by
    utterance; the result is on ``mask``'s device.
    """
    if num_negatives < 1:
        raise ValueError(f"num_negatives must be positive (got {num_negatives})")
    m = mask.detach().to("cpu", torch.bool)
    B, T = m.shape
    out = torch.full((B, T, num_negatives), -1, dtype=torch.int64)
    for b in range(B):
        steps = m[b].nonzero(as_tuple=True)[0]  # the masked steps, ascending
        M = len(steps)
        if M == 0:
            continue
        if M == 1:
            raise ValueError(f"utterance {b} has one masked step (t = {int(steps[0])}): no other masked step "
                             f"to draw negatives from")
        # uniform over the M - 1 others: draw from [0, M - 2] and skip over the step's own rank
        r = torch.randint(0, M - 1, (M, num_negatives), generator=generator)
        r += (r >= torch.arange(M).unsqueeze(1)).long()
        out[b, steps] = steps[r]
    return out.to(mask.device)


def contrastive_loss(context: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, negatives: torch.Tensor,
                     temperature: float = 0.1) -> Tuple[torch.Tensor, int, float]:
    """(loss summed over the masked steps, number of masked steps, accuracy).

    ``context`` and ``targets`` (B, T, D), ``mask`` (B, T) bool, ``negatives`` (B, T, K) from
    `sample_negatives`. Candidates are [q_t, q_neg_1 .. q_neg_K]; cross-entropy with the
    positive at index 0. No masked step: loss 0 (still in the graph), accuracy 0.
    """
    b_idx, t_idx = mask.to(context.device).nonzero(as_tuple=True)
    n = len(b_idx)
    if n == 0:
        return (context.sum() + targets.sum()) * 0.0, 0, 0.0
    neg_t = negatives.to(context.device)[b_idx, t_idx]  # (N, K)
    c = context[b_idx, t_idx]  # (N, D)
    pos = targets[b_idx, t_idx]  # (N, D)
    neg = targets[b_idx.unsqueeze(1), neg_t]  # (N, K, D)
    candidates = torch.cat([pos.unsqueeze(1), neg], dim=1)  # (N, K + 1, D)
    logits = F.cosine_similarity(c.unsqueeze(1), candidates, dim=-1) / temperature
    duplicate = (neg == pos.unsqueeze(1)).all(-1)  # (N, K)
    logits = torch.cat([logits[:, :1], logits[:, 1:].masked_fill(duplicate, float("-inf"))], dim=1)
    loss = F.cross_entropy(logits, torch.zeros(n, dtype=torch.int64, device=logits.device), reduction="sum")
    with torch.no_grad():
        correct = logits[:, 0] > logits[:, 1:].max(dim=1).values
        accuracy = float(correct.float().mean())
    return loss, n, accuracy


def diversity_loss(prob_perplexity: torch.Tensor, num_codevectors: int) -> torch.Tensor:
    """(G V - perplexity) / (G V): 0 when every codebook entry is used equally often."""
    return (num_codevectors - prob_perplexity) / num_codevectors
