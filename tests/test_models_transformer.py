"""Transformer acoustic model: geometry, padding, dropout (incl. Monte-Carlo), checkpoints,
build_model, and LF-MMI training on a toy task through the Trainer."""
import math

import numpy as np
import pytest
import torch
from lhotse import CutSet, Features, MonoCut, SupervisionSegment
from lhotse.features.io import NumpyFilesWriter

from frugal.errors import FrugalError
from frugal.graph.den_graph import make_den_graph
from frugal.graph.hmm_topo import CHAIN_TOPOLOGY, PdfMap
from frugal.lm.phone_lm import estimate_phone_lm
from frugal.models import (TdnnfModel, TransformerModel, build_model, load_model, model_from_info,
                           transformer_config)
from frugal.models.transformer import FrameSubsampling, MaskedBatchNorm, sinusoidal_positions
from frugal.data.dataset import FeatureDataset
from frugal.train import TrainConfig, Trainer
from frugal.train.lfmmi import LfmmiObjective
from test_chain_graphs import A, B, C, PHONES, SIL, toy_lexicon

FEAT_DIM, NUM_PDFS = 5, 7


def small_model(dtype=torch.float64, **kw) -> TransformerModel:
    torch.manual_seed(0)
    options = dict(feat_dim=FEAT_DIM, num_pdfs=NUM_PDFS, d_model=16, num_layers=2, num_heads=2, ff_dim=32,
                   head_dim=24, head_bottleneck_dim=8, dropout=0.0)
    options.update(kw)
    model = TransformerModel(transformer_config("transformer-small", **options)).to(dtype)
    # The output layers start at zero (as Kaldi's); randomise them so that outputs see the input.
    for head in (model.chain_head, model.xent_head):
        torch.nn.init.normal_(head.output.weight)
    return model.eval()


def batch_with_garbage_padding(dtype=torch.float64):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 40, FEAT_DIM, generator=g).to(dtype)
    lengths = torch.tensor([40, 23, 8])
    x[1, 23:] = 1e3  # padding that would swamp everything if it leaked
    x[2, 8:] = -1e3
    return x, lengths


@pytest.mark.parametrize("factor,context", [(3, 2), (3, 1), (2, 1)])
def test_output_lengths_are_ceil_t_over_factor(factor, context):
    model = small_model(subsampling_factor=factor, frontend_context=context)
    for T in [1, 2, 3, 4, 5, 6, 7, 29, 30, 31, 100]:
        lengths = torch.tensor([T, max(1, T - 2), 1])
        chain, xent, out_lens = model(torch.randn(3, T, FEAT_DIM, dtype=torch.float64), lengths)
        want = [-(-int(t) // factor) for t in lengths]
        assert out_lens.tolist() == want
        assert chain.shape == (3, max(want), NUM_PDFS) and xent.shape == chain.shape
        # xent rows are log-probabilities
        torch.testing.assert_close(xent.exp().sum(-1), torch.ones(3, max(want), dtype=torch.float64))


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_batch_padding_does_not_change_outputs(dtype, tol):
    model = small_model(dtype)
    x, lengths = batch_with_garbage_padding(dtype)
    chain, xent, out_lens = model(x, lengths)
    for b in range(3):
        alone_chain, alone_xent, n = model(x[b : b + 1, : lengths[b]], lengths[b : b + 1])
        assert int(n) == out_lens[b] == alone_chain.shape[1]
        torch.testing.assert_close(chain[b, : out_lens[b]], alone_chain[0], rtol=tol, atol=tol)
        torch.testing.assert_close(xent[b, : out_lens[b]], alone_xent[0], rtol=tol, atol=tol)


@pytest.mark.parametrize("factor,context", [(3, 2), (3, 1)])
def test_front_end_output_k_reads_frames_around_factor_k(factor, context):
    torch.manual_seed(0)
    frontend = FrameSubsampling(FEAT_DIM, 8, factor, context).double()
    T = 20
    x = torch.randn(1, T, FEAT_DIM, dtype=torch.float64)
    lengths = torch.tensor([T])
    num_out = -(-T // factor)
    base = frontend(x, lengths, num_out)
    for t in [0, 1, 2, 9, 10, 17, 18, T - 1]:
        y = x.clone()
        y[0, t] += 5.0
        out = frontend(y, lengths, num_out)
        changed = {k for k in range(num_out) if not torch.allclose(out[0, k], base[0, k], atol=1e-12, rtol=0)}
        # Output k reads frames factor*k + o for |o| <= context, clamped into the utterance.
        want = {k for k in range(num_out)
                if t in {min(max(factor * k + o, 0), T - 1) for o in range(-context, context + 1)}}
        assert changed == want, (t, sorted(changed), sorted(want))


def test_mean_norm_removes_a_constant_offset_per_utterance():
    x, lengths = batch_with_garbage_padding()
    offset = torch.randn(3, 1, FEAT_DIM, dtype=torch.float64) * 10
    for mean_norm in (True, False):
        model = small_model(mean_norm=mean_norm)
        a, _, out_lens = model(x, lengths)
        b, _, _ = model(x + offset, lengths)
        same = all(torch.allclose(a[i, :n], b[i, :n], rtol=1e-9, atol=1e-9) for i, n in enumerate(out_lens.tolist()))
        assert same == mean_norm


def test_sinusoidal_positions_follow_the_formula():
    pe = sinusoidal_positions(50, 16, dtype=torch.float64)
    for k in [0, 1, 7, 49]:
        for i in range(8):
            angle = k / 10000 ** (2 * i / 16)
            assert float(pe[k, 2 * i]) == pytest.approx(math.sin(angle), abs=1e-12)
            assert float(pe[k, 2 * i + 1]) == pytest.approx(math.cos(angle), abs=1e-12)


def test_positions_tell_identical_frames_apart():
    """A constant input gives the same front-end output at every position; only the positional
    encoding can make the outputs differ along time (attention alone is permutation-equivariant)."""
    model = small_model()
    x = torch.randn(1, 1, FEAT_DIM, dtype=torch.float64).expand(1, 30, FEAT_DIM)
    lengths = torch.tensor([30])
    front = model.frontend(x, lengths, 10)
    torch.testing.assert_close(front, front[:, :1].expand_as(front), rtol=0, atol=1e-12)
    chain, _, _ = model(x, lengths)
    assert all(not torch.allclose(chain[0, k], chain[0, 0], atol=1e-6) for k in range(1, 10))


def test_mc_dropout_is_stochastic_reproducible_and_switches_off():
    model = small_model(torch.float32)
    x, lengths = batch_with_garbage_padding(torch.float32)
    a, _, _ = model(x, lengths)
    b, _, _ = model(x, lengths)
    assert torch.equal(a, b)  # eval mode: deterministic
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.set_dropout_active(True, proportion=0.2)
    assert not model.training and all(not m.training for m in model.modules())
    torch.manual_seed(11)
    c, _, _ = model(x, lengths)
    d, _, _ = model(x, lengths)
    assert not torch.allclose(c, d) and not torch.allclose(a, c)
    torch.manual_seed(11)
    c_again, _, _ = model(x, lengths)
    assert torch.equal(c, c_again)
    model.set_dropout_active(False)
    e, _, _ = model(x, lengths)
    assert torch.equal(a, e)
    # The batchnorms kept their running statistics through the dropout passes.
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert all(m.p == 0.2 for m in model.dropout_modules())


def test_every_dropout_site_is_active_and_scheduled():
    model = small_model(torch.float64)
    x, lengths = batch_with_garbage_padding()
    base, _, _ = model(x, lengths)
    sites = model.dropout_modules()
    # input + per layer: attention weights, attention residual, feed-forward inner, feed-forward residual
    assert len(sites) == 1 + 4 * model.config.num_layers
    model.set_dropout_active(True)
    for site in sites:
        model.set_dropout_proportion(0.0)
        site.p = 0.5
        torch.manual_seed(0)
        out, _, _ = model(x, lengths)
        assert not torch.allclose(out, base), site
    # Kaldi-style schedules range over [0, 1)
    model.set_dropout_proportion(0.9)
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError):
            model.set_dropout_proportion(bad)
    # Training mode draws masks without set_dropout_active.
    model.set_dropout_active(False, proportion=0.2)
    model.train()
    assert not torch.equal(model(x, lengths)[0], model(x, lengths)[0])


def test_training_mode_batchnorm_ignores_padding():
    """In training the heads' batchnorms take statistics from valid frames only: more
    padding, with other garbage in it, changes nothing (and the running statistics agree)."""
    model = small_model()
    x, lengths = batch_with_garbage_padding()
    longer = torch.full((3, 55, FEAT_DIM), -7e2, dtype=torch.float64)
    for b, n in enumerate(lengths.tolist()):
        longer[b, :n] = x[b, :n]
    twin = small_model()
    model.train()
    twin.train()
    a, _, out_lens = model(x, lengths)
    b, _, _ = twin(longer, lengths)
    for i, n in enumerate(out_lens.tolist()):
        torch.testing.assert_close(a[i, :n], b[i, :n], rtol=1e-10, atol=1e-10)
    for (name, s), t in zip(model.state_dict().items(), twin.state_dict().values()):
        torch.testing.assert_close(s, t, rtol=1e-10, atol=1e-10, msg=name)


def test_masked_batchnorm_uses_the_valid_frames():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 6, 3, generator=g, dtype=torch.float64) * 3 + 1
    valid = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    x[1, 4:] = 1e6
    bn = MaskedBatchNorm(3, affine=False).double()
    out = bn(x, valid)
    frames = torch.cat([x[0], x[1, :4]])  # the 10 valid frames by hand
    mean, var = frames.mean(0), frames.var(0, unbiased=False)
    torch.testing.assert_close(out[valid], (frames - mean) / torch.sqrt(var + bn.eps))
    assert bool((out[~valid] == 0).all())
    torch.testing.assert_close(bn.running_mean, 0.1 * mean)
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * frames.var(0, unbiased=True))
    bn.eval()  # running statistics for every frame
    torch.testing.assert_close(bn(x, valid), (x - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps))


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    model = small_model(torch.float32, dropout=0.1)
    info = model.model_info()
    assert info["type"] == "transformer" and info["config"]["d_model"] == 16
    path = tmp_path / "model.pt"
    torch.save({"model_info": info, "model": model.state_dict()}, path)
    loaded = load_model(path)  # torch.load(weights_only=True): model_info must be primitives
    assert isinstance(loaded, TransformerModel) and not loaded.training
    assert loaded.model_info() == info
    x, lengths = batch_with_garbage_padding(torch.float32)
    for got, want in zip(loaded(x, lengths), model(x, lengths)):
        assert torch.equal(got, want)
    fresh = model_from_info(torch.load(path, weights_only=True)["model_info"])
    assert isinstance(fresh, TransformerModel) and fresh.config == model.config
    with pytest.raises(FrugalError, match=r"ckpt\.pt: unknown model type 'lstm' \(known: tdnnf, transformer, transducer, mam, wav2vec2, pretrained\)"):
        model_from_info({"type": "lstm", "config": {}}, where="ckpt.pt")


def test_build_model_dispatches_and_checks():
    src = "den graph den.pt"
    m = build_model({"preset": "tdnnf-small"}, 40, 30, "conf.yaml", src)
    assert isinstance(m, TdnnfModel) and m.config.feat_dim == 40 and m.config.num_pdfs == 30
    m = build_model({"type": "tdnnf", "preset": "tdnnf-small", "num_pdfs": 30}, 40, 30, "conf.yaml", src)
    assert isinstance(m, TdnnfModel)
    m = build_model({"type": "transformer", "preset": "transformer-small", "num_layers": 2}, 40, 30,
                    "conf.yaml", src)
    assert isinstance(m, TransformerModel)
    assert (m.config.d_model, m.config.num_layers, m.config.num_heads, m.config.ff_dim) == (192, 2, 4, 768)
    assert (m.config.head_dim, m.config.head_bottleneck_dim, m.config.mean_norm) == (256, 64, True)
    assert (m.config.feat_dim, m.config.num_pdfs) == (40, 30)
    assert m.model_info()["config"]["num_pdfs"] == 30

    def error(section):
        with pytest.raises(FrugalError) as e:
            build_model(section, 40, 30, "conf.yaml", src)
        return str(e.value)

    assert error({"type": "lstm"}) == "conf.yaml: unknown model type 'lstm' (known: tdnnf, transformer, transducer, mam, wav2vec2, pretrained)"
    assert error({"type": "transformer", "num_pdfs": 10}) == \
        "conf.yaml: model num_pdfs is 10 but must be 30 (from den graph den.pt)"
    assert error({"type": "transformer", "feat_dim": 80}) == \
        "conf.yaml: model feat_dim is 80 but must be 40 (from the features)"
    assert error({"feat_dim": 80}) == "conf.yaml: model feat_dim is 80 but must be 40 (from the features)"
    msg = error({"type": "transformer", "heads": 4, "layers": 2})
    assert msg.startswith("conf.yaml: unknown transformer option(s): heads, layers (known: preset, feat_dim,")
    assert "unknown TDNN-F option(s): heads" in error({"heads": 4})
    assert "conf.yaml: unknown transformer preset 'transformer-tiny'" in error(
        {"type": "transformer", "preset": "transformer-tiny"})
    assert error({"type": "transformer", "d_model": 100, "num_heads": 3}) == \
        "conf.yaml: d_model 100 is not a multiple of num_heads 3"
    assert error({"type": "transformer", "d_model": "big"}) == \
        "conf.yaml: transformer option d_model must be an integer (got 'big')"
    assert error({"type": "transformer", "dropout": 1.0}) == "conf.yaml: dropout must be in [0, 1) (got 1.0)"
    assert error({"type": "transformer", "mean_norm": 1}) == \
        "conf.yaml: transformer option mean_norm must be true or false (got 1)"
    assert error({"type": "transformer", "num_layers": True}) == \
        "conf.yaml: transformer option num_layers must be an integer (got True)"
    assert "frontend_context 0 leaves input frames unseen" in error({"type": "transformer", "frontend_context": 0})
    # TDNN-F sections are checked the same way (one helper for both model types).
    assert error({"preset": "tdnnf-small", "frame_shift": "yes"}) == \
        "conf.yaml: TDNN-F option frame_shift must be true or false (got 'yes')"
    assert error({"time_strides": [1, 3.5]}) == \
        "conf.yaml: TDNN-F option time_strides must be a list of integers (got [1, 3.5])"
    assert error({"input_norm": 0}) == "conf.yaml: TDNN-F option input_norm must be a string (got 0)"
    assert "conf.yaml: unknown TDNN-F preset 'tdnnf-xl'" in error({"preset": "tdnnf-xl"})


# ---- LF-MMI on a toy task -------------------------------------------------------------
# Words of test_chain_graphs' toy lexicon: X = "a b", Y = "c" (or "a"); optional silence.
WORD_PHONES = {"X": [A, B], "Y": [C]}


def make_toy_cuts(out_dir, num, seed):
    """(cuts, their phone sequences): each phone is a block of 4-9 frames around its own
    random prototype; utterances start and end with silence."""
    protos = np.random.default_rng(1234).normal(size=(max(PHONES) + 1, FEAT_DIM)) * 2.0
    rng = np.random.default_rng(seed)
    cuts, phone_seqs = [], []
    with NumpyFilesWriter(out_dir / "feats") as writer:
        for i in range(num):
            words = [str(w) for w in rng.choice(["X", "Y"], size=rng.integers(1, 4))]
            phones = [SIL] + [p for w in words for p in WORD_PHONES[w]] + [SIL]
            durations = rng.integers(4, 10, size=len(phones))
            feats = np.concatenate([protos[p] + 0.5 * rng.normal(size=(d, FEAT_DIM))
                                    for p, d in zip(phones, durations)]).astype(np.float32)
            cut_id = f"toy{seed}-{i}"
            phone_seqs.append(phones)
            key = writer.write(cut_id, feats)
            duration = round(feats.shape[0] * 0.01, 2)
            features = Features(type="toy", num_frames=feats.shape[0], num_features=FEAT_DIM, frame_shift=0.01,
                                sampling_rate=16000, start=0, duration=duration, storage_type=writer.name,
                                storage_path=str(writer.storage_path), storage_key=key, recording_id=cut_id)
            sup = SupervisionSegment(id=cut_id, recording_id=cut_id, start=0, duration=duration,
                                     text=" ".join(words))
            cuts.append(MonoCut(id=cut_id, start=0, duration=duration, channel=0, supervisions=[sup],
                                features=features))
    return CutSet.from_cuts(cuts), phone_seqs


def test_lfmmi_training_through_the_trainer_lowers_the_loss(tmp_path):
    torch.set_num_threads(1)
    train, train_seqs = make_toy_cuts(tmp_path / "train", 24, seed=1)
    valid, valid_seqs = make_toy_cuts(tmp_path / "valid", 12, seed=2)
    # The den graph's phone LM from the phone sequences of both sets (Kaldi's held-out subset
    # is in the phone LM too), monophone pdfs.
    pdf_map = PdfMap(PHONES, CHAIN_TOPOLOGY, 1)
    den = make_den_graph(estimate_phone_lm([(1.0, train_seqs + valid_seqs)], ngram_order=3), pdf_map, PHONES)
    task = LfmmiObjective(toy_lexicon(), den)
    torch.manual_seed(0)
    model = build_model({"type": "transformer", "preset": "transformer-small", "d_model": 32, "num_layers": 2,
                         "num_heads": 2, "ff_dim": 64}, FEAT_DIM, task.output_dim, "toy", "the den graph")
    batches = {"train": FeatureDataset()[train], "valid": FeatureDataset()[valid]}

    def objf(m):
        m.eval()
        with torch.no_grad():
            return {name: float(task(m, batch)["objf"]) for name, batch in batches.items()}

    before = objf(model)
    config = TrainConfig(num_epochs=10, max_duration=1.5, num_buckets=2, seed=7, lr=5e-3, warmup_steps=3,
                         dropout_schedule="0,0.2@0.5,0", log_every_steps=100, device="cpu")
    trained = Trainer(model, task, train, tmp_path / "exp", config, model_info=model.model_info()).run()
    after = objf(trained)
    print(f"toy LF-MMI objf: train {before['train']:.4f} -> {after['train']:.4f}, "
          f"held out {before['valid']:.4f} -> {after['valid']:.4f}")
    # Zero output layers: training starts from a uniform output (objf about -0.6 here). The
    # objective's distance from 0 (num = den) must fall by half on the training cuts, and
    # by a third on the held-out ones.
    assert after["train"] > 0.5 * before["train"]
    assert after["valid"] > 0.67 * before["valid"]
    # The epoch checkpoint (weights_only) rebuilds the trained model.
    loaded = load_model(tmp_path / "exp" / "epoch-10.pt")
    assert isinstance(loaded, TransformerModel)
    batch = batches["valid"]
    for got, want in zip(loaded(batch["features"], batch["feature_lens"]),
                         trained(batch["features"], batch["feature_lens"])):
        assert torch.equal(got, want)
