"""CTC: torch's ctc_loss wrapper and graph CTC over a lexicon against torch's ctc_loss."""
import pytest
import torch
import torch.nn.functional as F

from frugal.fsa import ctc_graph
from frugal.losses import ctc_expand, ctc_loss, graph_ctc_loss, lexicon_ctc_graphs, token_acceptor


def random_log_probs(B, T, C, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, C, generator=g, dtype=torch.float64).log_softmax(-1)


def torch_ctc(log_probs, lengths, seqs):
    """Per-sequence reference straight from torch."""
    return torch.stack([
        F.ctc_loss(log_probs[b:b + 1, :lengths[b]].transpose(0, 1), torch.tensor([seq]),
                   lengths[b:b + 1], torch.tensor([len(seq)]), reduction="none")[0]
        for b, seq in enumerate(seqs)])


def test_ctc_loss_wrapper_reductions():
    x = random_log_probs(3, 9, 6)
    lengths = torch.tensor([9, 7, 5])
    seqs = [[1, 2, 2, 3], [4], [5, 1]]
    ref = torch_ctc(x, lengths, seqs)
    assert torch.allclose(ctc_loss(x, lengths, seqs, reduction="none"), ref)
    assert torch.allclose(ctc_loss(x, lengths, seqs), ref.sum())
    assert torch.allclose(ctc_loss(x, lengths, seqs, reduction="mean"), ref.sum() / 21)
    raw = torch.randn(3, 9, 6, dtype=torch.float64)
    assert torch.allclose(ctc_loss(raw, lengths, seqs, apply_log_softmax=True),
                          ctc_loss(raw.log_softmax(-1), lengths, seqs))


PRONS_SINGLE = {"HI": [((1, 2), 1.0)], "YO": [((3, 3, 4), 1.0)], "A": [((2,), 1.0)]}


def test_graph_ctc_single_pronunciation_equals_torch():
    transcripts = [["HI", "YO"], ["A", "A", "HI"], ["YO"], []]
    seqs = [[1, 2, 3, 3, 4], [2, 2, 1, 2], [3, 3, 4], []]
    x = random_log_probs(4, 12, 5, seed=1)
    lengths = torch.tensor([12, 10, 7, 4])
    graphs = lexicon_ctc_graphs(transcripts, PRONS_SINGLE)
    got = graph_ctc_loss(x, lengths, graphs, reduction="none")
    assert torch.allclose(got, torch_ctc(x, lengths, seqs), atol=1e-9)
    # Gradients agree too, w.r.t. logits (torch's CTC gradient assumes a log-softmax input).
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    graph_ctc_loss(xa.log_softmax(-1), lengths, graphs).backward()
    ctc_loss(xb, lengths, seqs, apply_log_softmax=True).backward()
    assert torch.allclose(xa.grad, xb.grad, atol=1e-9)


def test_graph_ctc_two_pronunciations_is_log_sum_exp():
    prons = {"HI": [((1, 2), 1.0), ((1, 3, 3), 0.5)], "YO": [((4,), 1.0)]}
    x = random_log_probs(1, 10, 5, seed=2)
    lengths = torch.tensor([10])
    alt1 = torch_ctc(x, lengths, [[1, 2, 4]])
    alt2 = torch_ctc(x, lengths, [[1, 3, 3, 4]])
    plain = graph_ctc_loss(x, lengths, lexicon_ctc_graphs([["HI", "YO"]], prons))
    assert float(plain) == pytest.approx(float(-torch.logsumexp(torch.stack([-alt1, -alt2]), 0)), rel=1e-9)
    weighted = graph_ctc_loss(x, lengths, lexicon_ctc_graphs([["HI", "YO"]], prons, use_pron_probs=True))
    expected = -torch.logsumexp(torch.stack([-alt1, -alt2 + torch.log(torch.tensor(0.5, dtype=torch.float64))]), 0)
    assert float(weighted) == pytest.approx(float(expected), rel=1e-6)


def test_linear_expansion_is_the_ctc_graph_with_its_start_merged():
    """The linear CTC graph's start state and first blank state become one state B(0)."""
    n, arcs, final = token_acceptor(["YO"], PRONS_SINGLE)
    g = ctc_expand(n, arcs, [final])
    ref = ctc_graph([3, 3, 4])
    assert (g.num_states, g.num_arcs) == (ref.num_states - 1, ref.num_arcs - 2)
    with pytest.raises(ValueError):
        ctc_expand(2, [(0, 1, 0, 0.0)], [1])  # the blank is not a token
