"""intersect_dense / arc_posteriors / best_paths against independent references:
torch's ctc_loss, OpenFst shortest paths (kaldifst), brute-force enumeration in float64."""
import math

import kaldifst
import pytest
import torch
import torch.nn.functional as F

from fsa_testing import DEVICES, enumerate_paths, logsumexp, random_fsa
from frugal.fsa import (DenseFsaVec, Fsa, FsaVec, arc_posteriors, best_paths, ctc_graph, ctc_graphs,
                        intersect_dense, to_openfst)


def _ctc_batch(gen, B=5, T=40, D=6):
    """Random logits, lengths and targets with repeated labels (some back to back)."""
    logits = torch.randn(B, T, D, generator=gen) * 2
    lengths = torch.tensor([T, T - 3, 17, 29, 8][:B])
    targets = [[1, 1, 2, 2, 2], [3, 4, 4, 5, 1, 1, 1], [2], [5, 5, 5, 5, 5, 5, 1, 2], [1, 2, 1]][:B]
    return logits, lengths, targets


def _torch_ctc(log_probs, lengths, targets):
    flat = torch.tensor([t for seq in targets for t in seq])
    return F.ctc_loss(log_probs.transpose(0, 1), flat, lengths, torch.tensor([len(t) for t in targets]),
                      blank=0, reduction="sum", zero_infinity=False)


def _rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-30)).item()


@pytest.mark.parametrize("device", DEVICES)
def test_graph_ctc_matches_torch_ctc_loss(device):
    gen = torch.Generator().manual_seed(1)
    logits, lengths, targets = _ctc_batch(gen)
    logits, lengths = logits.to(device), lengths.to(device)

    ours_logits = logits.clone().requires_grad_()
    ours_lp = ours_logits.log_softmax(-1)
    ours_lp.retain_grad()
    loss = -intersect_dense(ctc_graphs(targets).to(device), DenseFsaVec(ours_lp, lengths)).sum()
    loss.backward()

    ref_logits = logits.clone().requires_grad_()
    ref_lp = ref_logits.log_softmax(-1)
    ref_lp.retain_grad()
    ref = _torch_ctc(ref_lp, lengths, targets)
    ref.backward()

    assert abs(loss.item() - ref.item()) / abs(ref.item()) <= 1e-5
    # torch's ctc_loss returns d/d log_probs as if they were renormalised: exp(lp) - occupancy.
    # Our gradient is the plain partial derivative -occupancy; both must give the same
    # occupancies, and the same gradient w.r.t. the logits.
    valid = (torch.arange(logits.shape[1], device=device)[None, :] < lengths[:, None])[..., None]
    ref_occupancy = torch.where(valid, ref_lp.exp() - ref_lp.grad, 0.0)
    assert _rel_err(-ours_lp.grad, ref_occupancy) <= 1e-4
    assert _rel_err(ours_logits.grad, ref_logits.grad) <= 1e-4
    # Padding frames get no gradient.
    assert (ours_lp.grad[~valid.expand_as(ours_lp.grad)] == 0).all()


@pytest.mark.parametrize("device", DEVICES)
def test_shared_graph_equals_per_sequence_graphs_and_ctc_loss(device):
    gen = torch.Generator().manual_seed(2)
    logits, lengths, _ = _ctc_batch(gen, B=4, T=30)
    tokens = [2, 2, 3, 1]
    lp = logits.log_softmax(-1).to(device)
    lengths = lengths.to(device)
    dense = DenseFsaVec(lp, lengths)
    shared = intersect_dense(ctc_graph(tokens).to(device), dense)
    per_seq = intersect_dense(ctc_graphs([tokens] * 4).to(device), dense)
    ref = -torch.stack([_torch_ctc(lp[b:b + 1], lengths[b:b + 1], [tokens]) for b in range(4)])
    torch.testing.assert_close(shared, ref, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(per_seq, ref, rtol=1e-5, atol=1e-4)


def _random_case(gen, B, T, D, *, shared, unique_aux=False, num_states=5, num_arcs=10):
    dense = torch.randn(B, T, D, generator=gen, dtype=torch.float64)
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    lengths[0] = T
    if shared:
        graphs = random_fsa(gen, num_states, num_arcs, D, num_final=2, unique_aux=unique_aux)
        per_seq = [graphs] * B
    else:
        per_seq = [random_fsa(gen, num_states, num_arcs, D, num_final=1 + b % 3, unique_aux=unique_aux)
                   for b in range(B)]
        graphs = FsaVec.from_fsas(per_seq)
    return graphs, per_seq, dense, lengths


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shared", [True, False])
def test_totals_equal_brute_force_enumeration(device, shared):
    gen = torch.Generator().manual_seed(3)
    for _ in range(4):
        graphs, per_seq, dense, lengths = _random_case(gen, B=3, T=4, D=3, shared=shared)
        lengths[2] = 0  # an empty sequence: the start state's final score, if any
        d = DenseFsaVec(dense.to(device), lengths.to(device))
        log_tot = intersect_dense(graphs.to(device), d, "log").cpu()
        trop_tot = intersect_dense(graphs.to(device), d, "tropical").cpu()
        for b, fsa in enumerate(per_seq):
            scores = [s for s, _ in enumerate_paths(fsa, dense[b, :lengths[b]])]
            assert math.isclose(log_tot[b].item(), logsumexp(scores), rel_tol=1e-9, abs_tol=1e-9)
            assert math.isclose(trop_tot[b].item(), max(scores, default=-math.inf), rel_tol=1e-9, abs_tol=1e-9)


def test_sequence_without_path_totals_minus_inf_and_zero_gradient():
    # Label 1 only leads to state 1, which is not final; a 1-frame sequence has no path.
    fsa = Fsa.from_str("0 1 1 0 0.0\n0 0 0 0 0.0\n0 0.0\n")
    dense = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)
    d = DenseFsaVec(dense, torch.tensor([3, 1]))
    with torch.no_grad():
        dense[1, 0, 0] = -math.inf
    tot = intersect_dense(fsa, d)
    assert tot[1].item() == -math.inf and math.isfinite(tot[0].item())
    tot[0].backward()
    assert torch.isfinite(dense.grad).all() and (dense.grad[1] == 0).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shared", [True, False])
def test_gradcheck(device, shared):
    gen = torch.Generator().manual_seed(4)
    while True:  # finite differences need every sequence to have a path
        graphs, _, dense, lengths = _random_case(gen, B=3, T=5, D=3, shared=shared)
        if torch.isfinite(intersect_dense(graphs, DenseFsaVec(dense, lengths))).all():
            break
    graphs = graphs.to(device)
    dense = dense.to(device).requires_grad_()
    arc_scores = graphs.scores.double().requires_grad_()
    final_scores = graphs.final_scores.double()
    finite = torch.isfinite(final_scores)
    final_free = final_scores[finite].clone().requires_grad_()
    lengths = lengths.to(device)

    def fn(x, a, f):
        final = torch.full_like(final_scores, -math.inf).masked_scatter(finite, f)
        if shared:
            g = Fsa(graphs.arcs, a, final)
        else:
            g = FsaVec(graphs.arcs, a, final, graphs.arc_splits, graphs.state_splits)
        return intersect_dense(g, DenseFsaVec(x, lengths), "log")

    assert torch.autograd.gradcheck(fn, (dense, arc_scores, final_free))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shared", [True, False])
def test_arc_posteriors_sum_to_one_and_match_gradient(device, shared):
    gen = torch.Generator().manual_seed(5)
    graphs, per_seq, dense, lengths = _random_case(gen, B=4, T=12, D=4, shared=shared,
                                                   num_states=6, num_arcs=20)
    graphs = graphs.to(device)
    x = dense.float().to(device).requires_grad_()
    d = DenseFsaVec(x, lengths.to(device))
    posts, totals = arc_posteriors(graphs, d)
    intersect_dense(graphs, d).sum().backward()
    for b, post in enumerate(posts):
        assert post.shape == (lengths[b].item(), per_seq[b].num_arcs)
        if math.isfinite(totals[b].item()):
            torch.testing.assert_close(post.sum(1), torch.ones_like(post[:, 0]), rtol=0, atol=1e-5)
            # The label occupancy (gradient) is the sum of the posteriors of the arcs with that label.
            occ = torch.zeros(post.shape[0], x.shape[2], device=device, dtype=post.dtype)
            occ.index_add_(1, per_seq[b].labels.long().to(device), post)
            torch.testing.assert_close(x.grad[b, :post.shape[0]], occ, rtol=1e-4, atol=1e-5)


def _openfst_best_path(fsa: Fsa, frames: torch.Tensor):
    """Best path through ``linear acceptor of frames o fsa`` with OpenFst: (score, arc ids)."""
    linear = kaldifst.StdVectorFst()
    for _ in range(frames.shape[0] + 1):
        linear.add_state()
    linear.start = 0
    for t, row in enumerate(frames.tolist()):
        for d, score in enumerate(row):
            linear.add_arc(t, kaldifst.StdArc(d + 1, d + 1, -score, t + 1))
    linear.set_final(frames.shape[0], 0.0)
    graph = to_openfst(fsa, label_offset=1)
    kaldifst.arcsort(graph, sort_type="ilabel")
    composed = kaldifst.compose(linear, graph)
    if composed.num_states == 0:
        return -math.inf, []
    ok, _, olabels, weight = kaldifst.get_linear_symbol_sequence(kaldifst.shortest_path(composed))
    assert ok
    return -weight.value, [o - 1 for o in olabels]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shared", [True, False])
def test_best_paths_match_openfst_shortest_path(device, shared):
    gen = torch.Generator().manual_seed(6)
    for _ in range(3):
        graphs, per_seq, dense, lengths = _random_case(gen, B=4, T=15, D=4, shared=shared, unique_aux=True,
                                                       num_states=7, num_arcs=25)
        dense = dense.float()
        d = DenseFsaVec(dense.to(device), lengths.to(device))
        bp = best_paths(graphs.to(device), d)
        trop = intersect_dense(graphs.to(device), d, "tropical")
        torch.testing.assert_close(bp.scores, trop)
        for b, fsa in enumerate(per_seq):
            n = lengths[b].item()
            ref_score, ref_arcs = _openfst_best_path(fsa, dense[b, :n])
            if ref_score == -math.inf:
                assert bp.scores[b].item() == -math.inf and (bp.arcs[b] == -1).all()
                continue
            assert math.isclose(bp.scores[b].item(), ref_score, rel_tol=1e-5, abs_tol=1e-4)
            arcs = bp.arcs[b, :n].cpu()
            assert arcs.tolist() == ref_arcs
            assert (bp.arcs[b, n:] == -1).all()
            # The path is consistent: it starts at 0, is connected, ends in the reported
            # final state, and its score recomputed from the arcs is the tropical total.
            src, dst = fsa.src[arcs].long(), fsa.dst[arcs].long()
            assert src[0] == 0 and (src[1:] == dst[:-1]).all() and dst[-1] == bp.final_states[b].cpu()
            assert bp.labels[b, :n].cpu().tolist() == fsa.labels[arcs].tolist()
            assert bp.aux_labels[b, :n].cpu().tolist() == [a + 1 for a in ref_arcs]
            rescored = (fsa.scores[arcs].double().sum() + dense[b, torch.arange(n), fsa.labels[arcs].long()].double().sum()
                        + fsa.final_scores[dst[-1]].double())
            assert math.isclose(rescored.item(), trop[b].item(), rel_tol=1e-5, abs_tol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_tropical_gradient_is_best_path_indicator(device):
    gen = torch.Generator().manual_seed(7)
    graphs, _, dense, lengths = _random_case(gen, B=3, T=8, D=3, shared=False, num_states=5, num_arcs=14)
    graphs = graphs.to(device)
    x = dense.to(device).requires_grad_()
    d = DenseFsaVec(x, lengths.to(device))
    intersect_dense(graphs, d, "tropical").sum().backward()
    bp = best_paths(graphs, d)
    expected = torch.zeros_like(x)
    for b in range(3):
        for t in range(lengths[b].item()):
            if bp.labels[b, t] >= 0:
                expected[b, t, bp.labels[b, t]] += 1
    torch.testing.assert_close(x.grad, expected)


def test_ctc_best_path_reads_back_tokens_and_long_utterance_is_stable():
    # A 1500-frame utterance: the log total in float32 must agree with float64 (the
    # per-frame renormalisation keeps float32 precise), and with torch's ctc_loss.
    gen = torch.Generator().manual_seed(8)
    T, D = 1500, 30
    tokens = torch.randint(1, D, (300,), generator=gen).tolist()
    lp = (torch.randn(1, T, D, generator=gen) * 3).log_softmax(-1)
    lengths = torch.tensor([T])
    g = ctc_graphs([tokens])
    tot32 = intersect_dense(g, DenseFsaVec(lp, lengths))
    tot64 = intersect_dense(g, DenseFsaVec(lp.double(), lengths))
    ref = -_torch_ctc(lp.double(), lengths, [tokens])
    assert abs(tot64.item() - ref.item()) <= 1e-9 * abs(ref.item())
    assert abs(tot32.item() - tot64.item()) <= 1e-6 * abs(tot64.item())
    bp = best_paths(g, DenseFsaVec(lp, lengths))
    assert bp.aux_label_sequences() == [tokens]


def test_padding_frames_do_not_change_results():
    gen = torch.Generator().manual_seed(9)
    graphs, _, dense, lengths = _random_case(gen, B=3, T=6, D=3, shared=True)
    lengths = torch.tensor([6, 2, 4])
    other = dense.clone()
    for b in range(3):
        other[b, lengths[b]:] = torch.randn(6 - lengths[b].item(), 3, generator=gen, dtype=torch.float64)
    for semiring in ("log", "tropical"):
        a = intersect_dense(graphs, DenseFsaVec(dense, lengths), semiring)
        b = intersect_dense(graphs, DenseFsaVec(other, lengths), semiring)
        assert torch.equal(a, b)


def test_bad_inputs_are_rejected():
    fsa = Fsa.from_str("0 1 3 0 0.0\n1 0.0\n")
    dense = DenseFsaVec(torch.zeros(2, 4, 3), torch.tensor([4, 2]))
    with pytest.raises(ValueError, match="labels must lie in"):
        intersect_dense(fsa, dense)
    with pytest.raises(ValueError, match="1 graphs for a batch of 2"):
        intersect_dense(FsaVec.from_fsas([Fsa.from_str("0 1 1 0 0.0\n1\n")]), dense)
    with pytest.raises(ValueError, match="semiring"):
        intersect_dense(fsa, dense, "max")
    with pytest.raises(ValueError, match="lengths must lie"):
        DenseFsaVec(torch.zeros(2, 4, 3), torch.tensor([5, 2]))
    with pytest.raises(ValueError, match="int64"):
        DenseFsaVec(torch.zeros(2, 4, 3), torch.tensor([4, 2], dtype=torch.int32))
