"""LF-MMI loss: gradients (gradcheck), numerator against brute force, zero objective at a perfect fit."""
import math

import pytest
import torch

from frugal.graph.chain import ChainLexicon, NumeratorBuilder, NumeratorGraphs
from frugal.graph.den_graph import make_den_graph
from frugal.graph.hmm_topo import CHAIN_TOPOLOGY, PdfMap
from frugal.lang.symbols import SymbolTable
from frugal.lm.phone_lm import estimate_phone_lm
from frugal.losses import lfmmi_loss
from test_chain_graphs import (A, B, PHONES, den_forward, expected_numerator, toy_lexicon,
                               toy_phone_lm)


def toy_setup(context_width=1):
    pdf_map = PdfMap(PHONES, CHAIN_TOPOLOGY, context_width)
    den = make_den_graph(toy_phone_lm(), pdf_map, PHONES)
    builder = NumeratorBuilder(toy_lexicon(), pdf_map, den.graph)
    nums = NumeratorGraphs.from_graphs([builder.build(["X", "Y"]), builder.build(["Y"])])
    return pdf_map, den, nums


def test_numerator_equals_brute_force_sum_over_paths():
    pdf_map, den, nums = toy_setup(context_width=2)
    T = 6
    torch.manual_seed(0)
    y = torch.randn(1, T, pdf_map.num_pdfs, dtype=torch.float64)
    one = NumeratorGraphs.from_graphs([NumeratorBuilder(toy_lexicon(), pdf_map, den.graph).build(["X", "Y"])])
    out = lfmmi_loss(y, torch.tensor([T]), one.fsas, den.graph, leaky_hmm_coefficient=0.1, l2_regularize=0.0)
    total = 0.0
    for seq, w in expected_numerator(T, pdf_map).items():
        total += w * den_forward(den, seq) * math.exp(sum(float(y[0, t, p]) for t, p in enumerate(seq)))
    assert float(out["num"]) * T == pytest.approx(math.log(total), rel=1e-6)  # float32 arc scores


def test_gradcheck_chain_output_and_xent():
    pdf_map, den, nums = toy_setup()
    torch.manual_seed(1)
    lengths = torch.tensor([6, 3])
    y = torch.randn(2, 6, pdf_map.num_pdfs, dtype=torch.float64, requires_grad=True)
    xent = torch.randn(2, 6, pdf_map.num_pdfs, dtype=torch.float64).log_softmax(-1).requires_grad_(True)

    def loss_of_y(y):
        return lfmmi_loss(y, lengths, nums.fsas, den.graph, None, 0.1, l2_regularize=0.01)["loss"]

    def loss_of_xent(x):
        return lfmmi_loss(y.detach(), lengths, nums.fsas, den.graph, x, 0.1, 0.01, 0.3)["loss"]

    assert torch.autograd.gradcheck(loss_of_y, (y,), eps=1e-6, atol=1e-7, fast_mode=True)
    assert torch.autograd.gradcheck(loss_of_xent, (xent,), eps=1e-6, atol=1e-7, fast_mode=True)
    # The xent regulariser does not change the chain output's gradient (Kaldi semantics).
    g1, = torch.autograd.grad(lfmmi_loss(y, lengths, nums.fsas, den.graph, None)["loss"], y)
    g2, = torch.autograd.grad(lfmmi_loss(y, lengths, nums.fsas, den.graph, xent.detach())["loss"], y)
    assert torch.allclose(g1, g2)
    # Padding frames get no gradient.
    assert bool((g1[1, 3:] == 0).all())


def test_objective_is_negative_and_parts_are_consistent():
    pdf_map, den, nums = toy_setup(context_width=2)
    lengths = torch.tensor([7, 4])
    for seed in range(3):
        torch.manual_seed(seed)
        y = 3 * torch.randn(2, 7, pdf_map.num_pdfs)
        xent = torch.randn(2, 7, pdf_map.num_pdfs).log_softmax(-1)
        out = lfmmi_loss(y, lengths, nums.fsas, den.graph, xent, 0.1, 0.0005, 0.1)
        assert float(out["objf"]) < 0
        assert float(out["objf"]) == pytest.approx(float(out["num"] - out["den"]), rel=1e-5)
        sq = sum(float(y[b, :n].pow(2).sum()) for b, n in enumerate(lengths.tolist()))
        assert float(out["l2"]) == pytest.approx(0.5 * 0.0005 * sq / 11, rel=1e-5)
        assert float(out["loss"].detach()) == pytest.approx(
            float(-out["objf"] + out["l2"] - 0.1 * out["xent"]), rel=1e-5)
        assert float(out["frames"]) == 11 and int(out["skipped"]) == 0


def test_zero_objective_for_a_perfect_fit_without_leak():
    """den == num when the phone LM knows one sentence and the output picks one alignment."""
    pdf_map = PdfMap(PHONES, CHAIN_TOPOLOGY, 2)
    lm = estimate_phone_lm([(1.0, [[A, B]])], ngram_order=3)
    den = make_den_graph(lm, pdf_map, PHONES)
    words = SymbolTable([("<eps>", 0), ("X", 1)])
    lex = ChainLexicon({1: [((A, B), 1.0)]}, None, 0.0, set(), words, SymbolTable(), None)
    nums = NumeratorGraphs.from_graphs([NumeratorBuilder(lex, pdf_map, den.graph).build(["X"])])
    path = [pdf_map.pdf(0, A, 0), pdf_map.pdf(0, A, 1), pdf_map.pdf(0, A, 1),
            pdf_map.pdf(A, B, 0), pdf_map.pdf(A, B, 1)]
    y = torch.full((1, 5, pdf_map.num_pdfs), -30.0, dtype=torch.float64)
    y[0, torch.arange(5), path] = 0.0
    perfect = lfmmi_loss(y, torch.tensor([5]), nums.fsas, den.graph, leaky_hmm_coefficient=0.0)
    assert abs(float(perfect["objf"])) < 1e-6  # float32 arc scores
    leaky = lfmmi_loss(y, torch.tensor([5]), nums.fsas, den.graph, leaky_hmm_coefficient=0.1)
    assert float(leaky["objf"]) < -1e-3
    flat = lfmmi_loss(torch.zeros_like(y), torch.tensor([5]), nums.fsas, den.graph, leaky_hmm_coefficient=0.0)
    assert float(flat["objf"]) < -0.1


def test_sequences_without_numerator_path_are_skipped():
    pdf_map, den, nums = toy_setup()
    y = torch.randn(2, 6, pdf_map.num_pdfs)
    # "X Y" needs at least 3 frames: with 2 it has no path and is left out.
    out = lfmmi_loss(y, torch.tensor([2, 3]), nums.fsas, den.graph)
    assert int(out["skipped"]) == 1 and float(out["frames"]) == 3
    assert math.isfinite(float(out["loss"].detach()))
