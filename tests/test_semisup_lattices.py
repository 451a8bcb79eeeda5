"""Supervision lattices: combination of dropout lattices, neural-LM n-best rescoring, n-best
WER/SER, and the combine-lattices / nnlm-rescore tools, against brute-force enumeration and
independent references (frugal.lattice.rescore.lm_rescore, ARPA scoring by hand)."""
import math
import random

import numpy as np
import pytest
import torch

from decode_testing import enumerate_paths, random_lattice
from frugal.bin.main import main as frugal_main
from frugal.lattice.lattice import Lattice
from frugal.lattice.io import read_lattices, write_lattices
from frugal.lattice.determinize import determinize_lattice
from frugal.lattice.paths import nbest, word_sequences
from frugal.lattice.rescore import BackoffLm, lm_rescore
from frugal.graph.compile import make_grammar_fst
from frugal.lang.symbols import SymbolTable
from frugal.lm.arpa import read_arpa
from frugal.lm.neural import NeuralLm, TcnLm, TcnLmConfig, Vocabulary
from frugal.dirs import DecodeDir
from frugal.errors import FrugalError
from frugal.semisup.lattices import (NbestRescoreConfig, combine_lattices, nbest_error_rates, nnlm_rescore,
                                     normalize_lattice, supervision_table)
from frugal.semisup.supervision import SupervisionOptions, utterance_supervision

NUM_WORDS = 4
WORDS = [f"w{i}" for i in range(1, NUM_WORDS + 1)]  # word id i is w{i}


def one_path(words, frames_per_word=2, graph=1.0, acoustic=10.0, first_label=1) -> Lattice:
    """A state-level one-path lattice: each word on the first of its frames."""
    arcs, weights = [], []
    s = 0
    for i, w in enumerate(words):
        for f in range(frames_per_word):
            arcs.append((s, s + 1, first_label + (i + f) % 5, w if f == 0 else 0))
            weights.append((graph if s == 0 else 0.0, acoustic / (len(words) * frames_per_word)))
            s += 1
    finals = np.full((s + 1, 2), np.inf, dtype=np.float32)
    finals[s] = (0.0, 0.0)
    return Lattice(np.array(arcs).reshape(-1, 4), np.array(weights).reshape(-1, 2), finals)


def costs_by_words(lat, gs=1.0, acs=1.0):
    """{word sequence: lowest total cost} by enumeration."""
    out = {}
    for _, words, _, g, a in enumerate_paths(lat):
        c = gs * g + acs * a
        out[tuple(words)] = min(out.get(tuple(words), math.inf), c)
    return out


# ------------------------------------------------------------------------- combination
def test_combined_identical_one_path_lattices_have_exactly_one_path():
    lats = [one_path([1, 3, 2], graph=g, acoustic=a) for g, a in [(1, 10), (5, 3), (0.5, 40), (2, 2)]]
    comb = combine_lattices(lats)
    paths = enumerate_paths(comb)
    assert len(paths) == 1
    assert paths[0][1] == [1, 3, 2]
    assert paths[0][2] == enumerate_paths(lats[0])[0][2]  # the alignment survives
    assert paths[0][3] == pytest.approx(0, abs=1e-5) and paths[0][4] == pytest.approx(0, abs=1e-5)


def test_union_keeps_every_sampled_hypothesis_and_nothing_else():
    rng = random.Random(3)
    seqs = [[rng.randint(1, NUM_WORDS) for _ in range(rng.randint(1, 4))] for _ in range(7)]
    seqs.append(list(seqs[0]))  # a repeated sample
    # Costs far apart: without normalisation, beam 4 would keep only the cheapest samples.
    lats = [one_path(s, graph=3.0 * i, acoustic=20.0 * i) for i, s in enumerate(seqs)]
    comb = combine_lattices(lats, beam=4.0)
    got = word_sequences(comb)
    assert sorted(got) == sorted({tuple(s) for s in seqs})  # one path per distinct sequence
    unnormalised = combine_lattices(lats, beam=4.0, normalize="none")
    assert set(word_sequences(unnormalised)) == {tuple(seqs[0])}


@pytest.mark.parametrize("seed", range(6))
def test_combination_keeps_each_one_best_and_takes_the_best_normalised_cost(seed):
    rng = random.Random(seed)
    lats = [random_lattice(rng, num_frames=4, num_words=NUM_WORDS) for _ in range(4)]
    comb = combine_lattices(lats, beam=None)
    # Every input's 1-best word sequence is a path of the combination, at cost 0.
    got = costs_by_words(comb)
    for lat in lats:
        assert got[tuple(lat.best_path().words)] == pytest.approx(0.0, abs=1e-4)
    # Brute force: for each word sequence, the lowest cost over the inputs after removing each
    # input's best-path cost; no other word sequence appears.
    expected = {}
    for lat in lats:
        paths = enumerate_paths(lat)
        best = min(g + a for _, _, _, g, a in paths)
        for _, words, _, g, a in paths:
            expected[tuple(words)] = min(expected.get(tuple(words), math.inf), g + a - best)
    assert set(got) == set(expected)
    for w, c in expected.items():
        assert got[w] == pytest.approx(c, abs=1e-3)
    assert len(word_sequences(comb)) == len(got)  # determinised: one path per sequence
    # With a beam, every sequence within the beam of 0 is kept (arc pruning, as Kaldi's
    # lattice-prune, may keep a few more: paths made of arcs that are each on a good path).
    pruned = set(word_sequences(combine_lattices(lats, beam=2.0)))
    assert {w for w, c in expected.items() if c <= 2.0 - 1e-4} <= pruned <= set(expected)


@pytest.mark.parametrize("seed", range(4))
def test_cost_removal(seed):
    lat = random_lattice(random.Random(seed), num_frames=4, num_words=NUM_WORDS)
    paths = enumerate_paths(lat)
    best = normalize_lattice(lat, "best").best_path()
    assert best.graph_cost == pytest.approx(0, abs=1e-4) and best.acoustic_cost == pytest.approx(0, abs=1e-4)
    for acs in (1.0, 0.1):
        total = normalize_lattice(lat, "total", 1.0, acs)
        log_sum = np.logaddexp.reduce([-(g + acs * a) for _, _, _, g, a in enumerate_paths(total)])
        assert log_sum == pytest.approx(0.0, abs=1e-4)
    # Costs relative to the best path are unchanged.
    norm_paths = enumerate_paths(normalize_lattice(lat, "best"))
    shift = min(g + a for *_, g, a in paths)
    for (_, _, _, g, a), (_, _, _, g2, a2) in zip(paths, norm_paths):
        assert g2 + a2 == pytest.approx(g + a - shift, abs=1e-4)


def test_regular_and_am_supervision():
    rng = random.Random(11)
    best = random_lattice(rng, num_frames=5, num_words=NUM_WORDS)
    reg = utterance_supervision("u", best, [], SupervisionOptions("regular", beam=3.0), 1.0)
    assert set(word_sequences(reg)) == {w for w, c in costs_by_words(best).items()
                                       if c <= min(costs_by_words(best).values()) + 3.0 + 1e-4}
    drops = [random_lattice(rng, num_frames=5, num_words=NUM_WORDS) for _ in range(3)]
    am = utterance_supervision("u", best, drops, SupervisionOptions("am", beam=3.0), 1.0)
    assert set(word_sequences(reg)) <= set(word_sequences(am))
    for d in drops:
        assert tuple(d.best_path().words) in set(word_sequences(am))


# ------------------------------------------------------------------- n-best error rates
def test_nbest_error_rates_hand_computed():
    words = SymbolTable([("<eps>", 0), ("a", 1), ("b", 2), ("c", 3), ("x", 4), ("d", 5)])
    # utt1: "a b c" (cost 0), "a x c" (cost 1), "a b" (cost 2); ref "a b c"
    u1 = combine_lattices([one_path([1, 2, 3], graph=0), one_path([1, 4, 3], graph=1),
                           one_path([1, 2], frames_per_word=3, graph=2)], beam=None, normalize="none")
    u2 = one_path([5])
    refs = {"u1": ["a", "b", "c"], "u2": ["d"]}
    r = nbest_error_rates({"u1": u1, "u2": u2}, refs, words, n=10)
    # errors: utt1 mean (0 + 1 + 1) / 3 over 3 ref words, utt2 0 over 1; SER (2/3 + 0) / 2
    assert r.wer == pytest.approx(100 * (2 / 3) / 4)
    assert r.ser == pytest.approx(100 * (2 / 3) / 2)
    assert r.mean_paths == pytest.approx(2.0)
    r2 = nbest_error_rates({"u1": u1}, refs, words, n=2)  # "a b c", "a x c"
    assert r2.wer == pytest.approx(100 * 0.5 / 3) and r2.ser == pytest.approx(50.0)
    table = supervision_table({"regular": r, "AM": r2}, 10)
    assert "| regular | 16.67 | 33.33 |" in table and "| AM | 16.67 | 50.00 |" in table
    only_u1 = supervision_table({"AM": nbest_error_rates({"u1": u1}, {"u1": refs["u1"]}, words, n=10)}, 10)
    assert "| AM | 22.22 | 66.67 |" in only_u1


# ----------------------------------------------------------------- neural LM rescoring
def write_arpa(path, seed):
    """A bigram ARPA over w1..w4 with random probabilities."""
    rng = random.Random(seed)
    vocab = ["</s>", "<s>"] + WORDS
    lines = ["\\data\\", f"ngram 1={len(vocab)}", "ngram 2=6", "", "\\1-grams:"]
    for w in vocab:
        p = -99.0 if w == "<s>" else -rng.uniform(0.3, 1.5)
        lines.append(f"{p:.4f} {w}" + (f" {-rng.uniform(0.1, 0.6):.4f}" if w != "</s>" else ""))
    pairs = sorted({(rng.choice(["<s>"] + WORDS), rng.choice(WORDS + ["</s>"])) for _ in range(20)})[:6]
    lines[2] = f"ngram 2={len(pairs)}"
    lines += ["", "\\2-grams:"] + [f"{-rng.uniform(0.05, 1.0):.4f} {h} {w}" for h, w in pairs]
    path.write_text("\n".join(lines + ["", "\\end\\", ""]))
    return path


@pytest.fixture(scope="module")
def lm_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lm")
    words = SymbolTable([("<eps>", 0)] + [(w, i) for i, w in enumerate(WORDS, 1)]
                        + [("#0", NUM_WORDS + 1), ("<s>", NUM_WORDS + 2), ("</s>", NUM_WORDS + 3)])
    words.write(tmp / "words.txt")
    return tmp, words, write_arpa(tmp / "old.arpa", 1), write_arpa(tmp / "new.arpa", 2)


class ArpaAsNeuralLm:
    """The sentence_log_probs interface of NeuralLm, backed by an ARPA model (no dropout)."""

    def __init__(self, path):
        self.lm = read_arpa(path)

    def sentence_log_probs(self, sentences, dropout=False, seed=None, num_samples=None):
        assert not dropout
        out = []
        for s in sentences:
            ctx = ["<s>"]
            lp = 0.0
            for w in list(s) + ["</s>"]:
                lp += self.lm.log10_prob(ctx, w) * math.log(10)
                ctx.append(w)
            out.append(lp)
        return torch.tensor(out, dtype=torch.float64)


def test_rescoring_with_the_same_ngram_lm_reproduces_the_nbest(lm_files):
    tmp, words, old_arpa, _ = lm_files
    old = BackoffLm(make_grammar_fst(old_arpa, tmp / "words.txt"))
    for seed in range(4):
        lat = random_lattice(random.Random(seed), num_frames=5, num_words=NUM_WORDS)
        (rescored,) = nnlm_rescore(lat, ArpaAsNeuralLm(old_arpa), old, words, dropout=False,
                                   config=NbestRescoreConfig(nbest=5))
        want = nbest(lat, 5)
        got = nbest(rescored, 100)
        assert [p.words for p in got] == [p.words for p in want]
        for p, q in zip(got, want):
            assert p.graph_cost == pytest.approx(q.graph_cost, abs=1e-3)
            assert p.acoustic_cost == pytest.approx(q.acoustic_cost, abs=1e-3)
            assert p.ilabels == q.ilabels


def test_rescoring_with_another_lm_matches_lattice_lm_rescore(lm_files):
    tmp, words, old_arpa, new_arpa = lm_files
    old = BackoffLm(make_grammar_fst(old_arpa, tmp / "words.txt"))
    new = BackoffLm(make_grammar_fst(new_arpa, tmp / "words.txt"))
    for seed in range(4):
        lat = random_lattice(random.Random(seed), num_frames=5, num_words=NUM_WORDS)
        (rescored,) = nnlm_rescore(lat, ArpaAsNeuralLm(new_arpa), old, words, dropout=False,
                                   config=NbestRescoreConfig(nbest=10000, new_lm_scale=0.7))
        reference = determinize_lattice(lm_rescore(lat, old, new, 1.0, 0.7))
        assert costs_by_words(rescored) == pytest.approx(costs_by_words(reference), abs=1e-3)


def tiny_nnlm(dropout=0.3) -> NeuralLm:
    torch.manual_seed(0)
    config = TcnLmConfig(num_layers=2, embed_dim=8, hidden_dim=16, kernel_size=3, dropout=dropout)
    vocab = Vocabulary.from_words(WORDS)
    return NeuralLm(TcnLm(len(vocab), config), vocab)


def test_dropout_samples_differ_and_seeds_reproduce(lm_files):
    tmp, words, old_arpa, _ = lm_files
    old = BackoffLm(make_grammar_fst(old_arpa, tmp / "words.txt"))
    lm = tiny_nnlm()
    lat = random_lattice(random.Random(5), num_frames=6, num_words=NUM_WORDS)
    config = NbestRescoreConfig(nbest=6)
    a = nnlm_rescore(lat, lm, old, words, num_samples=3, seed=1, config=config)
    b = nnlm_rescore(lat, lm, old, words, num_samples=3, seed=1, config=config)
    c = nnlm_rescore(lat, lm, old, words, num_samples=3, seed=2, config=config)
    assert len(a) == 3 and all(x == y for x, y in zip(a, b))
    assert a[0] != a[1] and a[0] != c[0]
    # Only the costs change: the same 6 word sequences and alignments.
    top = {tuple(p.words): p.ilabels for p in nbest(lat, 6)}
    for r in a + c:
        assert {tuple(p.words): p.ilabels for p in nbest(r, 100)} == top
    # The LM's dropout off: one deterministic rescoring, unlike any dropout sample.
    plain = nnlm_rescore(lat, lm, old, words, 1, None, dropout=False, config=config)
    assert len(plain) == 1 and plain == nnlm_rescore(lat, lm, old, words, 1, 7, dropout=False, config=config)
    assert all(plain[0] != x for x in a)
    with pytest.raises(ValueError):
        nnlm_rescore(lat, lm, old, words, 2, None, dropout=False, config=config)

    # Every input of a supervision is rescored (thesis table 3.5): each keeps its n-best
    # paths, so the union's word sequences are those of the inputs' n-best lists.
    def rescore(x, n, seed, dropout):
        return nnlm_rescore(x, lm, old, words, n, seed, dropout, config=config)

    def top(x):
        return {tuple(p.words) for p in nbest(x, 6)}

    drops = [random_lattice(random.Random(20 + i), num_frames=6, num_words=NUM_WORDS) for i in range(2)]
    for kind, inputs in (("regular", [lat]), ("am", [lat, *drops]), ("lm", [lat]), ("am_lm", [lat, *drops])):
        sup = utterance_supervision("u", lat, drops if kind.startswith("am") else [],
                                    SupervisionOptions(kind, num_samples=3 if kind == "lm" else None, beam=None),
                                    1.0, rescore)
        assert set(word_sequences(sup)) == set().union(*map(top, inputs)), kind
    # Rescoring changes the regular lattice's costs: the LM's, not the n-gram's.
    regular = SupervisionOptions("regular", beam=None)
    rescored = utterance_supervision("u", lat, [], regular, 1.0, rescore)
    assert rescored == combine_lattices(plain, beam=None, name="u")
    assert rescored != utterance_supervision("u", lat, [], regular, 1.0)
    with pytest.raises(FrugalError, match="nnlm: is needed for lm supervision"):
        utterance_supervision("u", lat, [], SupervisionOptions("lm", num_samples=3), 1.0)


# ----------------------------------------------------------------------------- tools
def test_combine_lattices_cli(tmp_path):
    rng = random.Random(7)
    lats = [{f"u{j}": random_lattice(rng, num_frames=4, num_words=NUM_WORDS) for j in range(3)} for _ in range(3)]
    files = [tmp_path / f"lat{i}.txt" for i in range(3)]
    for f, ls in zip(files, lats):
        write_lattices(f, ls)
    assert frugal_main(["combine-lattices", "--inputs", *map(str, files), "--output", str(tmp_path / "c.pt"),
                        "--beam", "3"]) == 0
    got = read_lattices(tmp_path / "c.pt")
    assert sorted(got) == ["u0", "u1", "u2"]
    for key in got:
        want = combine_lattices([ls[key] for ls in lats], beam=3.0)
        assert set(word_sequences(got[key])) == set(word_sequences(want))
    assert frugal_main(["combine-lattices", "--inputs", *map(str, files[:2]), "--output", str(tmp_path / "d.pt"),
                        "--no-determinize"]) == 0
    assert sorted(read_lattices(tmp_path / "d.pt")) == ["u0", "u1", "u2"]


def dropout_decode_dir(root, rng, num_jobs=2, num_samples=3, utts=3):
    """A finished decode directory with N dropout passes, of random lattices (job j holds
    utterances j-*); one dropout lattice is missing (no surviving path in that pass)."""
    d = DecodeDir(root)
    d.prepare(num_jobs, {"acoustic_scale": 1.0, "post_decode_acwt": 10.0},
              {"dropout_samples": num_samples, "dropout_proportion": 0.1, "dropout_seed": 0,
               "pass_seeds": list(range(num_samples))})
    for k in range(num_samples + 1):
        for j in range(1, num_jobs + 1):
            lats = {f"{j}-{u}": random_lattice(rng, num_frames=5, num_words=NUM_WORDS) for u in range(utts)}
            if (k, j) == (2, 1):
                del lats["1-0"]
            write_lattices(d.pass_dir(k).job(j).lattices, lats)
    d.finish(num_samples + 1)
    return d


def test_make_supervision_kinds_through_the_tool(tmp_path, lm_files):
    """frugal make-supervision: every kind, per utterance, is utterance_supervision of the
    decode's lattices; AM+LM rescores the i-th dropout lattice with its own LM sample."""
    tmp, words, old_arpa, _ = lm_files
    tiny_nnlm().save(tmp_path / "nnlm.pt")
    dec = dropout_decode_dir(tmp_path / "dec", random.Random(3))
    lm_args = ["--nnlm", str(tmp_path / "nnlm.pt"), "--old-lm", str(old_arpa), "--words", str(tmp / "words.txt"),
               "--seed", "5", "--nbest", "4"]
    old = BackoffLm(make_grammar_fst(old_arpa, tmp / "words.txt"))
    lm = NeuralLm.load(tmp_path / "nnlm.pt")
    config = NbestRescoreConfig(nbest=4, acoustic_scale=0.1)

    def rescore(x, n, seed, dropout):
        return nnlm_rescore(x, lm, old, words, n, seed, dropout, config=config)

    passes = [read_lattices(f) for k in range(4) for f in [dec.pass_dir(k).job(1).lattices]]
    for kind, extra in (("regular", []), ("regular", lm_args), ("am", ["--num-samples", "2"]),
                        ("am", ["--num-samples", "2", *lm_args]), ("lm", lm_args), ("am_lm", lm_args)):
        out = tmp_path / (kind + ("_rescored" if extra and kind in ("regular", "am") else ""))
        argv = ["make-supervision", "--kind", kind, "--decode-dir", str(dec.path), "--output-dir", str(out),
                "--beam", "4", "--nj", "2", *extra]
        assert frugal_main(argv) == 0, kind
        assert DecodeDir.finished(out).num_jobs == 2 and (out / "lat.2.pt").is_file()
        got = read_lattices(out / "lat.1.pt")
        assert sorted(got) == ["1-0", "1-1", "1-2"]
        options = SupervisionOptions(kind, beam=4.0, seed=5,
                                     num_samples={"am": 2, "lm": 3}.get(kind))
        for key in got:
            drops = [p[key] for p in passes[1:3 if kind == "am" else 4] if key in p]
            want = utterance_supervision(key, passes[0][key], drops if kind != "lm" else [], options, 0.1,
                                         rescore if "--nnlm" in extra else None)
            assert got[key] == want, (kind, key)
        stamp = (out / "lat.1.pt").stat().st_mtime_ns
        assert frugal_main(argv) == 0 and (out / "lat.1.pt").stat().st_mtime_ns == stamp  # done: skipped
    # AM+LM is not the union of AM and LM: its LM samples rescore the dropout lattices.
    assert read_lattices(tmp_path / "am_lm/lat.1.pt") != read_lattices(tmp_path / "lm/lat.1.pt")
    assert read_lattices(tmp_path / "regular/lat.1.pt") != read_lattices(tmp_path / "regular_rescored/lat.1.pt")
    assert frugal_main(["make-supervision", "--kind", "lm", "--decode-dir", str(dec.path), "--output-dir",
                        str(tmp_path / "x")]) == 1  # the LM kinds need the neural LM


def test_nnlm_rescore_cli(tmp_path, lm_files):
    tmp, _, old_arpa, _ = lm_files
    lm = tiny_nnlm()
    lm.save(tmp_path / "nnlm.pt")
    rng = random.Random(9)
    lats = {f"u{j}": random_lattice(rng, num_frames=5, num_words=NUM_WORDS) for j in range(3)}
    write_lattices(tmp_path / "lat.txt", lats)
    args = ["nnlm-rescore", "--lattices", str(tmp_path / "lat.txt"), "--nnlm", str(tmp_path / "nnlm.pt"),
            "--old-lm", str(old_arpa), "--words", str(tmp / "words.txt"), "--samples", "2", "--seed", "4",
            "--nbest", "3", "--output", str(tmp_path / "resc.pt")]
    assert frugal_main(args) == 0
    outs = [read_lattices(tmp_path / f"resc.{i}.pt") for i in (1, 2)]
    assert all(sorted(o) == sorted(lats) for o in outs)
    for key, lat in lats.items():
        assert {tuple(p.words) for p in nbest(outs[0][key], 10)} == {tuple(p.words) for p in nbest(lat, 3)}
    assert any(outs[0][k] != outs[1][k] for k in lats)
    assert frugal_main(args[:-1] + [str(tmp_path / "again.pt")]) == 0  # reproducible
    assert all(read_lattices(tmp_path / "again.1.pt")[k] == outs[0][k] for k in lats)
    assert frugal_main(args[:-2] + ["--no-dropout", "--output", str(tmp_path / "x")]) == 1
