"""TDNN-F geometry, semi-orthogonal constraint, dropout (incl. Monte-Carlo) and configs."""

import pytest
import torch

from frugal.errors import FrugalError
from frugal.models import TdnnfConfig, TdnnfModel, constrain_orthonormal_, load_config, tdnnf_config
from frugal.models.tdnnf import orthonormality_error
from frugal.train.schedule import DropoutSchedule, LrSchedule


def small_model(feat_dim=5, num_pdfs=7, **kw) -> TdnnfModel:
    torch.manual_seed(0)
    cfg = tdnnf_config("tdnnf-small", feat_dim=feat_dim, num_pdfs=num_pdfs, hidden_dim=16,
                       bottleneck_dim=8, prefinal_bottleneck_dim=8, **kw)
    model = TdnnfModel(cfg).double()
    # Kaldi initialises the output layers to zero; randomise them so that outputs see the input.
    for head in (model.chain_head, model.xent_head):
        torch.nn.init.normal_(head.output.weight)
    return model.eval()


def expected_offsets(cfg: TdnnfConfig):
    """Receptive field from the config alone: {-1,0,1} + sum over layers of {-s,0,s}."""
    reach = {-1, 0, 1}
    for s in cfg.time_strides:
        reach = {r + o for r in reach for o in {-s, 0, s}}
    return reach


@pytest.mark.parametrize("strides", [[1, 1, 0, 3], [1, 3, 3, 6, 0], [3, 0, 3]])
def test_output_lengths_are_ceil_t_over_3(strides):
    model = small_model(time_strides=strides)
    for T in [1, 2, 3, 4, 5, 6, 7, 29, 30, 31, 100]:
        lengths = torch.tensor([T, max(1, T - 2), 1])
        chain, xent, out_lens = model(torch.randn(3, T, 5, dtype=torch.float64), lengths)
        want = [-(-int(t) // 3) for t in lengths]
        assert out_lens.tolist() == want
        assert chain.shape == (3, max(want), 7) and xent.shape == chain.shape


def test_batch_padding_does_not_change_outputs():
    model = small_model()
    x = torch.randn(3, 40, 5, dtype=torch.float64)
    lengths = torch.tensor([40, 23, 8])
    x[1, 23:] = 1e3  # garbage in the padding
    x[2, 8:] = -1e3
    chain, _, out_lens = model(x, lengths)
    for b in range(3):
        alone, _, n = model(x[b : b + 1, : lengths[b]], lengths[b : b + 1])
        assert int(n) == out_lens[b]
        torch.testing.assert_close(chain[b, : out_lens[b]], alone[0])


@pytest.mark.parametrize("strides", [[1, 1, 0, 3], [1, 0, 3, 6]])
def test_receptive_field_by_perturbation(strides):
    model = small_model(time_strides=strides)
    offsets = expected_offsets(model.config)
    assert model.receptive_offsets() == sorted(offsets)
    T = 46
    x = torch.randn(1, T, 5, dtype=torch.float64)
    lengths = torch.tensor([T])
    base, _, _ = model(x, lengths)
    for t in [0, 1, 5, 17, 22, 30, 44, T - 1]:
        y = x.clone()
        y[0, t] += 10.0
        out, _, _ = model(y, lengths)
        changed = {k for k in range(out.shape[1]) if not torch.allclose(out[0, k], base[0, k], atol=1e-12, rtol=0)}
        # Output k reads frames 3k + o, clamped into the utterance (edge frames are repeated).
        want = {k for k in range(out.shape[1]) if t in {min(max(3 * k + o, 0), T - 1) for o in offsets}}
        assert changed == want, (t, sorted(changed), sorted(want))


@pytest.mark.parametrize("shape", [(32, 96), (96, 32)])
def test_semi_orthogonal_update_converges_to_scaled_identity(shape):
    g = torch.Generator().manual_seed(1)
    # Singular values spread over [1.3, 4.3]: far enough from orthonormal to need several steps.
    M = torch.randn(*shape, generator=g, dtype=torch.float64) * 0.3 + 0.5 * torch.eye(*shape, dtype=torch.float64)
    errors = []
    for _ in range(40):
        before = M.clone()
        constrain_orthonormal_(M)
        # Floating scale: the update is orthogonal to M viewed as a vector (tr(M X^T) = 0).
        change = M - before
        if change.norm() > 1e-6:  # near convergence the change is round-off
            assert abs(float((before * change).sum())) < 1e-9 * float(before.norm() * change.norm())
        errors.append(orthonormality_error(M))
    # Strictly decreasing until round-off (convergence is quadratic near the solution).
    assert all(b < a for a, b in zip(errors, errors[1:]) if a > 1e-12)
    assert errors[0] > 1.0 and errors[-1] < 1e-10
    sv = torch.linalg.svdvals(M)
    assert float(sv.max() / sv.min()) == pytest.approx(1.0, abs=1e-6)


def test_model_hook_applies_the_constraint_every_period():
    model = small_model()
    period = model.config.orthonormal_period
    mods = model.orthonormal_modules()
    assert len(mods) == 1 + len(model.config.time_strides) + 2  # prefinal-l, one per layer, two heads
    weights = [m.weight.detach().clone() for m in mods]
    for step in range(1, period):
        model.after_optimizer_step(step)
    assert all(torch.equal(w, m.weight) for w, m in zip(weights, mods))
    model.after_optimizer_step(period)
    for w, m in zip(weights, mods):
        assert orthonormality_error(m.weight.view(m.weight.shape[0], -1)) < orthonormality_error(w.view(w.shape[0], -1))


def test_dropout_schedule_values():
    s = DropoutSchedule("0,0@0.20,0.5@0.50,0")
    for progress, want in [(0.0, 0.0), (0.1, 0.0), (0.2, 0.0), (0.35, 0.25), (0.5, 0.5), (0.75, 0.25),
                           (1.0, 0.0), (1.5, 0.0)]:
        assert s(progress) == pytest.approx(want)
    assert DropoutSchedule("0.1")(0.7) == pytest.approx(0.1)
    assert DropoutSchedule("0.2,0.4")(0.25) == pytest.approx(0.25)
    for bad in ["0,0.5,0", "0,x@0.5,0", "0,0.5@1.5,0", "0,0.3@0.6,0.2@0.4,0", ""]:
        with pytest.raises(FrugalError):
            DropoutSchedule(bad)


def test_lr_schedules():
    s = LrSchedule(lr=1.0, warmup_steps=10, decay="exponential", final_ratio=0.01)
    assert s(5, 0.0) == pytest.approx(0.5)
    assert s(10, 0.5) == pytest.approx(0.1)
    assert s(100, 1.0) == pytest.approx(0.01)
    c = LrSchedule(lr=1.0, warmup_steps=0, decay="cosine", final_ratio=0.0 + 1e-9)
    assert c(1, 0.5) == pytest.approx(0.5) and c(1, 1.0) == pytest.approx(0.0, abs=1e-8)
    n = LrSchedule(lr=2.0, warmup_steps=4, decay="noam")
    assert n(2, 0.3) == pytest.approx(1.0) and n(16, 0.3) == pytest.approx(1.0)


def test_mc_dropout_is_stochastic_and_leaves_batchnorm_alone():
    model = small_model()
    x = torch.randn(2, 30, 5, dtype=torch.float64)
    lengths = torch.tensor([30, 25])
    # Give the batchnorms non-trivial statistics first.
    model.train()
    model(x, lengths)
    model.eval()
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    a, _, _ = model(x, lengths)
    b, _, _ = model(x, lengths)
    assert torch.equal(a, b)
    model.set_dropout_active(True, proportion=0.3)
    c, _, _ = model(x, lengths)
    d, _, _ = model(x, lengths)
    assert not torch.allclose(c, d)
    assert not torch.allclose(a, c)
    model.set_dropout_active(False)
    e, _, _ = model(x, lengths)
    assert torch.equal(a, e)
    for k, v in model.state_dict().items():
        if "running" in k:
            assert torch.equal(v, stats[k]), k


def test_config_from_yaml(tmp_path):
    p = tmp_path / "model.yaml"
    p.write_text("model:\n  preset: tdnnf-small\n  num_pdfs: 12\n  feat_dim: 40\n")
    cfg = load_config(p)
    assert cfg == tdnnf_config("tdnnf-small", num_pdfs=12, feat_dim=40)
    p.write_text("preset: tdnnf-l\nnum_pdfs: 3\ntime_strides: [1, 0, 3, 1]\n")
    with pytest.raises(FrugalError, match="not a multiple"):
        load_config(p)
    p.write_text("num_pdfs: 3\nhiden_dim: 4\n")
    with pytest.raises(FrugalError, match="hiden_dim"):
        load_config(p)
    assert tdnnf_config("tdnnf-l").num_layers == 12 and tdnnf_config("tdnnf-s").num_layers == 7
