"""RNN-T losses (full, simple, pruned) against brute force, each other and k2's own output."""
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from frugal.errors import FrugalError
from frugal.losses.rnnt import (do_rnnt_pruning, get_rnnt_prune_ranges, make_boundary,
                                rnnt_lattice_loglik, rnnt_loss, rnnt_loss_pruned, rnnt_loss_simple)

REF = Path("/work/shared/bench/rnnt_ref_small.npz")


def case(B=3, T=4, S=3, C=5, seed=0, modified=False):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, S + 1, C, generator=g, dtype=torch.float64)
    symbols = torch.randint(1, C, (B, S), generator=g)
    T_b = torch.randint(1, T + 1, (B,), generator=g)
    T_b[0] = T
    U_b = torch.randint(0, S + 1, (B,), generator=g)
    U_b[0] = S
    if modified:
        U_b = torch.minimum(U_b, T_b)
    return logits, symbols, make_boundary(T_b, U_b)


def brute_force(logits, symbols, boundary, modified):
    """-log of the sum over every alignment, enumerated, in float64."""
    lp = logits.log_softmax(-1)
    out = []
    for b in range(lp.shape[0]):
        U, T = int(boundary[b, 2]), int(boundary[b, 3])
        y = symbols[b, :U].tolist()
        paths = []
        if modified:  # each frame emits a blank or the next symbol
            for frames in itertools.combinations(range(T), U):
                u, score = 0, 0.0
                for t in range(T):
                    if t in frames:
                        score += lp[b, t, u, y[u]].item()
                        u += 1
                    else:
                        score += lp[b, t, u, 0].item()
                paths.append(score)
        else:  # T blanks and U symbols interleaved, the last move a blank
            for syms in itertools.combinations(range(T + U - 1), U):
                t = u = 0
                score = 0.0
                for k in range(T + U):
                    if k in syms:
                        score += lp[b, t, u, y[u]].item()
                        u += 1
                    else:
                        score += lp[b, t, u, 0].item()
                        t += 1
                paths.append(score)
        out.append(-np.logaddexp.reduce(paths) if paths else math.inf)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("modified", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_loss_equals_brute_force(modified, seed):
    logits, symbols, boundary = case(seed=seed, modified=modified)
    got = rnnt_loss(logits, symbols, boundary, modified=modified, reduction="none")
    assert torch.allclose(got, brute_force(logits, symbols, boundary, modified), rtol=1e-12)
    assert torch.allclose(rnnt_loss(logits, symbols, boundary, modified=modified), got.sum())
    assert torch.allclose(rnnt_loss(logits, symbols, boundary, modified=modified,
                                    reduction="mean"), got.mean())


def test_modified_impossible_is_inf_with_zero_grad():
    logits, symbols, _ = case(B=1, T=2, S=3)
    logits.requires_grad_()
    loss = rnnt_loss(logits, symbols, make_boundary([2], [3]), modified=True, reduction="none")
    assert math.isinf(loss.item())
    loss.sum().backward()
    assert torch.all(logits.grad == 0)


@pytest.mark.parametrize("modified", [False, True])
def test_full_loss_gradcheck(modified):
    logits, symbols, boundary = case(B=2, T=3, S=2, C=4, seed=3, modified=modified)
    logits.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x: rnnt_loss(x, symbols, boundary, modified=modified, reduction="none"), (logits,))


def test_padding_gets_zero_gradient():
    logits, symbols, _ = case(B=1, T=5, S=3)
    logits.requires_grad_()
    rnnt_loss(logits, symbols, make_boundary([3], [2])).backward()
    assert torch.all(logits.grad[:, 3:] == 0) and torch.all(logits.grad[:, :, 3:] == 0)
    assert logits.grad[:, :3, :3].abs().sum() > 0


def simple_case(B=3, T=6, S=3, C=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    am = torch.randn(B, T, C, generator=g, dtype=torch.float64)
    lm = torch.randn(B, S + 1, C, generator=g, dtype=torch.float64)
    symbols = torch.randint(1, C, (B, S), generator=g)
    boundary = make_boundary([T, T - 2, T - 1], [S, S - 1, 1])
    return am, lm, symbols, boundary


@pytest.mark.parametrize("modified", [False, True])
def test_simple_loss_equals_full_with_additive_joiner(modified):
    am, lm, symbols, boundary = simple_case()
    am.requires_grad_(), lm.requires_grad_()
    simple, (px_grad, py_grad) = rnnt_loss_simple(lm, am, symbols, boundary, modified=modified,
                                                  reduction="none", return_grad=True)
    am2, lm2 = am.detach().clone().requires_grad_(), lm.detach().clone().requires_grad_()
    full = rnnt_loss(am2[:, :, None] + lm2[:, None], symbols, boundary, modified=modified,
                     reduction="none")
    assert torch.allclose(simple, full, rtol=1e-12)
    simple.sum().backward()
    full.sum().backward()
    assert torch.allclose(am.grad, am2.grad, atol=1e-12)
    assert torch.allclose(lm.grad, lm2.grad, atol=1e-12)
    # Occupations: every frame of a real utterance carries one blank or (modified) symbol.
    assert torch.all(px_grad >= 0) and torch.all(py_grad >= 0)
    per_frame = py_grad.sum(1) + (px_grad[:, :, :py_grad.shape[2]].sum(1) if modified else 0)
    mask = torch.arange(am.shape[1]) < boundary[:, 3:4]
    assert torch.allclose(per_frame[mask], torch.ones(int(mask.sum()), dtype=torch.float64))
    assert torch.all(per_frame[~mask] == 0)


def test_smoothed_simple_loss_against_4d_formula():
    am, lm, symbols, boundary = simple_case(seed=4)
    B, T, C = am.shape
    S = lm.shape[1] - 1
    lm_scale, am_scale = 0.25, 0.1
    got = rnnt_loss_simple(lm, am, symbols, boundary, lm_only_scale=lm_scale,
                           am_only_scale=am_scale, reduction="none")
    combined = (am[:, :, None] + lm[:, None]).log_softmax(-1)  # (B, T, S+1, C)
    lm_only = lm.log_softmax(-1)[:, None].expand(B, T, S + 1, C)
    unigram = lm.softmax(-1).mean((0, 1))
    am_only = (am + unigram.log()).log_softmax(-1)[:, :, None].expand(B, T, S + 1, C)
    lp = (1 - lm_scale - am_scale) * combined + lm_scale * lm_only + am_scale * am_only
    px = lp[:, :, :S].gather(3, symbols.view(B, 1, S, 1).expand(B, T, S, 1)).squeeze(3)
    px = torch.cat([px.transpose(1, 2), torch.full((B, S, 1), -math.inf, dtype=px.dtype)], 2)
    px[torch.arange(B), :, boundary[:, 3]] = -math.inf
    py = lp[..., 0].transpose(1, 2)
    assert torch.allclose(got, -rnnt_lattice_loglik(px, py, boundary), rtol=1e-12)
    # Scales of 0 give the plain simple loss (icefall's am_scale = 0).
    assert torch.allclose(rnnt_loss_simple(lm, am, symbols, boundary, lm_only_scale=0.25),
                          rnnt_loss_simple(lm, am, symbols, boundary, lm_only_scale=0.25,
                                           am_only_scale=1e-30), rtol=1e-12)


@pytest.mark.parametrize("modified", [False, True])
@pytest.mark.parametrize("s_range", [1, 2, 3, 5])
def test_prune_range_invariants(modified, s_range):
    g = torch.Generator().manual_seed(s_range)
    B, T, S, C = 4, 12, 6, 7
    am = 3 * torch.randn(B, T, C, generator=g, dtype=torch.float64)
    lm = 3 * torch.randn(B, S + 1, C, generator=g, dtype=torch.float64)
    symbols = torch.randint(1, C, (B, S), generator=g)
    boundary = make_boundary([12, 9, 7, 10], [6, 4, 0, 6])
    _, (px_grad, py_grad) = rnnt_loss_simple(lm, am, symbols, boundary, modified=modified,
                                             return_grad=True)
    if s_range == 1 and not modified:
        with pytest.raises(FrugalError, match="s_range"):
            get_rnnt_prune_ranges(px_grad, py_grad, boundary, s_range)
        return
    ranges = get_rnnt_prune_ranges(px_grad, py_grad, boundary, s_range)
    R = min(s_range, S)
    assert ranges.shape == (B, T, R)
    assert torch.all(ranges[:, :, 1:] - ranges[:, :, :-1] == 1)
    begin = ranges[:, :, 0]
    assert torch.all(begin[:, 0] == 0)
    assert torch.all(begin[:, 1:] >= begin[:, :-1])
    assert torch.all(begin[:, 1:] - begin[:, :-1] < (2 if modified else R))
    assert torch.all(ranges <= S)
    for b in range(B):
        U, Tb = int(boundary[b, 2]), int(boundary[b, 3])
        assert U in ranges[b, Tb - 1].tolist()  # the last symbol reached at the last frame


def test_prune_ranges_single_symbol_batch():
    """S = 1: the band is 2 nodes wide (k2's cap at S would leave the symbol out)."""
    am, lm, symbols, boundary = simple_case(B=2, T=4, S=1)
    boundary = make_boundary([4, 3], [1, 1])
    logits = am[:, :, None] + lm[:, None]
    _, (px_grad, py_grad) = rnnt_loss_simple(lm, am, symbols, boundary, return_grad=True)
    ranges = get_rnnt_prune_ranges(px_grad, py_grad, boundary, 5)
    assert ranges.shape == (2, 4, 2)
    pruned = rnnt_loss_pruned(logits[torch.arange(2).view(2, 1, 1), torch.arange(4).view(1, 4, 1),
                                     ranges], symbols, ranges, boundary, reduction="none")
    assert torch.allclose(pruned, rnnt_loss(logits, symbols, boundary, reduction="none"))


def joiner_case(seed=0):
    g = torch.Generator().manual_seed(seed)
    B, T, S, C, J = 3, 7, 4, 6, 5
    enc = torch.randn(B, T, J, generator=g, dtype=torch.float64)
    pred = torch.randn(B, S + 1, J, generator=g, dtype=torch.float64)
    W = torch.randn(J, C, generator=g, dtype=torch.float64)
    symbols = torch.randint(1, C, (B, S), generator=g)
    boundary = make_boundary([7, 5, 6], [4, 2, 3])
    return enc, pred, W, symbols, boundary


def test_pruned_loss_bounds_full_loss():
    enc, pred, W, symbols, boundary = joiner_case()
    B, T = enc.shape[:2]
    S = symbols.shape[1]
    joiner = lambda a, l: torch.tanh(a + l) @ W  # noqa: E731
    full_logits = joiner(enc[:, :, None], pred[:, None])
    full = rnnt_loss(full_logits, symbols, boundary, reduction="none")
    # Every node in the band: the pruned loss is the full loss.
    everything = torch.arange(S + 1).expand(B, T, S + 1)
    am_p, lm_p = do_rnnt_pruning(enc, pred, everything)
    assert torch.allclose(rnnt_loss_pruned(joiner(am_p, lm_p), symbols, everything, boundary,
                                           reduction="none"), full, rtol=1e-12)
    for modified in (False, True):
        full_m = rnnt_loss(full_logits, symbols, boundary, modified=modified, reduction="none")
        _, (px_grad, py_grad) = rnnt_loss_simple(pred @ W, enc @ W, symbols, boundary,
                                                 modified=modified, return_grad=True)
        for s_range in ((1, 2, 3) if modified else (2, 3)):
            ranges = get_rnnt_prune_ranges(px_grad, py_grad, boundary, s_range)
            am_p, lm_p = do_rnnt_pruning(enc, pred, ranges)
            logits = joiner(am_p, lm_p)
            bidx = torch.arange(B).view(B, 1, 1)
            assert torch.equal(logits, full_logits[bidx, torch.arange(T).view(1, T, 1), ranges])
            pruned = rnnt_loss_pruned(logits, symbols, ranges, boundary, modified=modified,
                                      reduction="none")
            assert torch.all(pruned >= full_m - 1e-12) and torch.all(torch.isfinite(pruned))


@pytest.mark.skipif(not REF.exists(), reason="no k2 reference file")
def test_k2_reference():
    d = np.load(REF, allow_pickle=False)
    t = lambda k: torch.from_numpy(d[k])  # noqa: E731
    symbols, boundary = t("symbols"), t("boundary")

    def close(a, k):
        np.testing.assert_allclose(a.detach().numpy(), d[k], rtol=1e-9, atol=1e-12, err_msg=k)

    for modified, name in ((False, "full_regular"), (True, "full_modified")):
        logits = t("logits").clone().requires_grad_()
        loss = rnnt_loss(logits, symbols, boundary, modified=modified, reduction="none")
        loss.sum().backward()
        close(loss, f"{name}_loss")
        close(logits.grad, f"{name}_grad_logits")
    close(rnnt_loss(t("logits"), symbols, boundary, reduction="none"),
          "full_regular_loss_graves_np")
    lm, am = t("lm").clone().requires_grad_(), t("am").clone().requires_grad_()
    loss, (px_grad, py_grad) = rnnt_loss_simple(lm, am, symbols, boundary, reduction="none",
                                                return_grad=True)
    loss.sum().backward()
    close(loss, "simple_regular_loss")
    close(lm.grad, "simple_regular_grad_lm")
    close(am.grad, "simple_regular_grad_am")
    # The file's px/py grads are d(sum of losses)/d(px, py): the negated occupations that
    # return_grad gives (fast_rnnt's backward scales its returned grads in place by -1).
    close(-px_grad, "simple_px_grad")
    close(-py_grad, "simple_py_grad")
    # Its ranges were computed from those stored (negated) tensors, which we reproduce; from
    # the occupations themselves (k2's intended input) the second sequence's band differs.
    s_range = int(d["pruned_s_range"])
    ranges = get_rnnt_prune_ranges(t("simple_px_grad"), t("simple_py_grad"), boundary, s_range)
    assert torch.equal(ranges, t("pruned_ranges"))
    B, T = ranges.shape[:2]
    logits = t("logits")[torch.arange(B).view(B, 1, 1), torch.arange(T).view(1, T, 1), ranges]
    close(logits, "pruned_logits")
    logits.requires_grad_()
    loss = rnnt_loss_pruned(logits, symbols, ranges, boundary, reduction="none")
    loss.sum().backward()
    close(loss, "pruned_regular_loss")
    close(logits.grad, "pruned_regular_grad_logits")


def test_bad_inputs():
    logits, symbols, boundary = case()
    with pytest.raises(FrugalError, match="reduction"):
        rnnt_loss(logits, symbols, boundary, reduction="avg")
    with pytest.raises(FrugalError, match="boundary"):
        rnnt_loss(logits, symbols, make_boundary([9, 1, 1], [1, 1, 1]))
    with pytest.raises(FrugalError, match="symbols"):
        rnnt_loss(logits, symbols + 10, boundary)
    with pytest.raises(FrugalError, match="ranges"):
        rnnt_loss_pruned(logits[:, :, :2], symbols, torch.full((3, 4, 2), 7), boundary)
