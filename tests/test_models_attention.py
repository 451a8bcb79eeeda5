"""Efficient attention (thesis ch. 5): every kind against brute-force float64 references.

References (spec section 2.7): linear = the materialised φ(Q)φ(K)ᵀ formula; causal linear =
the masked formula = the RNN recurrence; its custom backward = gradcheck / autograd of the
naive form; clustered with one query per cluster = softmax; improved clustered with k = N
= softmax, with k = 0 = clustered; Proposition 2 row by row; padding never changes the
unpadded outputs; K-means assignments are the nearest centroids by popcount.
"""
import json
import math

import pytest
import torch

from frugal.bin.main import main as frugal_main
from frugal.errors import FrugalError
from frugal.models import TransformerModel, model_from_info, set_attention, transformer_config
from frugal.models.attention import (KINDS, CausalLinearProduct, attention, causal_linear_step, causal_product,
                                     feature_map)
from frugal.models.attention_clustered import (clustered_attention, hamming, hash_queries,
                                               improved_clustered_attention, kmeans_hamming, popcount, random_planes)

from test_decode_driver import setup  # noqa: F401  (the module fixture: yesno features, lang, HCLG)

F64 = torch.float64


def qkv(B=2, H=3, N=11, D=5, M=4, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, H, N, D, generator=g, dtype=dtype), torch.randn(B, H, N, D, generator=g, dtype=dtype),
            torch.randn(B, H, N, M, generator=g, dtype=dtype))


def softmax_reference(q, k, v, mask=None):
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(mask, float("-inf"))
    return torch.softmax(s, -1) @ v


def linear_reference(q, k, v, causal=False, pad=None):
    """Eq. 5.8: sim = φ(Q)φ(K)ᵀ materialised, rows normalised (+ε), times V."""
    sim = feature_map(q) @ feature_map(k).transpose(-1, -2)
    if pad is not None:
        sim = sim.masked_fill(pad[:, None, None, :], 0.0)
    if causal:
        sim = sim.tril()
    return (sim @ v) / (sim.sum(-1, keepdim=True) + 1e-6)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------- linear
def test_linear_matches_the_materialised_formula():
    q, k, v = qkv()
    pad = torch.tensor([[False] * 11, [False] * 7 + [True] * 4])
    torch.testing.assert_close(attention(q, k, v, "linear"), linear_reference(q, k, v), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(attention(q, k, v, "linear", pad), linear_reference(q, k, v, pad=pad),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("chunk", [1, 3, 4, 64])
def test_causal_linear_masked_formula_blocks_and_rnn_agree(chunk):
    q, k, v = qkv(N=10)
    ref = linear_reference(q, k, v, causal=True)
    out = attention(q, k, v, "causal-linear", chunk=chunk)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(attention(q, k, v, "linear", causal=True, chunk=chunk), ref, rtol=1e-12, atol=1e-12)
    state, steps = None, []
    for i in range(q.shape[2]):
        y, state = causal_linear_step(q[:, :, i], k[:, :, i], v[:, :, i], state)
        steps.append(y)
    torch.testing.assert_close(torch.stack(steps, 2), ref, rtol=1e-12, atol=1e-12)
    assert state[0].shape == (2, 3, 5, 4) and state[1].shape == (2, 3, 5)  # constant-size state


def test_causal_product_custom_backward():
    g = gen(1)
    q, k, v = (torch.rand(1, 2, 7, d, generator=g, dtype=F64, requires_grad=True) for d in (3, 3, 2))
    assert torch.autograd.gradcheck(lambda a, b, c: CausalLinearProduct.apply(a, b, c, 3), (q, k, v))
    # Against autograd of the naive masked form, through the whole causal linear attention.
    q, k, v = (t.detach().requires_grad_() for t in qkv(N=9))
    w = torch.randn(2, 3, 9, 4, generator=g, dtype=F64)
    (attention(q, k, v, "causal-linear", chunk=4) * w).sum().backward()
    fast = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    (linear_reference(q, k, v, causal=True) * w).sum().backward()
    for a, b in zip(fast, (q.grad, k.grad, v.grad)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(causal_product(q, k, v, 2), (q @ k.transpose(-1, -2)).tril() @ v)


# ------------------------------------------------------------------------- softmax, top-k
def test_softmax_and_topk_match_references():
    q, k, v = qkv()
    pad = torch.tensor([[False] * 11, [False] * 6 + [True] * 5])
    mask = pad[:, None, None, :]
    torch.testing.assert_close(attention(q, k, v, "softmax", pad), softmax_reference(q, k, v, mask))
    causal = torch.ones(11, 11, dtype=torch.bool).triu(1)
    torch.testing.assert_close(attention(q, k, v, "softmax", pad, causal=True),
                               softmax_reference(q, k, v, mask | causal))
    # top-k: a query-by-query reference (keep the k best scores, softmax over them).
    s = (q @ k.transpose(-1, -2) / math.sqrt(5)).masked_fill(mask, float("-inf"))
    ref = torch.empty(2, 3, 11, 4, dtype=F64)
    for b in range(2):
        for h in range(3):
            for i in range(11):
                best = sorted(range(11), key=lambda j: -float(s[b, h, i, j]))[:3]
                p = torch.softmax(s[b, h, i, best], 0)
                ref[b, h, i] = p @ v[b, h, best]
    torch.testing.assert_close(attention(q, k, v, "topk", pad, topk=3), ref)
    torch.testing.assert_close(attention(q, k, v, "topk", pad, topk=11), softmax_reference(q, k, v, mask))


# ------------------------------------------------------------------------- hashing, K-means
def test_popcount_hash_bits_and_kmeans_nearest_centroid():
    x = torch.randint(0, 2 ** 62, (500,), dtype=torch.int64, generator=gen(2))
    assert popcount(x.clone()).tolist() == [bin(int(a)).count("1") for a in x]
    q, _, _ = qkv(B=2, H=2, N=40, D=6)
    planes = random_planes(6, 63, gen(3))
    hashes = hash_queries(q, planes)
    b, h, i, bit = 1, 0, 17, 41
    assert (int(hashes[b, h, i]) >> bit) & 1 == int(float(q[b, h, i] @ planes[bit, :6]) > float(planes[bit, 6]))
    assert (hashes >= 0).all()
    valid = torch.ones(2, 40, dtype=torch.bool)
    valid[1, 25:] = False
    assign, centroids, counts = kmeans_hamming(hashes, 5, 10, 63, valid, gen(4))
    for bb in range(2):
        for hh in range(2):
            for n in range(40):
                d = [bin(int(hashes[bb, hh, n]) ^ int(c)).count("1") for c in centroids[bb, hh]]
                assert int(assign[bb, hh, n]) == d.index(min(d))
    assert counts[0].sum(-1).tolist() == [40, 40] and counts[1].sum(-1).tolist() == [25, 25]
    assert torch.equal(counts[1, 0], torch.bincount(assign[1, 0, :25], minlength=5))
    assert torch.equal(hamming(hashes, centroids).argmin(-1), assign)


# ------------------------------------------------------------------------- clustered
def test_one_query_per_cluster_is_softmax():
    q, k, v = qkv(B=1, H=2, N=12)
    hashes = hash_queries(q, random_planes(5, 63, gen(5)))
    assert all(len(set(hashes[0, h].tolist())) == 12 for h in range(2))  # distinct hashes
    ref = softmax_reference(q, k, v)
    out = clustered_attention(q, k, v, clusters=12, iterations=10, generator=gen(5))
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    out = improved_clustered_attention(q, k, v, clusters=12, topk=4, generator=gen(5))
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


def test_improved_clustered_with_k_n_is_softmax_and_with_k_0_is_clustered():
    q, k, v = qkv(N=16)
    pad = torch.tensor([[False] * 16, [False] * 10 + [True] * 6])
    ref = softmax_reference(q, k, v, pad[:, None, None, :])
    for topk in (16, 100):
        out = attention(q, k, v, "improved-clustered", pad, clusters=3, topk=topk, generator=gen(6))
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    out0 = attention(q, k, v, "improved-clustered", pad, clusters=3, topk=0, generator=gen(6))
    clus = attention(q, k, v, "clustered", pad, clusters=3, generator=gen(6))
    torch.testing.assert_close(out0, clus, rtol=1e-12, atol=1e-12)
    assert (clus - ref).abs().max() > 1e-3  # 3 clusters of 16 queries: an approximation


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_proposition_2_improved_is_closer_to_softmax_row_by_row(seed):
    """‖A^t_i − A_i‖₁ ≤ ‖A^c_j − A_i‖₁ for every query, any clustering (V = I gives the rows)."""
    q, k, _ = qkv(B=1, H=2, N=24, D=4, seed=seed)
    q = 3 * q  # peaky attention
    eye = torch.eye(24, dtype=F64).expand(1, 2, 24, 24)
    a = softmax_reference(q, k, eye)
    g = gen(seed)
    for assign in (torch.randint(0, 4, (1, 2, 24), generator=g), None):
        kw = {"clusters": 4, "assign": assign}  # None: hashing and K-means, the same draws for both
        ac = clustered_attention(q, k, eye, generator=gen(seed), **kw)
        at = improved_clustered_attention(q, k, eye, topk=5, generator=gen(seed), **kw)
        torch.testing.assert_close(at.sum(-1), torch.ones(1, 2, 24, dtype=F64))
        err_t, err_c = (at - a).abs().sum(-1), (ac - a).abs().sum(-1)
        assert (err_t <= err_c + 1e-12).all()
        assert err_t.mean() < err_c.mean()


@pytest.mark.parametrize("kind", KINDS)
def test_padding_never_changes_the_unpadded_outputs(kind):
    q, k, v = qkv(B=1, N=13)
    g = gen(7)
    pq, pk, pv = (torch.cat([t, 50 * torch.randn(1, 3, 6, t.shape[-1], generator=g, dtype=F64)], 2)
                  for t in (q, k, v))
    pad = torch.tensor([[False] * 13 + [True] * 6])
    opts = {"clusters": 4, "topk": 5, "generator": gen(8)}
    alone = attention(q, k, v, kind, **opts)
    opts["generator"] = gen(8)
    padded = attention(pq, pk, pv, kind, pad, **opts)[:, :, :13]
    torch.testing.assert_close(padded, alone, rtol=1e-10, atol=1e-10)


def test_clustered_kinds_refuse_causal_and_unknown_kinds_are_errors():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="cannot be causal"):
        attention(q, k, v, "clustered", causal=True)
    with pytest.raises(ValueError, match="unknown attention"):
        attention(q, k, v, "lsh")


# ------------------------------------------------------------------------- in the transformer
def small_model(**kw):
    torch.manual_seed(0)
    model = TransformerModel(transformer_config("transformer-small", feat_dim=12, num_pdfs=7, d_model=24,
                                                num_layers=2, num_heads=2, ff_dim=32, head_dim=16,
                                                head_bottleneck_dim=8, **kw))
    for head in (model.chain_head, model.xent_head):  # zero-initialised: outputs would not depend on attention
        torch.nn.init.normal_(head.output.weight)
    return model


@pytest.mark.parametrize("kind", KINDS)
def test_transformer_trains_and_evaluates_with_each_kind(kind):
    model = small_model(attention=kind, clusters=5, topk=4)
    x, lengths = torch.randn(2, 60, 12), torch.tensor([60, 41])
    chain, xent, _ = model(x, lengths)
    (chain.square().mean() - xent.mean()).backward()
    grads = [p.grad for p in model.layers[0].attn.parameters()]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        a, b = model(x, lengths)[0], model(x, lengths)[0]
        alone = model(x[1:, :41], lengths[1:])[0]
    assert torch.equal(a, b)  # eval is deterministic (clustered: fixed hyperplane seed)
    torch.testing.assert_close(alone[0], a[1, :14], rtol=1e-4, atol=1e-4)
    info = model.model_info()
    assert info["config"].get("attention", "softmax") == kind and ("attention" in info["config"]) == (kind != "softmax")
    assert model_from_info(info).model_info() == info


def test_set_attention_swaps_a_loaded_model(tmp_path):
    model = small_model().eval()
    info = model.model_info()
    assert "attention" not in info["config"]  # softmax records as before attention kinds existed
    x, lengths = torch.randn(2, 45, 12), torch.tensor([45, 30])
    with torch.no_grad():
        ref = model(x, lengths)[0]
        # improved clustered with k >= N is softmax exactly; clustered with few clusters is not
        set_attention(model, "improved-clustered", clusters=2, topk=64)
        torch.testing.assert_close(model(x, lengths)[0], ref, rtol=1e-4, atol=1e-4)
        set_attention(model, "clustered", clusters=2)
        assert (model(x, lengths)[0] - ref).abs().max() > 1e-4
    assert model.model_info()["config"]["attention"] == "clustered"
    assert model.model_info()["config"]["topk"] == 64  # kept from the earlier call
    with pytest.raises(FrugalError, match="unknown attention"):
        set_attention(model, "lsh")
    with pytest.raises(FrugalError, match="unknown attention option"):
        set_attention(model, "clustered", rounds=4)
    from frugal.models import TdnnfModel, tdnnf_config
    with pytest.raises(FrugalError, match="no self-attention"):
        set_attention(TdnnfModel(tdnnf_config("tdnnf-small", feat_dim=12, num_pdfs=7)), "linear")


def test_frugal_decode_attention_is_recorded_and_fingerprinted(setup, tmp_path):  # noqa: F811
    d = setup
    num_pdfs = json.loads((d / "graph/HCLG.fst.json").read_text())["num_pdfs"]
    torch.manual_seed(0)
    model = TransformerModel(transformer_config("transformer-small", feat_dim=80, num_pdfs=num_pdfs, d_model=32,
                                                num_layers=1, num_heads=2, ff_dim=32, head_dim=32,
                                                head_bottleneck_dim=16))
    torch.save({"model": model.state_dict(), "model_info": model.model_info(), "objective": "lfmmi"},
               tmp_path / "tf.pt")
    out = tmp_path / "dec"
    base = ["decode", "--model", tmp_path / "tf.pt", "--graph", d / "graph/HCLG.fst", "--words",
            d / "lang/words.txt", "--cuts", d / "fbank/cuts_test.jsonl.gz", "--output-dir", out,
            "--beam", "8", "--max-active", "100", "--lattice-beam", "1", "--skip-checks"]

    def decode(*extra):
        assert frugal_main([str(a) for a in base + list(extra)]) == 0
        return json.loads((out / "decode.json").read_text()), (out / ".done.1").read_text()

    info, plain = decode()
    assert "attention" not in info
    info, clustered = decode("--attention", "improved-clustered", "--clusters", "3", "--topk", "4")
    assert (info["attention"], info["clusters"], info["topk"]) == ("improved-clustered", 3, 4)
    assert clustered != plain  # the job was redone, not taken from the softmax decode
    mtime = (out / "hyp.1.txt").stat().st_mtime_ns
    assert decode("--attention", "improved-clustered", "--clusters", "3", "--topk", "4")[1] == clustered
    assert (out / "hyp.1.txt").stat().st_mtime_ns == mtime  # same attention: skipped
    assert decode("--attention", "clustered", "--clusters", "3")[1] not in (plain, clustered)
    # A model without attention, or --clusters without --attention: one-line errors.
    for extra in (["--model", d / "model.pt", "--attention", "linear"], ["--clusters", "3"]):
        assert frugal_main([str(a) for a in base + extra]) == 1
