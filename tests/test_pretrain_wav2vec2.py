"""wav2vec 2.0 pre-training pieces: the encoder's geometry and padding invariance, span
masking, negatives, the contrastive and diversity losses, the Gumbel quantiser, the
pre-training model's gradients, raw-audio batches and checkpoint round trips. References are
written out here independently (loops, float64, closed forms)."""
import math

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from lhotse import CutSet, Features, MonoCut, Recording
from lhotse.features.io import NumpyFilesWriter

from frugal.data.dataset import FeatureDataset
from frugal.errors import FrugalError
from frugal.losses.contrastive import contrastive_loss, diversity_loss, sample_negatives
from frugal.models.transformer import Dropout
from frugal.models.wav2vec2 import (PRESETS, GumbelQuantizer, Wav2Vec2Config, Wav2Vec2Encoder, Wav2Vec2Model,
                                    config_from_dict, conv_output_lengths, gumbel_temperature, wav2vec2_config)
from frugal.pretrain.span_masking import span_mask

TINY = dict(conv_channels=16, d_model=16, num_layers=2, num_heads=2, ff_dim=32, pos_conv_kernel=8,
            pos_conv_groups=2, final_dim=8, latent_groups=2, latent_vars=6, dropout=0.0)


def tiny_config(**kw) -> Wav2Vec2Config:
    return wav2vec2_config("w2v2-small", **{**TINY, **kw})


def tiny_model(seed: int = 0, **kw) -> Wav2Vec2Model:
    torch.manual_seed(seed)
    return Wav2Vec2Model(tiny_config(**kw))


# ---- the encoder ------------------------------------------------------------------------


def reference_conv_steps(num_samples: int, kernels, strides) -> int:
    """Output length of the conv stack, by running strided windows over an index array."""
    n = num_samples
    for k, s in zip(kernels, strides):
        n = len(range(0, n - k + 1, s)) if n >= k else 0
    return n


def test_conv_output_lengths_match_the_convolutions():
    model = tiny_model().eval()
    c = model.config
    sizes = [400, 401, 719, 720, 721, 1040, 3333, 16000]
    for S in sizes:
        local, out_lens, _ = model.encoder.local_features(torch.randn(1, S, 1), torch.tensor([S]))
        assert local.shape[1] == int(out_lens[0]) == conv_output_lengths(S) == reference_conv_steps(
            S, c.conv_kernels, c.conv_strides), S
    assert conv_output_lengths(16000) == 49
    assert conv_output_lengths(399) == 0 and conv_output_lengths(0) == 0
    lengths = torch.tensor(sizes + [399, 0])
    assert conv_output_lengths(lengths).tolist() == [conv_output_lengths(int(s)) for s in lengths]
    assert model.encoder.input_frames_per_output == 320 and model.encoder.output_dim == 16


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_encode_is_invariant_to_padding(dtype, tol):
    encoder = tiny_model().encoder.to(dtype).eval()
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([9000, 5123, 2400])
    x = torch.randn(3, 9000, 1, generator=g).to(dtype)
    x[1, 5123:] = 1e3  # padding that would swamp everything if it leaked
    x[2, 2400:] = -1e3
    out_lens = conv_output_lengths(lengths)
    mask = torch.rand(3, int(out_lens.max()), generator=g) < 0.4
    for m in (None, mask):
        hidden, got_lens = encoder.encode(x, lengths, m)
        assert got_lens.tolist() == out_lens.tolist() and hidden.shape == (3, int(out_lens.max()), 16)
        for b in range(3):
            n = int(out_lens[b])
            alone, _ = encoder.encode(x[b:b + 1, :lengths[b]], lengths[b:b + 1],
                                      None if m is None else m[b:b + 1, :n])
            torch.testing.assert_close(hidden[b, :n], alone[0], rtol=tol, atol=tol)
    # the mask does change the masked steps
    assert not torch.allclose(encoder.encode(x, lengths, mask)[0], encoder.encode(x, lengths)[0])


def test_dropout_proportion_and_monte_carlo():
    model = tiny_model(dropout=0.2)
    modules = model.dropout_modules()
    # input, after the positional embedding, 3 per layer, on the quantiser's input
    assert len(modules) == 2 + 3 * 2 + 1 and all(isinstance(m, Dropout) and m.p == 0.2 for m in modules)
    model.set_dropout_proportion(0.3)
    assert all(m.p == 0.3 for m in model.encoder.dropout_modules())
    encoder = model.encoder.eval()
    x, lengths = torch.randn(1, 4000, 1), torch.tensor([4000])
    torch.testing.assert_close(encoder.encode(x, lengths)[0], encoder.encode(x, lengths)[0])
    encoder.set_dropout_active(True)
    assert not torch.allclose(encoder.encode(x, lengths)[0], encoder.encode(x, lengths)[0])
    with pytest.raises(ValueError):
        model.set_dropout_proportion(1.0)


# ---- span masking -----------------------------------------------------------------------


def expected_mask_probabilities(L: int, p: float, m: int, min_masks: int) -> np.ndarray:
    """P(step i masked) for i < L, from the definition: n = floor(pL/m + u) (so floor(a) + 1
    with probability frac(a)), at least min_masks, at most the N = L - m + 1 starts; given n
    distinct starts out of N, step i stays unmasked iff none of its c_i covering starts is drawn."""
    N = L - m + 1
    a = p * L / m
    k0, frac = math.floor(a), a - math.floor(a)
    probs = np.zeros(L)
    for n, pn in ((k0, 1 - frac), (k0 + 1, frac)):
        n = min(max(min_masks, n), N)
        for i in range(L):
            c = min(i, N - 1) - max(0, i - m + 1) + 1
            probs[i] += pn * (1 - math.comb(N - c, n) / math.comb(N, n))
    return probs


def test_span_mask_statistics():
    lengths = torch.tensor([203, 57, 12, 5, 10])
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([span_mask(lengths, 0.65, 10, 2, generator=g) for _ in range(1500)])  # (R, B, T)
    assert draws.shape == (1500, 5, 203)
    for b, L in enumerate(lengths.tolist()):
        d = draws[:, b].numpy()
        assert not d[:, L:].any()  # nothing beyond the utterance
        if L < 10:
            assert not d.any()
            continue
        for row in d[:200]:
            # every maximal masked run is a union of length-10 spans: at least 10 long
            edges = np.diff(np.concatenate([[0], row[:L].astype(int), [0]]))
            starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
            assert len(starts) >= 1 and all(e - s >= 10 for s, e in zip(starts, ends))
            # at least min_masks distinct starts (or every start): at least 10 + 1 steps
            assert row.sum() >= min(11, L)
        want = expected_mask_probabilities(L, 0.65, 10, 2)
        got = d[:, :L].mean(0)
        # per step: binomial over 1500 draws, 5 sigma
        assert np.all(np.abs(got - want) <= 5 * np.sqrt(want * (1 - want) / len(d)) + 1e-9), (L, got, want)
        fractions = d[:, :L].mean(1)
        assert abs(fractions.mean() - want.mean()) <= 5 * fractions.std() / math.sqrt(len(d)) + 1e-9
    # long utterances: about half masked (1 - e^-0.65 = 0.478 without the min/max corrections)
    assert 0.47 < expected_mask_probabilities(1000, 0.65, 10, 2).mean() < 0.5
    again = span_mask(lengths, generator=torch.Generator().manual_seed(7))
    assert torch.equal(again, span_mask(lengths, generator=torch.Generator().manual_seed(7)))


# ---- negatives and the contrastive loss ---------------------------------------------------


def test_sample_negatives_are_other_masked_steps_uniformly():
    mask = torch.zeros(3, 20, dtype=torch.bool)
    mask[0, [1, 2, 3, 7, 8, 15, 19]] = True
    mask[1, [4, 5, 6]] = True
    g = torch.Generator().manual_seed(0)
    K, R = 40, 100
    counts = {b: np.zeros((20, 20)) for b in range(3)}
    for _ in range(R):
        neg = sample_negatives(mask, K, generator=g)
        assert neg.shape == (3, 20, K) and neg.dtype == torch.int64
        assert (neg[~mask] == -1).all()
        for b, t in mask.nonzero().tolist():
            drawn = neg[b, t].numpy()
            assert mask[b, drawn].all() and not (drawn == t).any()
            np.add.at(counts[b][t], drawn, 1)
    for b in (0, 1):
        steps = mask[b].nonzero()[:, 0].tolist()
        M = len(steps)
        for t in steps:
            others = [s for s in steps if s != t]
            obs = counts[b][t][others]
            exp = K * R / (M - 1)
            chi2 = ((obs - exp) ** 2 / exp).sum()
            dof = M - 2
            assert chi2 < dof + 6 * math.sqrt(2 * dof) + 1, (b, t, obs)
    one = torch.zeros(2, 5, dtype=torch.bool)
    one[1, 3] = True
    with pytest.raises(ValueError, match="utterance 1 has one masked step"):
        sample_negatives(one, 4)


def brute_force_contrastive(context, targets, mask, negatives, kappa):
    """Loss summed over masked steps and accuracy, with loops, in float64."""
    c, q = context.double().numpy(), targets.double().numpy()
    total, correct, count = 0.0, 0, 0
    for b in range(c.shape[0]):
        for t in range(c.shape[1]):
            if not mask[b, t]:
                continue
            cands = [q[b, t]] + [q[b, int(j)] for j in negatives[b, t]]
            logits = []
            for k, v in enumerate(cands):
                if k > 0 and all(v[i] == cands[0][i] for i in range(len(v))):
                    logits.append(-math.inf)
                    continue
                dot = sum(c[b, t, i] * v[i] for i in range(len(v)))
                norms = math.sqrt(sum(x * x for x in c[b, t])) * math.sqrt(sum(x * x for x in v))
                logits.append(dot / norms / kappa)
            top = max(logits)
            lse = top + math.log(sum(math.exp(z - top) for z in logits))
            total += lse - logits[0]
            correct += int(all(logits[0] > z for z in logits[1:]))
            count += 1
    return total, count, correct / count


def test_contrastive_loss_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    B, T, D, K = 2, 9, 5, 4
    context = torch.randn(B, T, D, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randn(B, T, D, generator=g, dtype=torch.float64)
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[0, [0, 2, 3, 4, 8]] = True
    mask[1, [1, 5, 6]] = True
    negatives = sample_negatives(mask, K, generator=g)
    # step (0, 3) has the same target as (0, 4), which it gets as a negative: logit -inf
    targets[0, 4] = targets[0, 3]
    negatives[0, 3, 1] = 4
    negatives[0, 4, 0] = 3
    # step (1, 1): every negative equals the positive -> loss 0, counted right
    targets[1, 5] = targets[1, 1]
    negatives[1, 1] = 5
    # step (1, 6): make the positive the best candidate for sure
    context.data[1, 6] = targets[1, 6]
    for kappa in (0.1, 1.0):
        loss, n, acc = contrastive_loss(context, targets, mask, negatives, temperature=kappa)
        want, want_n, want_acc = brute_force_contrastive(context.detach(), targets, mask, negatives, kappa)
        assert n == want_n == 8
        assert abs(float(loss.detach()) - want) < 1e-9
        assert acc == pytest.approx(want_acc)
        assert 0 < acc < 1
    loss.backward()
    assert torch.isfinite(context.grad).all() and (context.grad[~mask] == 0).all()
    empty, n, acc = contrastive_loss(context, targets, torch.zeros(B, T, dtype=torch.bool), negatives)
    assert float(empty.detach()) == 0.0 and n == 0 and acc == 0.0


def test_diversity_loss_and_temperature():
    assert float(diversity_loss(torch.tensor(640.0), 640)) == 0.0
    assert float(diversity_loss(torch.tensor(160.0), 640)) == pytest.approx(0.75)
    assert gumbel_temperature(0) == 2.0
    assert gumbel_temperature(100_000) == pytest.approx(2.0 * math.exp(100_000 * math.log(0.999995)))
    assert gumbel_temperature(100_000) == pytest.approx(1.2131, abs=1e-4)
    assert gumbel_temperature(1_000_000) == 0.5  # 2 * e^-5 = 0.013, clamped
    assert gumbel_temperature(10 ** 9) == 0.5


# ---- the quantiser ----------------------------------------------------------------------


def test_quantizer_eval_codes_are_the_argmax():
    torch.manual_seed(0)
    q = GumbelQuantizer(5, groups=2, num_vars=4, codevector_dim=6).eval()
    x = torch.randn(2, 7, 5)
    out = q(x)
    logits = (x @ q.weight_proj.weight.T + q.weight_proj.bias).view(2, 7, 2, 4)
    assert torch.equal(out["codes"], logits.argmax(-1))
    for b in range(2):
        for t in range(7):
            want = torch.cat([q.codebook[g, logits[b, t, g].argmax()] for g in range(2)])
            torch.testing.assert_close(out["codevectors"][b, t], want)


def test_quantizer_perplexities_by_hand():
    q = GumbelQuantizer(3, groups=2, num_vars=3, codevector_dim=4).eval().double()
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 2, 3, generator=g, dtype=torch.float64)
    valid = torch.tensor([[True, True, True], [True, False, False]])
    out = q.quantize(logits, valid)
    L = logits.numpy()
    steps = [(b, t) for b in range(2) for t in range(3) if valid[b, t]]
    want_prob = want_code = 0.0
    for grp in range(2):
        avg = np.zeros(3)
        hard = np.zeros(3)
        for b, t in steps:
            e = np.exp(L[b, t, grp] - L[b, t, grp].max())
            avg += e / e.sum() / len(steps)
            hard[np.argmax(L[b, t, grp])] += 1 / len(steps)
        want_prob += math.exp(-sum(p * math.log(p) for p in avg))
        want_code += math.exp(-sum(p * math.log(p) for p in hard if p > 0))
    assert float(out["prob_perplexity"]) == pytest.approx(want_prob, rel=1e-12)
    assert float(out["code_perplexity"]) == pytest.approx(want_code, rel=1e-12)
    uniform = q.quantize(torch.zeros(2, 3, 2, 3, dtype=torch.float64), valid)
    assert float(uniform["prob_perplexity"]) == pytest.approx(2 * 3, rel=1e-12)  # V per group, G groups


def test_quantizer_straight_through_gradient_is_the_soft_samples():
    torch.manual_seed(0)
    G, V, tau = 2, 5, 0.7
    q = GumbelQuantizer(3, groups=G, num_vars=V, codevector_dim=4).train()
    logits = torch.randn(2, 3, G, V, requires_grad=True)
    weights = torch.randn(2, 3, 4)

    torch.manual_seed(123)
    out = q.quantize(logits, temperature=tau)
    (out["codevectors"] * weights).sum().backward()
    grad_hard = logits.grad.clone()

    # the same noise drawn by hand: Gumbel(0, 1) = -log(Exponential(1))
    torch.manual_seed(123)
    noise = -torch.empty_like(logits).exponential_().log()
    perturbed = (logits.detach() + noise)
    onehot = F.one_hot(perturbed.argmax(-1), V).float()
    codebook = q.codebook.detach()
    hard_cv = torch.stack([torch.cat([onehot[b, t, g] @ codebook[g] for g in range(G)])
                           for b in range(2) for t in range(3)]).view(2, 3, 4)
    torch.testing.assert_close(out["codevectors"], hard_cv)  # forward: one-hot codes
    assert torch.equal(out["codes"], perturbed.argmax(-1))

    leaf = logits.detach().clone().requires_grad_(True)
    soft = ((leaf + noise) / tau).softmax(-1)
    soft_cv = torch.einsum("btgv,gvd->btgd", soft, codebook).reshape(2, 3, 4)
    (soft_cv * weights).sum().backward()
    assert grad_hard.abs().sum() > 0
    torch.testing.assert_close(grad_hard, leaf.grad)  # backward: the soft sample's gradient


# ---- the pre-training model -------------------------------------------------------------


def pretraining_loss(out, mask, generator):
    negatives = sample_negatives(mask, 10, generator=generator)
    loss, n, _ = contrastive_loss(out["context"], out["targets"], mask, negatives)
    div = diversity_loss(out["prob_perplexity"], out["num_codevectors"])
    return loss + 0.1 * n * div + 10 * n * out["features_pen"]


def test_model_forward_and_gradients():
    model = tiny_model().train()
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([6000, 4500])
    x = torch.randn(2, 6000, 1, generator=g)
    out_lens = conv_output_lengths(lengths)
    mask = span_mask(out_lens, generator=g)
    out = model(x, lengths, mask, gumbel_temperature(0))
    T = int(out_lens.max())
    assert out["context"].shape == out["targets"].shape == (2, T, 8)
    assert out["out_lengths"].tolist() == out_lens.tolist() == [18, 13]
    for key in ("context", "targets", "prob_perplexity", "code_perplexity", "features_pen"):
        assert torch.isfinite(torch.as_tensor(out[key])).all(), key
    assert 1 <= float(out["prob_perplexity"].detach()) <= 12 and out["num_codevectors"] == 12

    def grads(frozen: bool):
        model.zero_grad(set_to_none=True)
        model.encoder.freeze_feature_extractor = frozen
        pretraining_loss(model(x, lengths, mask, 2.0), mask, torch.Generator().manual_seed(1)).backward()
        return {name: p.grad for name, p in model.named_parameters()}

    for frozen in (False, True):
        gr = grads(frozen)
        for name in ("quantizer.weight_proj.weight", "quantizer.codebook", "project_q.weight", "final_proj.weight",
                     "encoder.layers.0.attn.in_proj.weight", "encoder.layers.1.linear2.weight",
                     "encoder.mask_embedding", "encoder.post_extract_proj.weight", "encoder.feature_norm.weight"):
            assert gr[name] is not None and gr[name].abs().sum() > 0, (frozen, name)
        front = [v for k, v in gr.items() if k.startswith("encoder.feature_extractor.")]
        assert len(front) == 7 + 2
        if frozen:
            assert all(v is None for v in front)
        else:
            assert all(v is not None and v.abs().sum() > 0 for v in front)


def test_feature_grad_mult_scales_the_front_end_gradient():
    x, lengths = torch.randn(1, 3000, 1), torch.tensor([3000])
    got = {}
    for mult in (1.0, 0.1):
        encoder = tiny_model(feature_grad_mult=mult).encoder.eval()
        encoder.encode(x, lengths)[0].square().sum().backward()
        got[mult] = encoder.feature_extractor.convs[0].weight.grad
    torch.testing.assert_close(got[0.1], 0.1 * got[1.0])


def test_model_info_round_trip(tmp_path):
    model = tiny_model(seed=3).eval()
    path = tmp_path / "ckpt.pt"
    torch.save({"model_info": model.model_info(), "model": model.state_dict(),
                "encoder_info": model.encoder.encoder_info()}, path)
    state = torch.load(path, weights_only=True)
    assert state["model_info"]["type"] == "wav2vec2"
    rebuilt = Wav2Vec2Model(config_from_dict(state["model_info"]["config"])).eval()
    rebuilt.load_state_dict(state["model"])
    x, lengths = torch.randn(2, 5000, 1), torch.tensor([5000, 3000])
    mask = span_mask(conv_output_lengths(lengths), generator=torch.Generator().manual_seed(0))
    a, b = model(x, lengths, mask), rebuilt(x, lengths, mask)
    for key in ("context", "targets", "prob_perplexity", "features_pen"):
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    encoder = Wav2Vec2Encoder.from_info(state["encoder_info"]["config"], "test").eval()
    encoder.load_state_dict(model.encoder.state_dict())
    torch.testing.assert_close(encoder.encode(x, lengths)[0], model.encoder.encode(x, lengths)[0])


def test_configs():
    base = Wav2Vec2Model(PRESETS["w2v2-base"])
    assert 94e6 < sum(p.numel() for p in base.parameters()) < 96e6  # W2V2-B: 95 M (thesis Table 4.1)
    cfg = config_from_dict({"preset": "w2v2-small", "num_layers": 2}, "model")
    assert cfg.num_layers == 2 and cfg.d_model == 192
    for bad, match in (({"num_layer": 2}, "unknown wav2vec2 option"), ({"d_model": 100}, "num_heads"),
                       ({"feat_dim": 80}, "raw samples"), ({"conv_strides": [5, 2]}, "same length"),
                       ({"final_dim": 255}, "latent_groups")):
        with pytest.raises(FrugalError, match=match):
            config_from_dict(bad, "model")


# ---- raw-audio batches ------------------------------------------------------------------


def write_flac(path, num_samples: int, rate: int, seed: int) -> np.ndarray:
    samples = np.random.default_rng(seed).integers(-20000, 20000, num_samples).astype(np.int16)
    sf.write(str(path), samples, rate, format="FLAC", subtype="PCM_16")
    return samples


def test_feature_dataset_reads_raw_audio(tmp_path):
    written = [write_flac(tmp_path / f"a{i}.flac", n, 16000, i) for i, n in enumerate((4000, 2500))]
    cuts = [Recording.from_file(tmp_path / f"a{i}.flac").to_cut() for i in range(2)]
    batch = FeatureDataset()[CutSet.from_cuts(cuts)]
    assert batch["features"].shape == (2, 4000, 1) and batch["features"].dtype == torch.float32
    assert batch["feature_lens"].tolist() == [4000, 2500]
    for i, w in enumerate(written):
        read, rate = sf.read(str(tmp_path / f"a{i}.flac"), dtype="int16")
        assert rate == 16000 and np.array_equal(read, w)
        got = batch["features"][i, :len(w), 0].numpy()
        assert np.array_equal(np.round(got * 32768).astype(np.int16), read)
    assert (batch["features"][1, 2500:] == 0).all()
    assert batch["durations"] == [0.25, 0.15625]

    write_flac(tmp_path / "slow.flac", 800, 8000, 5)
    slow = Recording.from_file(tmp_path / "slow.flac", recording_id="slow").to_cut()
    with pytest.raises(FrugalError, match="cut slow.*8000 Hz") as e:
        FeatureDataset()[CutSet.from_cuts([slow])]
    assert "\n" not in str(e.value)

    bare = MonoCut("bare", start=0, duration=1.0, channel=0)
    with pytest.raises(FrugalError, match="no precomputed features"):
        FeatureDataset()[CutSet.from_cuts([bare])]

    # raw and fbank cuts in one batch
    with NumpyFilesWriter(tmp_path / "feats") as writer:
        key = writer.write("fb", np.zeros((10, 4), dtype=np.float32))
        feats = Features(type="toy", num_frames=10, num_features=4, frame_shift=0.01, sampling_rate=16000,
                         start=0, duration=0.1, storage_type=writer.name, storage_path=str(writer.storage_path),
                         storage_key=key)
    fbank = MonoCut("fb", start=0, duration=0.1, channel=0, features=feats)
    with pytest.raises(FrugalError, match="different dimensions"):
        FeatureDataset()[CutSet.from_cuts([cuts[0], fbank])]
