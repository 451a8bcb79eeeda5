"""Phone LM (Kaldi chain-est-phone-lm semantics) against hand counts and invariants."""
import math
import random
from collections import defaultdict

import kaldifst
import pytest

from frugal.bin.main import main as frugal_main
from frugal.errors import FrugalError
from frugal.lm.phone_lm import estimate_phone_lm, integer_repeats

A, B, C = 1, 2, 3
TOY = [[A, B, C], [A, B, B, C], [B, C]]


def test_toy_unpruned_trigram_hand_counts():
    # Histories start at (<s>,) and keep at most order-1 = 2 phones; 0 is <s> and </s>.
    # Counts (history -> next): (<s>)->a:2,b:1   (<s>,a)->b:2   (a,b)->c:1,b:1
    # (b,b)->c:1   (<s>,b)->c:1   (b,c)->end:3.  With no pruning the probabilities are
    # these relative frequencies.
    lm = estimate_phone_lm([(1.0, TOY)], ngram_order=3, no_prune_ngram_order=3, num_extra_states=100)
    assert lm.num_states == 6
    expected = {
        ((), A): 2 / 3, ((), B): 1 / 3, ((), C): 0.0, ((), 0): 0.0,
        ((A,), B): 1.0,
        ((A, B), C): 1 / 2, ((A, B), B): 1 / 2,
        ((A, B, B), C): 1.0,
        ((A, B, C), 0): 1.0, ((A, B, B, C), 0): 1.0,
        ((B,), C): 1.0, ((B, C), 0): 1.0, ((B, C), A): 0.0,
    }
    for (hist, phone), p in expected.items():
        assert math.exp(lm.log_prob(hist, phone)) == pytest.approx(p, abs=1e-12), (hist, phone)
    # log-likelihood of the training data: only <s>->a (twice), <s>->b, (a,b)->c, (a,b)->b
    # have probabilities below 1
    total = sum(lm.sentence_log_prob(s) for s in TOY)
    assert total == pytest.approx(2 * math.log(2 / 3) + math.log(1 / 3) + 2 * math.log(1 / 2))


def test_toy_bigram_no_prune_order_2_hand_counts():
    # order 3, no-prune order 2, 0 extra states: only the bigram states survive
    # (basic states = histories of length 1: <s>, a, b, c). Everything is merged into them:
    # (<s>)->a:2,b:1  (a)->b:2  (b)->c:3,b:1  (c)->end:3
    lm = estimate_phone_lm([(1.0, TOY)], ngram_order=3, no_prune_ngram_order=2, num_extra_states=0)
    assert lm.num_states == 4
    assert sorted(lm.histories) == [(0,), (A,), (B,), (C,)]
    assert math.exp(lm.log_prob([A, B], C)) == pytest.approx(3 / 4)
    assert math.exp(lm.log_prob([A, B], B)) == pytest.approx(1 / 4)
    assert math.exp(lm.log_prob([B, B, C], 0)) == pytest.approx(1.0)


def _relative_frequencies(sources, order):
    """Independent reference: weighted n-gram relative frequencies (no pruning)."""
    num = defaultdict(float)
    den = defaultdict(float)
    for w, seqs in sources:
        for seq in seqs:
            padded = [0] + list(seq)
            for i, p in enumerate(list(seq) + [0]):
                hist = tuple(padded[max(0, i + 1 - (order - 1)):i + 1])
                num[hist, p] += w
                den[hist] += w
    return num, den


def _random_corpus(seed, n, vocab=8, max_len=12):
    rng = random.Random(seed)
    return [[rng.randint(1, vocab) for _ in range(rng.randint(1, max_len))] for _ in range(n)]


def test_weighted_sources_scale_counts():
    sup, unsup = _random_corpus(1, 40), _random_corpus(2, 60)
    sources = [(1.5, sup), (1.0, unsup)]
    lm = estimate_phone_lm(sources, ngram_order=3, no_prune_ngram_order=3, num_extra_states=10**6)
    num, den = _relative_frequencies(sources, 3)
    for seq in sup[:10] + unsup[:10]:
        padded = [0] + seq
        for i, p in enumerate(seq + [0]):
            hist = tuple(padded[max(0, i - 1):i + 1])
            assert lm.log_prob(seq[:i], p) == pytest.approx(math.log(num[hist, p] / den[hist]), abs=1e-9)
    assert lm.num_states == len(den)
    # a weight of 2 is the same as the data twice (Kaldi's --num-repeats)
    twice = estimate_phone_lm([(2.0, sup)], 4, 3, 20)
    repeated = estimate_phone_lm([(1.0, sup + sup)], 4, 3, 20)
    assert twice.to_openfst().to_str() == repeated.to_openfst().to_str()
    assert integer_repeats([1.5, 1.0]) == ([3, 2], 2)
    assert estimate_phone_lm([(0.0, unsup), (1.0, sup)], 3, 3, 10**6).num_states == estimate_phone_lm(
        [(1.0, sup)], 3, 3, 10**6).num_states


def _state_sums(fst):
    sums = []
    for s in range(fst.num_states):
        total = sum(math.exp(-arc.weight.value) for arc in kaldifst.ArcIterator(fst, s))
        final = fst.final(s).value
        if math.isfinite(final):
            total += math.exp(-final)
        sums.append(total)
    return sums


@pytest.mark.parametrize("extra", [0, 5, 40])
def test_pruning_reaches_target_and_stays_normalised(extra):
    data = _random_corpus(3, 300)
    # basic states (no-prune order 3): all distinct 2-phone histories, i.e. consecutive
    # pairs of <s> + sentence (every such pair is followed by a phone or by </s>)
    basic = {tuple(([0] + s)[i:i + 2]) for s in data for i in range(len(s))}
    full = estimate_phone_lm([(1.0, data)], 4, 3, 10**6)
    lm = estimate_phone_lm([(1.0, data)], 4, 3, extra)
    assert full.num_states > len(basic) + extra
    # Kaldi's target is len(basic) + extra; the <s> state (history length 1) is not among
    # the basic states yet can never be pruned, so with 0 extra states one more remains.
    assert lm.num_states == max(len(basic) + extra, len(basic) + 1)
    fst = lm.to_openfst()
    assert fst.num_states == lm.num_states
    assert _state_sums(fst) == pytest.approx([1.0] * lm.num_states, abs=1e-5)
    for s in range(lm.num_states):
        assert sum(math.exp(lp) for lp, _ in lm.arcs[s].values()) + math.exp(
            lm.final_log_probs[s]) == pytest.approx(1.0, abs=1e-12)
        # an arc lands on a state whose history is a suffix of (history + phone)
        for p, (_, d) in lm.arcs[s].items():
            h, hd = lm.histories[s] + (p,), lm.histories[d]
            assert len(hd) >= 2 and h[len(h) - len(hd):] == hd
    # every training sentence still has a path, and pruning can only lose likelihood
    ll_full = sum(full.sentence_log_prob(s) for s in data)
    ll = sum(lm.sentence_log_prob(s) for s in data)
    assert math.isfinite(ll) and ll < ll_full


def test_cli_writes_fst_and_reads_symbols(tmp_path, capsys):
    phones = tmp_path / "phones.txt"
    phones.write_text("<eps> 0\nSIL 1\na 2\nb 3\n")
    sup = tmp_path / "sup.txt"
    sup.write_text("u1 SIL a b SIL\nu2 SIL a SIL\n")
    unsup = tmp_path / "unsup.txt"
    unsup.write_text("u3 SIL b SIL\n")
    out = tmp_path / "lm" / "phone_lm.fst"
    rc = frugal_main(["make-phone-lm", "--phones", str(phones), "--phone-seqs", f"{sup}:1.5",
                      str(unsup), "--output", str(out), "--text-output", str(tmp_path / "lm.txt"),
                      "--ngram-order", "3", "--no-prune-ngram-order", "2"])
    assert rc == 0
    fst = kaldifst.StdVectorFst.read(str(out))
    # start state <s>: SIL only;  P(a | <s> SIL) = 1.5*2 / (1.5*2 + 1) = 3/4
    start = fst.start
    (arc,) = list(kaldifst.ArcIterator(fst, start))
    assert arc.ilabel == 1 and arc.weight.value == pytest.approx(0.0, abs=1e-6)
    probs = {a.ilabel: math.exp(-a.weight.value) for a in kaldifst.ArcIterator(fst, arc.nextstate)}
    assert probs == pytest.approx({2: 0.75, 3: 0.25})
    assert _state_sums(fst) == pytest.approx([1.0] * fst.num_states, abs=1e-5)
    assert "history: <s> SIL" in (tmp_path / "lm.txt").read_text()

    bad = tmp_path / "bad.txt"
    bad.write_text("u1 SIL a\nu2 SIL zz SIL\n")
    rc = frugal_main(["make-phone-lm", "--phones", str(phones), "--phone-seqs", str(bad),
                      "--output", str(tmp_path / "x.fst")])
    assert rc == 1
    assert f"{bad}:2: phone 'zz'" in capsys.readouterr().err
    assert not (tmp_path / "x.fst").exists()


def test_bad_options():
    with pytest.raises(FrugalError, match=r"no_prune_ngram_order 4: must be in \[1, ngram order 3\]"):
        estimate_phone_lm([(1.0, TOY)], ngram_order=3, no_prune_ngram_order=4)
    with pytest.raises(FrugalError, match="weight"):
        estimate_phone_lm([(-1.0, TOY)])
