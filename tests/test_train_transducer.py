"""The transducer model and objective: predictor context, configs, and the losses against brute force.

The objective's full and simple losses are checked against an enumeration of every
alignment of a tiny batch in float64 (each path's probability from the model's own
predictor and joiner), which checks the wiring the loss functions do not see: the blank
that starts the predictor's input, its context, each utterance's lengths, the frame
normalisation; and the pruned objective's warm-up against icefall's schedule.
"""
import math

import pytest
import torch

from frugal.errors import BadValue, FrugalError
from frugal.lang.units import UnitCodec
from frugal.models import build_model, model_from_info
from frugal.models.transducer import Predictor
from frugal.train import ObjectiveInputs, make_objective
from frugal.train.transducer import _LossHead, pad_symbols, warmup_scales
from frugal.bin.main import main as frugal_main

FEAT = 8
ENCODER = {"type": "transformer", "preset": "transformer-small", "d_model": 16, "num_layers": 1, "num_heads": 2,
           "ff_dim": 16, "head_dim": 16, "head_bottleneck_dim": 8, "dropout": 0.0}


def tiny_model(vocab: int, **over):
    section = {"type": "transducer", "encoder": ENCODER, "encoder_dim": 12, "decoder_dim": 8, "joiner_dim": 12,
               **over}
    return build_model(section, FEAT, vocab, "test", "test")


@pytest.fixture(scope="module")
def units(tmp_path_factory):
    d = tmp_path_factory.mktemp("units")
    (d / "text").write_text("u1 AB BA\nu2 A\nu3 B AB\n")
    assert frugal_main(["prepare-units", "--text", str(d / "text"), "--unit", "char", "--output-dir",
                        str(d / "lang")]) == 0
    return d / "lang"


def test_predictor_sees_only_its_context():
    torch.manual_seed(0)
    p = Predictor(vocab_size=7, decoder_dim=8, blank=0, context_size=2)
    y = torch.tensor([[0, 3, 4, 5, 6]])
    out = p(y)
    y2 = y.clone()
    y2[0, 1] = 2  # changes outputs 1 and 2 only
    out2 = p(y2)
    assert torch.equal(out[0, 3:], out2[0, 3:]) and torch.equal(out[0, 0], out2[0, 0])
    assert not torch.allclose(out[0, 1], out2[0, 1]) and not torch.allclose(out[0, 2], out2[0, 2])
    # one step of decoding (the last two tokens, no padding) is the padded output there
    assert torch.allclose(p(y[:, 2:4], need_pad=False)[0, 0], out[0, 3])
    # blanks embed to zero: an all-blank history gives relu(0) = 0
    assert torch.equal(p(torch.zeros(1, 2, dtype=torch.long), need_pad=False), torch.zeros(1, 1, 8))


def test_model_info_round_trip_and_config_errors():
    torch.manual_seed(0)
    m = tiny_model(6).eval()
    info = m.model_info()
    assert info["type"] == "transducer" and info["config"]["encoder"]["type"] == "transformer"
    m2 = model_from_info(info)
    m2.load_state_dict(m.state_dict())
    x, n = torch.randn(2, 20, FEAT), torch.tensor([20, 11])
    assert torch.equal(m.encode(x, n)[0], m2.eval().encode(x, n)[0])
    assert m2.model_info() == info
    with pytest.raises(FrugalError, match="unknown transducer option"):
        tiny_model(6, joiner=3)
    with pytest.raises(FrugalError, match="cannot be a transducer"):
        tiny_model(6, encoder={"type": "transducer"})
    with pytest.raises(FrugalError, match="multiple of 4"):
        tiny_model(6, decoder_dim=6)
    with pytest.raises(FrugalError, match="unknown encoder type"):
        tiny_model(6, encoder={"type": "lstm"})


def test_unit_codec(units):
    codec = UnitCodec(units)
    assert codec.tokens[0] == "<blk>" and codec.vocab_size == len(codec.tokens)
    ids = codec.encode(["AB", "<UNK>", "BA"])
    assert codec.decode(ids) == ["AB", "<UNK>", "BA"]
    t = codec.ids
    # a word the lexicon lacks is spelled as prepare-units spells words; an unknown character is <unk>
    assert codec.encode(["AAB", "AZ"]) == [t["\u2581"], t["A"], t["A"], t["B"], t["\u2581"], t["A"], t["<unk>"]]


# ------------------------------------------------------------------ brute force


def _paths_logprob(logits_fn, T: int, U: int) -> float:
    """log sum over the regular RNN-T alignments of T frames and U symbols: at (t, u) emit
    symbol u+1 (stay at t) or blank (t+1); the last step is a blank at frame T-1."""
    def rec(t: int, u: int) -> float:
        lp = logits_fn(t, u)
        if t == T - 1 and u == U:
            return lp["blank"]
        terms = []
        if u < U:
            terms.append(lp["sym"] + rec(t, u + 1))
        if t < T - 1:
            terms.append(lp["blank"] + rec(t + 1, u))
        return float(torch.logsumexp(torch.tensor(terms, dtype=torch.float64), 0))
    return rec(0, 0)


def _brute_force(model, batch, codec, kind: str) -> float:
    """The objective's loss by enumeration: sum of -log p over utterances / output frames."""
    with torch.no_grad():
        enc, lens = model.encode(batch["features"], batch["feature_lens"])
        total, frames = 0.0, 0
        for b, text in enumerate(batch["texts"]):
            y = codec.encode(text.split())
            dec = model.predictor(torch.tensor([[0] + y]))[0]  # (U+1, D)
            T = int(lens[b])

            def lp(t, u):
                if kind == "full":
                    logits = model.joiner(enc[b, t], dec[u])
                else:  # the simple loss: additive joiner of the two projections
                    logits = model.simple_am_proj(enc[b, t]) + model.simple_lm_proj(dec[u])
                logp = logits.log_softmax(-1)
                return {"blank": float(logp[0]), "sym": float(logp[y[u]]) if u < len(y) else -math.inf}

            total -= _paths_logprob(lp, T, len(y))
            frames += T
    return total / frames


def _batch(texts, lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(len(texts), max(lengths), FEAT, generator=g, dtype=torch.float64)
    return {"features": feats, "feature_lens": torch.tensor(lengths), "texts": texts,
            "cut_ids": [f"c{i}" for i in range(len(texts))]}


def _objective(units, **kw):
    rnnt = kw.pop("rnnt_loss", None)
    return make_objective("transducer", ObjectiveInputs(str(units), options=kw, rnnt_loss=rnnt))


def test_full_loss_is_the_sum_over_all_alignments(units):
    torch.manual_seed(1)
    obj = _objective(units, rnnt_loss="full")
    model = obj.build_model({"type": "transducer", "encoder": ENCODER, "encoder_dim": 12, "decoder_dim": 8,
                             "joiner_dim": 12}, FEAT, "test").double().eval()
    batch = _batch(["AB A", "B", "BA"], [12, 7, 9])  # 4, 3, 3 output frames
    out = obj(model, batch)
    assert out["loss"].item() == pytest.approx(_brute_force(model, batch, obj.codec, "full"), rel=1e-12)


def test_simple_loss_and_warmup_of_the_pruned_objective(units):
    torch.manual_seed(2)
    obj = _objective(units, lm_scale=0.0, warm_step=100, prune_range=2)
    model = obj.build_model({"type": "transducer", "encoder": ENCODER, "encoder_dim": 12, "decoder_dim": 8,
                             "joiner_dim": 12}, FEAT, "test").double().eval()
    batch = _batch(["AB A", "B", "BA"], [12, 7, 9])
    full = _brute_force(model, batch, obj.codec, "full")
    for step, (s, p) in [(0, (1.0, 0.1)), (50, (0.75, 0.55)), (100, (0.5, 1.0)), (5000, (0.5, 1.0))]:
        assert warmup_scales(step, 100, 0.5) == pytest.approx((s, p))
        obj.set_step(step)
        out = obj(model, batch)
        assert out["simple"].item() == pytest.approx(_brute_force(model, batch, obj.codec, "simple"), rel=1e-12)
        # the band (2 of up to 3 symbol positions a frame) keeps a subset of the paths
        assert out["pruned"].item() >= full - 1e-12
        assert out["loss"].item() == pytest.approx(s * out["simple"].item() + p * out["pruned"].item(), rel=1e-12)


def test_pruned_loss_with_a_band_over_every_node_is_the_full_loss(units):
    # k2 caps the band at S symbol positions of the padded batch: one padding column more
    # lets a band of 4 cover the 4 nodes of a frame of the longest utterance (3 symbols).
    torch.manual_seed(3)
    obj = _objective(units, lm_scale=0.0, prune_range=5)
    model = obj.build_model({"type": "transducer", "encoder": ENCODER, "encoder_dim": 12, "decoder_dim": 8,
                             "joiner_dim": 12}, FEAT, "test").double().eval()
    batch = _batch(["AB", "B", "BA"], [12, 7, 9])  # 3, 2, 3 symbols
    symbols, lens = pad_symbols([obj.codec.encode(t.split()) + [0] for t in batch["texts"]], 0, "cpu")
    losses = model(batch["features"], batch["feature_lens"], head=_LossHead(symbols, lens - 1, "pruned", obj.options))
    pruned = losses["pruned"].sum().item() / losses["frames"].item()
    assert pruned == pytest.approx(_brute_force(model, batch, obj.codec, "full"), rel=1e-12)
    # without the extra column the band (3 of 4 nodes) leaves paths out
    assert obj(model, batch)["pruned"].item() > pruned + 1e-6


def test_every_parameter_but_the_unused_heads_gets_a_gradient(units):
    torch.manual_seed(4)
    obj = _objective(units)
    model = obj.build_model({"type": "transducer", "encoder": ENCODER, "encoder_dim": 12, "decoder_dim": 8,
                             "joiner_dim": 12}, FEAT, "test")
    batch = _batch(["AB A", "B"], [12, 7])
    batch["features"] = batch["features"].float()
    obj(model, batch)["loss"].backward()
    missing = sorted(n for n, p in model.named_parameters() if p.grad is None)
    assert missing and all(n.startswith("encoder.xent_head.") for n in missing), missing


def test_bad_inputs(units, tmp_path):
    with pytest.raises(BadValue, match="unknown transducer loss option"):
        _objective(units, leaky_hmm_coefficient=0.1)
    with pytest.raises(BadValue, match="must be one of"):
        _objective(units, rnnt_loss="fast")
    with pytest.raises(BadValue, match="integer >= 2"):
        _objective(units, prune_range=1)
    obj = _objective(units)
    with pytest.raises(BadValue, match="needs a model section of type transducer"):
        obj.build_model({"type": "tdnnf"}, FEAT, "conf.yaml")
    with pytest.raises(BadValue, match="is for the transducer objective"):
        make_objective("ctc", ObjectiveInputs(str(units), rnnt_loss="full"))
    (tmp_path / "phones.txt").write_text("<eps> 0\nA 1\n")
    with pytest.raises(FrugalError):
        _objective(tmp_path)


@pytest.mark.parametrize("attention", ["linear", "improved-clustered"])
def test_transformer_encoders_with_efficient_attention(units, attention):
    # Any encoder of the chapter-5 issue: the objective trains through it (a gradient reaches
    # the attention layers), and the searches run on it.
    torch.manual_seed(5)
    obj = _objective(units)
    encoder = {**ENCODER, "attention": attention, "clusters": 3, "topk": 2}
    model = obj.build_model({"type": "transducer", "encoder": encoder, "encoder_dim": 12, "decoder_dim": 8,
                             "joiner_dim": 12}, FEAT, "test")
    assert model.model_info()["config"]["encoder"]["config"]["attention"] == attention
    # The encoder's output layer starts at zero (Kaldi's param-stddev=0): as after a first step
    with torch.no_grad():
        model.encoder.chain_head.output.weight.normal_(std=0.1)
    batch = _batch(["AB A", "B"], [12, 7])
    batch["features"] = batch["features"].float()
    obj(model, batch)["loss"].backward()
    assert model.encoder.layers[0].attn.in_proj.weight.grad.abs().sum() > 0
    from frugal.decode.transducer_search import greedy_search
    model.eval()
    with torch.no_grad():
        enc, lens = model.encode(batch["features"], batch["feature_lens"])
    assert len(greedy_search(model, enc, lens)) == 2


def test_an_empty_transcript_is_all_blanks(units):
    torch.manual_seed(6)
    for kind in ("full", "pruned"):
        obj = _objective(units, rnnt_loss=kind, lm_scale=0.0, prune_range=5)
        model = obj.build_model({"type": "transducer", "encoder": ENCODER, "encoder_dim": 12, "decoder_dim": 8,
                                 "joiner_dim": 12}, FEAT, "test").double().eval()
        batch = _batch(["", "B"], [9, 7])
        out, full = obj(model, batch), _brute_force(model, batch, obj.codec, "full")
        if kind == "full":
            assert out["full"].item() == pytest.approx(full, rel=1e-12)
        else:  # a band of 2 (k2's cap: the batch's 2 symbol positions) of the 3 nodes a frame
            assert out["pruned"].item() >= full - 1e-12 and math.isfinite(out["simple"].item())
