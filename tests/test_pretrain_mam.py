"""MAM pre-training (thesis 4.1.1): the alteration's statistics over many seeded draws, the
masked L1 loss against a float64 loop, and the objective's gradient on altered positions only."""
import math

import pytest
import torch

from frugal.errors import FrugalError
from frugal.losses.reconstruction import masked_l1
from frugal.models.mam import MamModel, PRESETS, config_from_dict, utterance_cmvn
from frugal.pretrain.common import crop, options_from_mapping
from frugal.pretrain.mam import MamMasking, MamObjective, alter


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _time_chosen(mask):
    """Frames chosen by the time alteration: every channel altered (the frequency block is at most 16 of 80)."""
    return mask.all(dim=-1)


def test_time_spans_and_fraction():
    m = MamMasking(noise_prob=0.0, freq_max_width=0)
    for length in (8, 20, 100, 333, 1000):
        expected_spans = round(length * 0.15 / 7)
        for seed in range(30):
            x = torch.randn(1, length, 80)
            _, mask = alter(x, torch.tensor([length]), m, _gen(seed))
            chosen = _time_chosen(mask[0])
            n = int(chosen.sum())
            if expected_spans == 0 or length - 7 <= 0:
                assert n == 0
                continue
            assert 7 <= n <= 7 * expected_spans and n / length <= 0.15 + 7 / length
            assert not bool(chosen[length - 1])  # starts end at T - 8: the last frame is never chosen
            # every run of chosen frames is a union of 7-frame spans: at least 7 long
            runs, cur = [], 0
            for v in chosen.tolist() + [False]:
                if v:
                    cur += 1
                elif cur:
                    runs.append(cur)
                    cur = 0
            assert all(r >= 7 for r in runs)
    # without overlap the fraction would be 9 * 7 / 400; the realised mean is below that, above half of it
    fractions = []
    for seed in range(200):
        _, mask = alter(torch.randn(1, 400, 80), torch.tensor([400]), m, _gen(seed))
        fractions.append(float(_time_chosen(mask[0]).float().mean()))
    mean = sum(fractions) / len(fractions)
    assert 0.5 * 63 / 400 < mean <= 63 / 400


def _treatment(x, out, chosen):
    if bool((out[chosen] == 0).all()):
        return "zero"
    if torch.equal(out[chosen], x[chosen]):
        return "keep"
    return "replace"


def test_the_die_is_thrown_once_an_utterance():
    m = MamMasking(noise_prob=0.0, freq_max_width=0)
    counts = {"zero": 0, "replace": 0, "keep": 0}
    n = 3000
    g = _gen(7)
    for _ in range(n // 10):
        x = torch.randn(10, 200, 20)
        out, mask = alter(x, torch.full((10,), 200), m, g)
        for b in range(10):
            chosen = _time_chosen(mask[b])
            kind = _treatment(x[b], out[b], chosen)
            counts[kind] += 1
            if kind == "replace":  # whole frames of the same utterance, taken from 7-frame spans elsewhere
                for frame in out[b][chosen]:
                    assert bool((x[b] == frame).all(dim=1).any())
            assert torch.equal(out[b][~chosen], x[b][~chosen])  # nothing else changes
    for kind, p in (("zero", 0.8), ("replace", 0.1), ("keep", 0.1)):
        sd = math.sqrt(n * p * (1 - p))
        assert abs(counts[kind] - n * p) < 4 * sd, counts


def test_frequency_block_width_is_uniform():
    m = MamMasking(noise_prob=0.0, time_proportion=0.0)
    widths = []
    g = _gen(3)
    for _ in range(340):
        x = torch.randn(10, 30, 80)
        lengths = torch.tensor([30, 25, 20, 30, 30, 12, 30, 30, 30, 30])
        _, mask = alter(x, lengths, m, g)
        for b in range(10):
            L = int(lengths[b])
            cols = mask[b, :L].all(dim=0)
            assert not bool(mask[b, L:].any())  # padding never altered
            w = int(cols.sum())
            if w:
                first = int(cols.nonzero()[0])
                assert bool(cols[first:first + w].all()) and first + w <= 79  # one block, start in [0, F - w - 1]
            widths.append(w)
    n = len(widths)
    for w in range(17):  # uniform over 0 .. 16
        k = widths.count(w)
        p = 1 / 17
        assert abs(k - n * p) < 4.5 * math.sqrt(n * p * (1 - p)), (w, k)
    assert max(widths) == 16


def test_noise_std_and_batch_probability():
    m = MamMasking(time_proportion=0.0, freq_max_width=0, noise_prob=1.0)
    x = torch.zeros(4, 500, 80)
    lengths = torch.tensor([500, 400, 300, 500])
    out, mask = alter(x, lengths, m, _gen(1))
    assert not bool(mask.any())  # noise adds no loss positions
    valid = torch.arange(500).unsqueeze(0) < lengths.unsqueeze(1)
    noise = out[valid].double()
    assert abs(float(noise.std()) - 0.2) < 0.005 and abs(float(noise.mean())) < 0.002
    assert bool((out[~valid] == 0).all())
    m = MamMasking(time_proportion=0.0, freq_max_width=0, noise_prob=0.15)
    g = _gen(2)
    noisy = sum(bool((alter(torch.zeros(2, 10, 4), torch.tensor([10, 10]), m, g)[0] != 0).any())
                for _ in range(4000))
    sd = math.sqrt(4000 * 0.15 * 0.85)
    assert abs(noisy - 600) < 4 * sd


def test_masked_l1_against_a_float64_loop_and_its_gradient():
    g = _gen(0)
    pred = torch.randn(3, 11, 5, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randn(3, 11, 5, generator=g, dtype=torch.float64)
    mask = torch.rand(3, 11, 5, generator=g) < 0.3
    total, count = masked_l1(pred, target, mask)
    ref = sum(abs(float(pred.detach()[b, t, f]) - float(target[b, t, f]))
              for b in range(3) for t in range(11) for f in range(5) if mask[b, t, f])
    assert math.isclose(float(total), ref, rel_tol=1e-12) and int(count) == int(mask.sum())
    total.backward()
    assert bool((pred.grad[~mask] == 0).all())
    assert torch.equal(pred.grad[mask], torch.sign(pred - target).detach()[mask])


def test_objective_gradient_reaches_altered_positions_only():
    objective = MamObjective(MamMasking())
    model = objective.build_model({"preset": "mam-small", "d_model": 32, "num_heads": 2, "ff_dim": 64,
                                   "num_layers": 1}, 20, "test")
    captured = {}

    def keep(module, inputs, output):
        output.retain_grad()
        captured["out"] = output

    model.head.register_forward_hook(keep)
    batch = {"features": torch.randn(2, 120, 20), "feature_lens": torch.tensor([120, 90])}
    torch.manual_seed(5)
    values = objective(model, batch)
    values["loss"].backward()
    torch.manual_seed(5)  # the same draws: the same mask
    target = utterance_cmvn(batch["features"], batch["feature_lens"])
    _, mask = alter(target, batch["feature_lens"], objective.options)
    grad = captured["out"].grad
    assert bool((grad[~mask] == 0).all()) and bool((grad[mask] != 0).any())
    assert math.isclose(float(values["altered"]), int(mask.sum()) / (210 * 20), rel_tol=1e-6)


def test_crop_keeps_a_window_of_each_long_utterance():
    x = torch.arange(2 * 50, dtype=torch.float32).view(2, 50, 1)
    out, lengths = crop(x, torch.tensor([50, 30]), 20, _gen(0))
    assert lengths.tolist() == [20, 20]
    for b in range(2):
        first = int(out[b, 0, 0]) - 50 * b
        assert torch.equal(out[b, :, 0], x[b, first:first + 20, 0])


def test_presets_and_options():
    # MAM-S: 3 x (4 d^2 + 2 d ffn) weights = 21.2 M (spec 1.1), plus biases, norms and the input projection
    encoder = MamModel(PRESETS["mam-s"]).encoder
    assert 21.2e6 < sum(p.numel() for p in encoder.parameters()) < 21.5e6
    with pytest.raises(FrugalError, match="unknown mam option"):
        config_from_dict({"layers": 3})
    with pytest.raises(FrugalError, match="zero_prob"):
        options_from_mapping(MamMasking, {"zero_prob": 0.95}, "loss")
    with pytest.raises(FrugalError, match="unknown option"):
        options_from_mapping(MamMasking, {"mask_prob": 0.1}, "loss")
    with pytest.raises(FrugalError, match="span must be an integer"):
        options_from_mapping(MamMasking, {"span": 7.5}, "loss")


def test_encoder_ignores_padding():
    model = MamModel(config_from_dict({"preset": "mam-small", "feat_dim": 10, "d_model": 32, "num_heads": 2,
                                       "ff_dim": 64})).eval()
    x = torch.randn(2, 40, 10)
    lengths = torch.tensor([40, 25])
    both, _ = model.encoder.encode(x, lengths)
    alone, _ = model.encoder.encode(x[1:, :25], lengths[1:])
    assert torch.allclose(both[1, :25], alone[0], atol=1e-5)
