"""Neural TCN word LM: causality, normalisation, batched scoring vs one prefix at a time,
training vs uniform and unigram perplexities, Monte-Carlo dropout, checkpoints, CLI."""
import copy
import math
from collections import Counter

import pytest
import torch

from frugal.bin.main import main as frugal_main
from frugal.data.mini_text import SentenceGenerator
from frugal.errors import FrugalError
from frugal.lm.neural import NeuralLm, TcnLmConfig, Vocabulary, sampled_dropout
from frugal.lm.neural_train import TrainOptions, train_tcn_lm

SMALL = TcnLmConfig(num_layers=3, embed_dim=64, hidden_dim=128, kernel_size=3, dropout=0.2)


def mini_sentences(seed, n):
    gen = SentenceGenerator(seed)
    return [gen().split() for _ in range(n)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # A tiny model on a shared 2-core machine: thread synchronisation costs more than it gives.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def corpus():
    return mini_sentences(1, 1000), mini_sentences(2, 150)


@pytest.fixture(scope="module")
def trained(corpus):
    train, dev = corpus
    vocab = Vocabulary.from_sentences(train)
    return train_tcn_lm(train, dev, vocab, SMALL, TrainOptions(epochs=6, seed=0))


def test_predictions_depend_only_on_earlier_words(trained, corpus):
    lm = trained
    words = lm.vocab.output_words[2:]
    sentence = next(s for s in corpus[0] if len(s) >= 18)
    base = lm.next_word_log_probs(sentence)
    assert base.shape == (len(sentence) + 1, len(lm.vocab.output_words))
    rf = lm.config.receptive_field
    assert rf == 15 and len(sentence) > rf
    for k in range(len(sentence)):
        changed = list(sentence)
        changed[k] = words[(words.index(sentence[k]) + 7) % len(words)]
        out = lm.next_word_log_probs(changed)
        # Row i predicts word i from words < i: rows 0..k cannot see word k.
        assert torch.allclose(out[:k + 1], base[:k + 1], atol=1e-6, rtol=0), k
        # Word k is input position k + 1: rows k+1 .. k+rf see it, later rows do not.
        seen = slice(k + 1, k + rf + 1)
        assert (out[seen] - base[seen]).abs().amax(dim=1).min() > 1e-4, k
        assert torch.allclose(out[k + rf + 1:], base[k + rf + 1:], atol=1e-6, rtol=0), k


def test_distributions_sum_to_one_over_the_vocabulary(trained):
    lm = trained
    assert "<s>" not in lm.vocab.output_words
    assert {"</s>", "<unk>"} <= set(lm.vocab.output_words)
    assert len(lm.vocab.output_words) == len(lm.vocab) - 1
    for sentence in (["THE", "KING", "SLEPT"], [], ["NOTAWORD", "KING"]):
        probs = lm.next_word_log_probs(sentence).exp()
        assert torch.allclose(probs.sum(dim=1), torch.ones(len(sentence) + 1, dtype=torch.float64),
                              atol=1e-5)


def slow_sentence_log_prob(lm, sentence):
    """Sum over positions of ln P(w_i | w_<i), one prefix at a time, without batching."""
    outputs = lm.vocab.output_words
    total = 0.0
    for i, w in enumerate(list(sentence) + ["</s>"]):
        target = w if w in outputs else lm.vocab.unk
        total += float(lm.next_word_log_probs(sentence[:i])[-1, outputs.index(target)])
    return total


def test_batched_sentence_log_probs_equal_prefix_by_prefix_sums(trained, corpus):
    lm = trained
    sentences = corpus[1][:25] + [[], ["NOTAWORD"], ["THE", "NOTAWORD", "KING", "SLEPT"]]
    fast = lm.sentence_log_probs(sentences, max_tokens=60)  # several batches of mixed lengths
    assert fast.shape == (len(sentences),) and fast.dtype == torch.float64
    slow = torch.tensor([slow_sentence_log_prob(lm, s) for s in sentences], dtype=torch.float64)
    assert torch.allclose(fast, slow, atol=1e-4, rtol=0)
    # A word outside the vocabulary scores as the unknown word.
    assert fast[-1] == pytest.approx(float(lm.sentence_log_probs([["THE", "<unk>", "KING", "SLEPT"]])[0]))


def test_training_beats_uniform_and_unigram(trained, corpus):
    train, dev = corpus
    lm = trained
    nn_ppl = lm.perplexity(dev)
    assert nn_ppl.num_words == sum(len(s) for s in dev)
    # The perplexity logged during training is the one of the kept model.
    assert lm.train_info["dev_ppl"] == pytest.approx(nn_ppl.perplexity, rel=1e-6)
    uniform = len(lm.vocab.output_words)
    # Add-one unigram over the same vocabulary (sentence ends included), from the same text.
    counts = Counter(lm.vocab.index(w) for s in train for w in s)
    counts[lm.vocab.index("</s>")] = len(train)
    total = sum(counts.values()) + uniform
    log_prob = sum(math.log((counts[lm.vocab.index(w)] + 1) / total) for s in dev for w in s + ["</s>"])
    unigram = math.exp(-log_prob / (nn_ppl.num_words + len(dev)))
    assert 100 < unigram < uniform
    assert nn_ppl.perplexity < uniform / 4
    assert nn_ppl.perplexity < 0.6 * unigram, (nn_ppl.perplexity, unigram)


def test_monte_carlo_dropout(trained, corpus):
    lm = trained
    sentences = corpus[1][:40]
    rng_state = torch.get_rng_state()
    plain = lm.sentence_log_probs(sentences)
    assert torch.equal(plain, lm.sentence_log_probs(sentences, dropout=False))
    a = lm.sentence_log_probs(sentences, dropout=True, seed=3)
    b = lm.sentence_log_probs(sentences, dropout=True, seed=3)
    c = lm.sentence_log_probs(sentences, dropout=True, seed=4)
    assert torch.equal(a, b)
    assert (a - c).abs().min() > 0 and not torch.allclose(a, plain, atol=1e-3)
    many = lm.sentence_log_probs(sentences, dropout=True, seed=5, num_samples=8)
    assert many.shape == (8, len(sentences))
    assert torch.equal(many, lm.sentence_log_probs(sentences, dropout=True, seed=5, num_samples=8))
    # Every sample has its own masks; the repeated batch must not repeat masks.
    assert all((many[i] - many[j]).abs().min() > 0 for i in range(8) for j in range(i))
    # Scoring draws from its own generator, never from the global RNG.
    assert torch.equal(torch.get_rng_state(), rng_state)
    # Unseeded calls give fresh masks.
    assert not torch.equal(lm.sentence_log_probs(sentences, dropout=True),
                           lm.sentence_log_probs(sentences, dropout=True))
    # With p = 0 the dropout path is the eval-mode model.
    no_drop = copy.deepcopy(lm)
    no_drop.model.config = TcnLmConfig(**{**no_drop.config.__dict__, "dropout": 0.0})
    assert torch.allclose(no_drop.sentence_log_probs(sentences, dropout=True, seed=1), plain, atol=1e-9)
    with pytest.raises(ValueError):
        lm.sentence_log_probs(sentences, num_samples=2)


def test_sampled_dropout_rate_and_scale():
    g = torch.Generator()
    g.manual_seed(0)
    x = torch.ones(200_000)
    y = sampled_dropout(x, 0.3, g)
    kept = y != 0
    assert abs(kept.double().mean().item() - 0.7) < 0.005
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))
    assert torch.equal(sampled_dropout(x, 0.3, None), x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_training_and_scoring(trained, corpus):
    train, dev = corpus
    sentences = dev[:30]
    gpu = copy.deepcopy(trained).to("cuda")
    assert torch.allclose(gpu.sentence_log_probs(sentences), trained.sentence_log_probs(sentences), atol=1e-3)
    a = gpu.sentence_log_probs(sentences, dropout=True, seed=1, num_samples=4)
    assert a.shape == (4, 30)
    assert torch.equal(a, gpu.sentence_log_probs(sentences, dropout=True, seed=1, num_samples=4))
    lm = train_tcn_lm(train, dev, trained.vocab, SMALL, TrainOptions(epochs=2, device="cuda"))
    assert lm.device.type == "cuda"
    assert lm.perplexity(dev).perplexity < len(trained.vocab.output_words) / 2


def test_checkpoint_round_trip_weights_only(trained, corpus, tmp_path):
    path = tmp_path / "model.pt"
    trained.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    d = torch.load(path, weights_only=True)
    assert d["kind"] == "FrugalNeuralLm" and d["vocab"] == trained.vocab.words
    loaded = NeuralLm.load(path)
    sentences = corpus[1][:10]
    assert torch.equal(loaded.sentence_log_probs(sentences), trained.sentence_log_probs(sentences))
    assert torch.equal(loaded.sentence_log_probs(sentences, dropout=True, seed=2),
                       trained.sentence_log_probs(sentences, dropout=True, seed=2))


def test_load_rejects_other_files(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"kind": "ChainDenGraph", "x": torch.zeros(2)}, other)
    text = tmp_path / "text.txt"
    text.write_text("a b c\n")
    for path in (other, text, tmp_path / "missing.pt"):
        with pytest.raises(FrugalError) as e:
            NeuralLm.load(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)


def write_lang_words(lang, words, oov):
    lang.mkdir()
    table = ["<eps>"] + sorted(words + [oov]) + ["#0", "<s>", "</s>"]
    (lang / "words.txt").write_text("".join(f"{w} {i}\n" for i, w in enumerate(table)))
    (lang / "oov.txt").write_text(f"{oov}\n")


def test_vocabulary_from_lang_dir(tmp_path):
    write_lang_words(tmp_path / "lang", ["KING", "THE", "SLEPT"], "<UNK>")
    vocab = Vocabulary.from_lang_dir(tmp_path / "lang")
    assert vocab.words[:2] == ["<s>", "</s>"] and vocab.unk == "<UNK>"
    assert sorted(vocab.words[2:]) == ["<UNK>", "KING", "SLEPT", "THE"]
    assert vocab.encode(["THE", "QUEEN"]) == [vocab.index("THE"), vocab.index("<UNK>")]
    (tmp_path / "lang" / "oov.txt").write_text("<unk>\n")
    with pytest.raises(FrugalError, match="oov.txt"):
        Vocabulary.from_lang_dir(tmp_path / "lang")


def test_cli_train_score_deterministic(tmp_path, capsys, corpus):
    train, dev = corpus
    text = tmp_path / "train.txt"
    text.write_text("".join(f"utt{i} {' '.join(s)}\n" for i, s in enumerate(train[:300])))
    dev_text = tmp_path / "dev.txt"
    dev_text.write_text("".join(f"d{i} {' '.join(s)}\n" for i, s in enumerate(dev[:40])))
    lang = tmp_path / "lang"
    write_lang_words(lang, sorted({w for s in train[:150] for w in s}), "<UNK>")
    common = ["--text", str(text), "--dev-text", str(dev_text), "--lang", str(lang), "--epochs", "2",
              "--embed-dim", "16", "--hidden-dim", "32", "--dropout", "0.1"]
    outs = [tmp_path / f"m{k}.pt" for k in range(3)]
    for out, seed in zip(outs, (5, 5, 6)):
        assert frugal_main(["train-nnlm", *common, "--seed", str(seed), "--output", str(out)]) == 0
    sd = [torch.load(p, weights_only=True)["state_dict"] for p in outs]
    assert all(torch.equal(sd[0][k], sd[1][k]) for k in sd[0])
    assert not all(torch.equal(sd[0][k], sd[2][k]) for k in sd[0])

    lm = NeuralLm.load(outs[0])
    assert lm.vocab.unk == "<UNK>"
    assert len(lm.vocab) == len((lang / "words.txt").read_text().splitlines()) - 2  # <eps>, #0
    capsys.readouterr()
    assert frugal_main(["nnlm-score", "--model", str(outs[0]), "--text", str(dev_text)]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [f[0] for f in lines] == [f"d{i}" for i in range(40)]
    expected = lm.sentence_log_probs(dev[:40])
    printed = torch.tensor([float(f[1]) for f in lines], dtype=torch.float64)
    assert torch.allclose(printed, expected, atol=1e-5)

    def samples(seed):
        assert frugal_main(["nnlm-score", "--model", str(outs[0]), "--text", str(dev_text),
                            "--dropout-samples", "3", "--seed", str(seed)]) == 0
        return [line.split()[1:] for line in capsys.readouterr().out.splitlines()]
    first = samples(1)
    assert len(first) == 40 and all(len(f) == 3 for f in first)
    assert first == samples(1) and first != samples(2)


def test_cli_bad_input_one_line_naming_the_file(tmp_path, capsys, corpus):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    dev = tmp_path / "dev.txt"
    dev.write_text("u1 THE KING\n")
    assert frugal_main(["train-nnlm", "--text", str(empty), "--dev-text", str(dev),
                        "--output", str(tmp_path / "m.pt")]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("frugal train-nnlm: error:") and str(empty) in err
    assert not (tmp_path / "m.pt").exists()
    other = tmp_path / "den.pt"
    torch.save({"kind": "ChainDenGraph"}, other)
    assert frugal_main(["nnlm-score", "--model", str(other), "--text", str(dev)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("frugal nnlm-score: error:") and str(other) in err
