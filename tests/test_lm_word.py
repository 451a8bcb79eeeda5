"""Word n-gram LMs: modified Kneser-Ney by hand, normalisation, ARPA I/O, pruning, perplexity."""
import math
import random

import kaldilm
import pytest

from frugal.bin.main import main as frugal_main
from frugal.errors import FrugalError
from frugal.lm.arpa import perplexity, read_arpa
from frugal.lm.kneser_ney import estimate_kn, prune, to_arpa, train_kn_lm

# Toy corpus for a bigram model. Padded: <s> a b </s> (x3), <s> a c </s> (x2), <s> b </s>.
TOY = [["a", "b"]] * 3 + [["a", "c"]] * 2 + [["b"]]
# Bigram (highest-order) raw counts: <s> a:5  a b:3  b </s>:4  a c:2  c </s>:2  <s> b:1
#   -> count-of-counts n1=1 (<s> b), n2=2 (a c, c </s>), n3=1 (a b), n4=1 (b </s>)
#   Y = 1/(1+2*2) = 0.2;  D1 = 1 - 2*0.2*2/1 = 0.2;  D2 = 2 - 3*0.2*1/2 = 1.7;
#   D3+ = 3 - 4*0.2*1/1 = 2.2
# Unigram continuation counts (distinct left neighbours): a:1 {<s>}, b:2 {a,<s>},
#   c:1 {a}, </s>:2 {b,c}  -> n1=2, n2=2, n3=n4=0; Y = 2/(2+4) = 1/3, D1 = 1 - 2Y*2/2 = 1/3;
#   D2 = 2 - 3Y*0/2 = 2 is not < 2 and D3+ has n3 = 0: both fall back to Y = 1/3.
D1, D2, D3 = 0.2, 1.7, 2.2


def closed_form(n1, n2, n3, n4):
    y = n1 / (n1 + 2 * n2)
    return 1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3


def test_discounts_from_count_of_counts():
    model = estimate_kn(TOY, order=2)
    assert model.count_of_counts[1] == (1, 2, 1, 1)
    assert closed_form(1, 2, 1, 1) == pytest.approx((D1, D2, D3))
    assert model.discounts[1] == pytest.approx((D1, D2, D3))
    assert model.count_of_counts[0] == (2, 2, 0, 0)
    assert model.discounts[0] == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    # In a trigram model bigrams get continuation counts, except those starting with <s>,
    # which keep their raw counts (nothing precedes <s>): <s> a -> 5, a b -> 1 ({<s>}).
    trigram = estimate_kn(TOY, order=3)
    assert trigram.adjusted_counts[("<s>", "a")] == 5
    assert trigram.adjusted_counts[("a", "b")] == 1
    assert trigram.adjusted_counts[("<s>", "a", "b")] == 3


def test_hand_computed_bigram_kneser_ney():
    lm = train_kn_lm(TOY, order=2)
    # Unigrams: vocabulary V = {a, b, c, </s>, <unk>}, |V| = 5; continuation counts sum S = 6;
    # D = 1/3 for all: u(a) = u(c) = (1-1/3)/6 = 1/9, u(b) = u(</s>) = (2-1/3)/6 = 5/18,
    # gamma() = 4 * (1/3) / 6 = 2/9, so P(w) = u(w) + (2/9)/5:
    p_uni = {"a": 7 / 45, "b": 29 / 90, "c": 7 / 45, "</s>": 29 / 90, "<unk>": 2 / 45}
    assert sum(p_uni.values()) == pytest.approx(1.0)
    for w, p in p_uni.items():
        assert lm.log10_prob([], w) == pytest.approx(math.log10(p), abs=1e-7)
    # History a: a b (3), a c (2), S = 5. u(a b) = (3-2.2)/5 = 0.16, u(a c) = (2-1.7)/5 = 0.06,
    # gamma(a) = (2.2 + 1.7)/5 = 0.78.
    assert lm.log10_prob(["a"], "b") == pytest.approx(math.log10(0.16 + 0.78 * 29 / 90), abs=1e-7)
    assert lm.log10_prob(["a"], "c") == pytest.approx(math.log10(0.06 + 0.78 * 7 / 45), abs=1e-7)
    assert lm.log10_prob(["a"], "</s>") == pytest.approx(math.log10(0.78 * 29 / 90), abs=1e-7)
    assert lm.ngrams[0][("a",)][1] == pytest.approx(math.log10(0.78), abs=1e-7)
    # History <s>: <s> a (5: D3+), <s> b (1: D1), S = 6, gamma(<s>) = (2.2 + 0.2)/6 = 0.4.
    p_a_bos = (5 - 2.2) / 6 + 0.4 * 7 / 45
    assert lm.log10_prob(["<s>"], "a") == pytest.approx(math.log10(p_a_bos), abs=1e-7)
    # History b: b </s> (4: D3+), S = 4, gamma(b) = 2.2/4 = 0.55.
    p_end_b = (4 - 2.2) / 4 + 0.55 * 29 / 90
    # Perplexity of "a b zz": zz is an OOV (not scored, not counted); 3 events are scored.
    result = perplexity(lm, [["a", "b", "zz"]])
    assert (result.num_sentences, result.num_words, result.num_oovs) == (1, 3, 1)
    # after the OOV only </s> is left, scored without context: P(</s>) = 29/90
    expected = math.log10(p_a_bos) + math.log10(0.16 + 0.78 * 29 / 90) + math.log10(29 / 90)
    assert result.log10_prob == pytest.approx(expected, abs=1e-6)
    assert result.perplexity == pytest.approx(10 ** (-expected / 3))
    assert result.perplexity_no_eos == pytest.approx(10 ** (-expected / 2))
    full = perplexity(lm, [["a", "b"]])
    assert full.log10_prob == pytest.approx(
        math.log10(p_a_bos) + math.log10(0.16 + 0.78 * 29 / 90) + math.log10(p_end_b), abs=1e-6)


def parse_arpa_text(text):
    """Independent reader for the tests: {ngram: (log10 p, log10 bow)} and the order."""
    table, order = {}, 0
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("\\") and line.endswith("-grams:"):
            order = int(line[1:-7])
        elif line and not line.startswith("\\") and not line.startswith("ngram ") and order:
            f = line.split()
            bow = float(f[order + 1]) if len(f) == order + 2 else 0.0
            table[tuple(f[1:order + 1])] = (float(f[0]), bow)
    return table, order


def backoff_prob(table, order, hist, w):
    hist = tuple(hist)[-(order - 1):] if order > 1 else ()
    if hist + (w,) in table:
        return 10 ** table[hist + (w,)][0]
    if not hist:
        return 0.0
    return 10 ** table.get(hist, (0.0, 0.0))[1] * backoff_prob(table, order, hist[1:], w)


def random_corpus(seed, n):
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(25)]
    # a skewed, partly predictable source: each word prefers a few successors
    succ = {w: rng.sample(vocab, 3) for w in vocab}
    out = []
    for _ in range(n):
        w = rng.choice(vocab[:8])
        sent = [w]
        for _ in range(rng.randint(0, 9)):
            w = rng.choice(succ[w]) if rng.random() < 0.8 else rng.choice(vocab)
            sent.append(w)
        out.append(sent)
    return out


@pytest.mark.parametrize("order,cutoffs,max_ngrams", [
    (1, (), None), (2, (), None), (3, (), None), (4, (), None), (3, (0, 1, 1), None), (3, (), 300), (4, (0, 0, 1), 150),
])
def test_every_history_sums_to_one(tmp_path, order, cutoffs, max_ngrams):
    corpus = random_corpus(0, 250)
    lm = train_kn_lm(corpus, order, cutoffs, max_ngrams)
    path = tmp_path / "lm.arpa"
    lm.write(path)
    table, file_order = parse_arpa_text(path.read_text())
    assert file_order == order
    if max_ngrams is not None:
        assert len(table) == max_ngrams
    vocab = [g[0] for g in table if len(g) == 1 and g[0] != "<s>"]
    histories = {()} | {g for g in table if len(g) < order and g[-1] != "</s>"}
    histories |= {("w3", "zz"), ("<s>", "w1", "w24")}  # unseen contexts back off too
    for h in histories:
        total = sum(backoff_prob(table, order, h, w) for w in vocab)
        assert total == pytest.approx(1.0, abs=1e-6), h
        # the library's own scoring agrees with the independent reading of the file
        for w in ("w1", "</s>", "<unk>"):
            assert 10 ** lm.log10_prob(h, w) == pytest.approx(backoff_prob(table, order, h, w), rel=1e-6)


def test_pruning_sizes_and_cost():
    corpus = random_corpus(1, 300)
    model = estimate_kn(corpus, 3)
    full = to_arpa(model, prune(model))
    cut = to_arpa(model, prune(model, cutoffs=[0, 0, 1]))
    raw3 = sum(1 for g, c in model.raw_counts.items() if len(g) == 3 and c > 1)
    assert cut.num_ngrams()[2] == raw3 < full.num_ngrams()[2]
    assert cut.num_ngrams()[:2] == full.num_ngrams()[:2]
    small = to_arpa(model, prune(model, max_ngrams=400))
    assert sum(small.num_ngrams()) == 400
    # every kept n-gram's history and back-off target are kept
    for k in (2, 3):
        for g in small.ngrams[k - 1]:
            assert g[:-1] in small.ngrams[k - 2] and g[1:] in small.ngrams[k - 2]
    ppl_full = perplexity(full, corpus).perplexity
    ppl_small = perplexity(small, corpus).perplexity
    assert ppl_full < ppl_small
    with pytest.raises(FrugalError, match="first cutoff"):
        prune(model, cutoffs=[1, 1, 1])
    with pytest.raises(FrugalError, match="non-decreasing"):
        prune(model, cutoffs=[0, 2, 1])


def test_perplexity_training_text_below_shuffled():
    corpus = random_corpus(2, 300)
    lm = train_kn_lm(corpus, 3)
    rng = random.Random(0)
    shuffled = [rng.sample(s, len(s)) for s in corpus]
    assert perplexity(lm, corpus).perplexity < 0.8 * perplexity(lm, shuffled).perplexity


def test_closed_vocabulary_maps_to_unk():
    lm = train_kn_lm([["a", "b", "x"], ["a", "y"]], 2, vocab=["a", "b"])
    assert lm.vocab == ["</s>", "<s>", "<unk>", "a", "b"]
    assert ("a", "<unk>") in lm.ngrams[1]
    r = perplexity(lm, [["a", "q"]], map_oov_to_unk=True)
    assert r.num_oovs == 0
    assert r.log10_prob == pytest.approx(
        lm.log10_prob(["<s>"], "a") + lm.log10_prob(["<s>", "a"], "<unk>") + lm.log10_prob(["<unk>"], "</s>"))


def test_arpa_round_trip_and_kaldilm(tmp_path):
    lm = train_kn_lm(random_corpus(3, 200), 3)
    path = tmp_path / "lm.arpa"
    lm.write(path)
    back = read_arpa(path)
    assert back.num_ngrams() == lm.num_ngrams()
    for table, table_back in zip(lm.ngrams, back.ngrams):
        assert table.keys() == table_back.keys()
        for g, (p, b) in table.items():
            assert table_back[g] == pytest.approx((p, b), abs=1e-6)
    path2 = tmp_path / "again.arpa"
    back.write(path2)
    assert path2.read_text() == path.read_text()
    # Kaldi's arpa2fst (kaldilm) accepts it and every word gets a symbol
    fst_text = kaldilm.arpa2fst(str(path), str(tmp_path / "G.fst"), disambig_symbol="#0",
                                write_symbol_table=str(tmp_path / "words.txt"))
    assert (tmp_path / "G.fst").stat().st_size > 0
    syms = {line.split()[0] for line in (tmp_path / "words.txt").read_text().splitlines()}
    assert set(lm.vocab) <= syms
    # one arc per n-gram except those predicting <s> or ending in </s> (final weights) + backoffs
    assert len(fst_text.splitlines()) > sum(lm.num_ngrams()) - 10


BROKEN = {
    "bad_number": ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\ta\nx.5\tb\n\n\\end\\\n", 6, "not a number"),
    "fields": ("\\data\\\nngram 1=1\nngram 2=1\n\n\\1-grams:\n-1\ta\t-0.5\n\n\\2-grams:\n-1\ta\n\n\\end\\\n",
               9, "2-gram line"),
    "count": ("\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-1\ta\n-1\tb\n\n\\2-grams:\n-1\ta b\n\\end\\\n",
              9, "declares 3 1-grams but 2"),
    "data_line": ("\\data\\\nngram one=3\n", 2, "expected 'ngram K=COUNT'"),
    "section": ("\\data\\\nngram 1=1\n\n\\3-grams:\n", 4, "out of order"),
    "nan": ("\\data\\\nngram 1=1\n\n\\1-grams:\nnan\ta\n\\end\\\n", 5, "not a finite"),
    "duplicate": ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\ta\n-2\ta\n\\end\\\n", 6, "duplicate"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_arpa_names_file_and_line(tmp_path, name):
    text, line, what = BROKEN[name]
    path = tmp_path / f"{name}.arpa"
    path.write_text(text)
    with pytest.raises(FrugalError) as e:
        read_arpa(path)
    assert f"{path}:{line}:" in str(e.value) and what in str(e.value)


def test_truncated_arpa(tmp_path):
    path = tmp_path / "t.arpa"
    path.write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-1\ta\n")
    with pytest.raises(FrugalError, match="no \\\\end"):
        read_arpa(path)
    path.write_text("just text\n")
    with pytest.raises(FrugalError, match="not an ARPA file"):
        read_arpa(path)


def test_cli_make_word_lm_and_perplexity(tmp_path, capsys, caplog):
    text = tmp_path / "text"
    text.write_text("".join(f"utt{i} {' '.join(s)}\n" for i, s in enumerate(random_corpus(4, 150))))
    arpa = tmp_path / "lm" / "lm.arpa"
    assert frugal_main(["make-word-lm", "--text", str(text), "--order", "3", "--output", str(arpa),
                        "--cutoffs", "0,0,1", "--max-ngrams", "300"]) == 0
    lm = read_arpa(arpa)
    assert sum(lm.num_ngrams()) <= 300 and lm.order == 3
    test = tmp_path / "test.txt"
    test.write_text("w1 w2 oov1\nw3 zz oov1\n")
    assert frugal_main(["lm-perplexity", "--arpa", str(arpa), "--text", str(test), "--no-uttid"]) == 0
    out = capsys.readouterr().out
    assert "2 sentences, 6 words, 3 OOVs" in out
    assert f"2 word(s) of {test} are not in the LM: oov1 (2) zz (1)" in caplog.text  # most frequent first
    r = perplexity(lm, [["w1", "w2", "oov1"], ["w3", "zz", "oov1"]])
    assert r.oov_words == {"oov1": 2, "zz": 1}
    assert f"ppl= {r.perplexity:.6g}" in out
    bad = tmp_path / "bad.txt"
    bad.write_text("u1 a b\nu2 a </s> b\n")
    assert frugal_main(["make-word-lm", "--text", str(bad), "--output", str(tmp_path / "x.arpa")]) == 1
    assert f"{bad}:2:" in capsys.readouterr().err
    assert not (tmp_path / "x.arpa").exists()
