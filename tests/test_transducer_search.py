"""Transducer decoding (greedy and modified beam search, token LM fusion) against brute force
and simple references, in float64."""
import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from frugal.decode.transducer_search import Hypothesis, NgramTokenLm, greedy_search, modified_beam_search
from frugal.errors import BadValue, FrugalError
from frugal.lm.arpa import read_arpa
from frugal.models import build_model
from frugal.models.transducer import TransducerConfig, TransducerModel

LN10 = math.log(10.0)

ARPA = """
\\data\\
ngram 1=5
ngram 2=5
ngram 3=2

\\1-grams:
-99\t<s>\t-0.3
-0.5\t</s>
-0.4\ta\t-0.2
-0.6\tb\t-0.25
-1.2\t<unk>\t-0.1

\\2-grams:
-0.2\t<s> a\t-0.15
-0.9\t<s> b\t-0.1
-0.5\ta b\t-0.05
-0.7\ta </s>
-0.3\tb a

\\3-grams:
-0.1\t<s> a b
-0.2\ta b a

\\end\\
"""
SYMBOLS = ["<blk>", "a", "b", "c"]  # 'c' is not in the LM: it gets <unk>


def tiny_model(V, seed=0, dim=8, context_size=2, scale=1.0):
    torch.manual_seed(seed)
    cfg = TransducerConfig(num_pdfs=V, encoder_dim=dim, decoder_dim=dim, joiner_dim=dim, context_size=context_size)
    model = TransducerModel(cfg, nn.Identity()).double()
    with torch.no_grad():  # sharper distributions than the default init: more varied paths
        model.joiner.output_linear.weight.mul_(scale)
    return model


@pytest.fixture
def arpa(tmp_path):
    path = tmp_path / "tokens.arpa"
    path.write_text(ARPA, encoding="utf-8")
    return read_arpa(path)


def lm_logprob(arpa, tokens):
    """Natural-log LM prob of a token sequence and </s>, straight from the ArpaLm."""
    words = ["<s>"] + [SYMBOLS[k] if SYMBOLS[k] in arpa else "<unk>" for k in tokens] + ["</s>"]
    return sum(arpa.log10_prob(words[:i], words[i]) for i in range(1, len(words))) * LN10


def brute_force(model, enc, arpa=None, lm_scale=0.0):
    """{token sequence: log-sum over every one-symbol-per-frame path + lm_scale * LM}."""
    T, V, c = enc.shape[0], model.vocab_size, model.context_size
    cache = {}

    def step(t, ctx):
        if (t, ctx) not in cache:
            dec = model.predictor(torch.tensor([ctx]), need_pad=False)[0, 0]
            cache[t, ctx] = model.joiner(enc[t], dec).log_softmax(-1).tolist()
        return cache[t, ctx]

    paths = {}
    with torch.no_grad():
        for choice in itertools.product(range(V), repeat=T):
            ctx, toks, score = (0,) * c, (), 0.0
            for t, k in enumerate(choice):
                score += step(t, ctx)[k]
                if k != 0:
                    toks, ctx = toks + (k,), ctx[1:] + (k,)
            paths.setdefault(toks, []).append(score)
    out = {s: float(np.logaddexp.reduce(v)) for s, v in paths.items()}
    if arpa is not None:
        out = {s: v + lm_scale * lm_logprob(arpa, s) for s, v in out.items()}
    return out


def ranked(scores):
    return sorted(scores.items(), key=lambda kv: -kv[1])


@pytest.mark.parametrize("V,T,use_lm", [(3, 4, False), (4, 3, False), (4, 3, True)])
def test_beam_search_exact_against_brute_force(V, T, use_lm, arpa):
    model = tiny_model(V, seed=V + T, scale=3.0)
    enc = torch.randn(1, T, 8, dtype=torch.float64)
    lm, lm_scale = (NgramTokenLm(arpa, SYMBOLS[:V]), 0.7) if use_lm else (None, 0.0)
    ref = ranked(brute_force(model, enc[0], arpa if use_lm else None, lm_scale))
    n = len(ref)
    assert n == sum((V - 1) ** u for u in range(T + 1))
    (hyps,) = modified_beam_search(model, enc, torch.tensor([T]), beam=n, nbest=n, lm=lm, lm_scale=lm_scale)
    assert [tuple(h.tokens) for h in hyps] == [s for s, _ in ref]
    np.testing.assert_allclose([h.score for h in hyps], [v for _, v in ref], rtol=0, atol=1e-9)
    if use_lm:
        for h in hyps:
            assert h.lm_score == pytest.approx(lm_logprob(arpa, h.tokens), abs=1e-9)
    # the 3 best with a full beam are the brute force's 3 best
    (top,) = modified_beam_search(model, enc, torch.tensor([T]), beam=n, nbest=3, lm=lm, lm_scale=lm_scale)
    assert [(tuple(h.tokens), h.score) for h in top] == [(tuple(h.tokens), h.score) for h in hyps[:3]]


@pytest.mark.parametrize("use_lm", [False, True])
def test_pruned_beam_scores_bounded_by_brute_force(use_lm, arpa):
    model = tiny_model(4, seed=5, scale=3.0)
    T = 6
    enc = torch.randn(1, T, 8, dtype=torch.float64)
    lm, lm_scale = (NgramTokenLm(arpa, SYMBOLS), 0.5) if use_lm else (None, 0.0)
    ref = brute_force(model, enc[0], arpa if use_lm else None, lm_scale)
    (hyps,) = modified_beam_search(model, enc, torch.tensor([T]), beam=4, nbest=4, lm=lm, lm_scale=lm_scale)
    assert len(hyps) == 4 and len({tuple(h.tokens) for h in hyps}) == 4
    scores = [h.score for h in hyps]
    assert scores == sorted(scores, reverse=True)
    for h in hyps:
        assert h.score <= ref[tuple(h.tokens)] + 1e-9


def beam_reference(model, enc, beam, arpa=None, lm_scale=0.0):
    """Modified beam search for one utterance with dicts: extend, merge by log-add, prune."""
    V, c = model.vocab_size, model.context_size
    lm_word = {k: s if s in (arpa or ()) else "<unk>" for k, s in enumerate(SYMBOLS)}
    hyps = {(): (0.0, 0.0)}  # tokens -> (acoustic, LM)
    with torch.no_grad():
        for t in range(enc.shape[0]):
            cand = {}
            for toks, (ac, lmv) in hyps.items():
                ctx = ((0,) * c + toks)[-c:]
                dec = model.predictor(torch.tensor([ctx]), need_pad=False)[0, 0]
                logp = model.joiner(enc[t], dec).log_softmax(-1).tolist()
                for k in range(V):
                    new, new_lm = toks, lmv
                    if k != 0:
                        new = toks + (k,)
                        if arpa is not None:
                            hist = ["<s>"] + [lm_word[i] for i in toks]
                            new_lm += arpa.log10_prob(hist, lm_word[k]) * LN10
                    if new in cand:
                        new_ac = float(np.logaddexp(cand[new][0], ac + logp[k]))
                    else:
                        new_ac = ac + logp[k]
                    cand[new] = (new_ac, new_lm)
            hyps = dict(sorted(cand.items(), key=lambda kv: -(kv[1][0] + lm_scale * kv[1][1]))[:beam])
    if arpa is not None:
        return ranked({s: ac + lm_scale * lm_logprob(arpa, s) for s, (ac, _) in hyps.items()})
    return ranked({s: ac for s, (ac, _) in hyps.items()})


@pytest.mark.parametrize("use_lm", [False, True])
def test_pruned_beam_search_against_reference(use_lm, arpa):
    model = tiny_model(4, seed=7, scale=3.0)
    lens = [8, 6]
    enc = torch.randn(len(lens), max(lens), 8, dtype=torch.float64)
    lm, lm_scale = (NgramTokenLm(arpa, SYMBOLS), 1.5) if use_lm else (None, 0.0)
    got = modified_beam_search(model, enc, torch.tensor(lens), beam=3, nbest=3, lm=lm, lm_scale=lm_scale)
    for b, n in enumerate(lens):
        ref = beam_reference(model, enc[b, :n], 3, arpa if use_lm else None, lm_scale)
        assert [tuple(h.tokens) for h in got[b]] == [s for s, _ in ref]
        np.testing.assert_allclose([h.score for h in got[b]], [v for _, v in ref], rtol=0, atol=1e-9)


def greedy_reference(model, enc, max_sym):
    """One utterance, one frame and one symbol at a time."""
    ctx, out = [0] * model.context_size, []
    with torch.no_grad():
        for t in range(enc.shape[0]):
            for _ in range(max_sym):
                dec = model.predictor(torch.tensor([ctx]), need_pad=False)[0, 0]
                k = int(model.joiner(enc[t], dec).argmax())
                if k == 0:
                    break
                out.append(k)
                ctx = ctx[1:] + [k]
    return out


@pytest.mark.parametrize("max_sym", [1, 3])
def test_greedy_search_against_reference_and_batching(max_sym):
    model = tiny_model(5, seed=1, scale=3.0)
    lens = [7, 4, 0, 5]
    enc = torch.randn(len(lens), max(lens), 8, dtype=torch.float64)  # the padding is random too
    got = greedy_search(model, enc, torch.tensor(lens), max_sym_per_frame=max_sym)
    assert sum(map(len, got)) > 0
    if max_sym > 1:
        assert any(len(g) > n for g, n in zip(got, lens))  # some frame emitted several symbols
    for b, n in enumerate(lens):
        assert got[b] == greedy_reference(model, enc[b, :n], max_sym)
        assert greedy_search(model, enc[b:b + 1, :n], torch.tensor([n]), max_sym)[0] == got[b]


@pytest.mark.parametrize("use_lm", [False, True])
def test_beam_search_batched_equals_alone(use_lm, arpa):
    model = tiny_model(4, seed=2, scale=3.0)
    lens = [6, 3, 0, 5]
    enc = torch.randn(len(lens), max(lens), 8, dtype=torch.float64)
    lm = NgramTokenLm(arpa, SYMBOLS) if use_lm else None
    batched = modified_beam_search(model, enc, torch.tensor(lens), beam=3, nbest=2, lm=lm, lm_scale=0.6)
    for b, n in enumerate(lens):
        (alone,) = modified_beam_search(model, enc[b:b + 1, :n], torch.tensor([n]), beam=3, nbest=2,
                                        lm=lm, lm_scale=0.6)
        assert [h.tokens for h in batched[b]] == [h.tokens for h in alone]
        np.testing.assert_allclose([h.score for h in batched[b]], [h.score for h in alone], rtol=0, atol=1e-9)
        np.testing.assert_allclose([h.lm_score for h in batched[b]], [h.lm_score for h in alone], rtol=0,
                                   atol=1e-9)
    empty_lm = lm_logprob(arpa, []) if use_lm else 0.0  # the empty utterance: only </s>
    assert batched[2] == [Hypothesis([], 0.6 * empty_lm, empty_lm)]


def test_ngram_token_lm_against_arpa(arpa):
    lm = NgramTokenLm(arpa, SYMBOLS)
    for n in range(4):
        for hist in itertools.product([1, 2, 3], repeat=n):
            words = ["<s>"] + [SYMBOLS[k] if k != 3 else "<unk>" for k in hist]
            vec = lm.log_probs(hist)
            assert vec[0] == 0.0
            for k in (1, 2, 3):
                ref = arpa.log10_prob(words, SYMBOLS[k] if k != 3 else "<unk>") * LN10
                assert lm.score(hist, k) == pytest.approx(ref, abs=1e-12)
                assert vec[k].item() == pytest.approx(ref, abs=1e-12)
            assert lm.final(hist) == pytest.approx(arpa.log10_prob(words, "</s>") * LN10, abs=1e-12)
    # hand-computed: trigram hits, and backoffs through listed and unlisted histories
    assert lm.score([1], 2) == pytest.approx(-0.1 * LN10, abs=1e-12)  # <s> a b
    assert lm.score([1, 2], 1) == pytest.approx(-0.2 * LN10, abs=1e-12)  # a b a
    assert lm.score([2, 1], 1) == pytest.approx((0.0 - 0.2 - 0.4) * LN10, abs=1e-12)  # bow(b a)=0, bow(a), P(a)
    assert lm.score([1], 3) == pytest.approx((-0.15 - 0.2 - 1.2) * LN10, abs=1e-12)  # c -> <unk>
    assert lm.final([1]) == pytest.approx((-0.15 - 0.7) * LN10, abs=1e-12)  # bow(<s> a), P(</s> | a)


def test_ngram_token_lm_without_unk(tmp_path):
    text = ARPA.replace("ngram 1=5", "ngram 1=4").replace("-1.2\t<unk>\t-0.1\n", "")
    path = tmp_path / "nounk.arpa"
    path.write_text(text, encoding="utf-8")
    arpa = read_arpa(path)
    with pytest.raises(FrugalError, match="'c'"):
        NgramTokenLm(arpa, SYMBOLS)
    NgramTokenLm(arpa, SYMBOLS[:3])  # every non-blank token is in the LM: fine


def test_bad_values():
    model = tiny_model(3)
    enc, lens = torch.randn(1, 2, 8, dtype=torch.float64), torch.tensor([2])
    for kwargs, name in (({"beam": 0}, "beam"), ({"nbest": 0}, "nbest"), ({"beam": 4, "nbest": 5}, "nbest")):
        with pytest.raises(BadValue) as e:
            modified_beam_search(model, enc, lens, **kwargs)
        assert e.value.name == name
    with pytest.raises(BadValue):
        greedy_search(model, enc, lens, max_sym_per_frame=0)


def test_built_model_beam_one_is_greedy():
    torch.manual_seed(3)
    model = build_model({"type": "transducer", "encoder": {"type": "transformer", "preset": "transformer-small",
                                                           "num_layers": 1},
                         "encoder_dim": 16, "decoder_dim": 16, "joiner_dim": 16}, 20, 6, "test", "test").eval()
    feats, flens = torch.randn(2, 30, 20), torch.tensor([30, 21])
    with torch.no_grad():
        enc, enc_lens = model.encode(feats, flens)
    greedy = greedy_search(model, enc, enc_lens)
    beam1 = modified_beam_search(model, enc, enc_lens, beam=1)
    assert [h[0].tokens for h in beam1] == greedy
    assert all(len(h) == 1 and math.isfinite(h[0].score) for h in beam1)
