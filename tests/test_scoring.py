"""frugal.decode.scoring and `frugal score`, checked against an edit distance written here."""
import functools
import logging
import random
import re
import subprocess

import kaldialign
import pytest

from frugal.bin import main as frugal_main
from frugal.decode.results import git_revision, update_results_table
from frugal.decode.scoring import (EPS, KALDI_EPS, ErrorCounts, bootstrap_ci, format_ops, format_per_utt, score, score_sweep)
from frugal.lang.text import read_text
from frugal.errors import FrugalError


def dp_edit_distance(ref, hyp):
    """Levenshtein distance with unit costs, by the textbook dynamic programme."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


def brute_force_distance(ref, hyp):
    """Minimum cost over every alignment path, by plain recursion (tiny inputs only)."""

    @functools.lru_cache(maxsize=None)
    def best(i, j):
        if i == len(ref):
            return len(hyp) - j
        if j == len(hyp):
            return len(ref) - i
        return min(best(i + 1, j) + 1, best(i, j + 1) + 1, best(i + 1, j + 1) + (ref[i] != hyp[j]))

    return best(0, 0)


def random_words(rng, n_max, vocab="abcd"):
    return [rng.choice(vocab) for _ in range(rng.randint(0, n_max))]


def test_dp_reference_agrees_with_brute_force():
    rng = random.Random(1)
    for _ in range(300):
        ref, hyp = random_words(rng, 6), random_words(rng, 6)
        assert dp_edit_distance(ref, hyp) == brute_force_distance(tuple(ref), tuple(hyp))


def test_counts_match_independent_edit_distance():
    rng = random.Random(2)
    refs, hyps = {}, {}
    for k in range(400):
        refs[f"u{k}"] = random_words(rng, 12, "abcdef")
        hyps[f"u{k}"] = random_words(rng, 12, "abcdef")
    result = score(refs, hyps)
    total_dp = total_ref = 0
    for u in refs:
        ref, hyp = refs[u], hyps[u]
        alignment = result.alignments[u]
        # The alignment spells out both sequences, and its cost is the minimum.
        assert [r for r, _ in alignment if r != EPS] == ref
        assert [h for _, h in alignment if h != EPS] == hyp
        c = ErrorCounts.from_alignment(alignment)
        d = dp_edit_distance(ref, hyp)
        assert c.errors == d == kaldialign.edit_distance(ref, hyp)["total"]
        assert c.ins - c.dels == len(hyp) - len(ref)
        assert c.ref_words == len(ref)
        assert c.sentence_errors == int(d > 0)
        total_dp += d
        total_ref += len(ref)
    assert result.counts.errors == total_dp
    assert result.counts.ref_words == total_ref
    assert result.counts.sentences == len(refs)
    kd = kaldialign.batch_error_rate([refs[u] for u in refs], [hyps[u] for u in refs])
    assert result.counts.errors == kd["total"]
    assert result.counts.wer == pytest.approx(100.0 * total_dp / total_ref)


def test_compute_wer_lines():
    c = ErrorCounts(ins=7, dels=8, subs=41, ref_words=454, sentences=10, sentence_errors=4)
    # 56 / 454 = 0.123348...
    assert c.wer_line() == "%WER 12.33 [ 56 / 454, 7 ins, 8 del, 41 sub ]"
    assert c.ser_line() == "%SER 40.00 [ 4 / 10 ]"
    refs = {"a": ["x", "y"], "b": ["z"]}
    result = score(refs, {"a": ["x", "y"], "b": ["z", "z"]})
    assert result.report() == ("%WER 33.33 [ 1 / 3, 1 ins, 0 del, 0 sub ]\n"
                               "%SER 50.00 [ 1 / 2 ]\n"
                               "Scored 2 sentences, 0 not present in hyp.\n")


def test_missing_hypothesis_is_all_deletions_with_warning(caplog):
    refs = {"a": ["x", "y"], "b": ["z", "w", "v"]}
    with caplog.at_level(logging.WARNING):
        result = score(refs, {"a": ["x", "y"]}, hyp_name="hyp.txt")
    assert "hyp.txt" in caplog.text and "b" in caplog.text
    assert result.missing == ["b"]
    assert (result.counts.dels, result.counts.errors, result.counts.ref_words) == (3, 3, 5)


def test_extra_hypothesis_is_an_error_naming_it():
    with pytest.raises(FrugalError, match=r"hyp\.txt: utterance 'zz' has no reference"):
        score({"a": ["x"]}, {"a": ["x"], "zz": ["y"]}, hyp_name="hyp.txt")


def test_read_text_errors_name_file_and_line(tmp_path):
    good = tmp_path / "text"
    good.write_text("u1 a b\nu2\nu3   c\n")
    assert read_text(good) == {"u1": ["a", "b"], "u2": [], "u3": ["c"]}
    blank = tmp_path / "blank"
    blank.write_text("u1 a\n\nu2 b\n")
    with pytest.raises(FrugalError, match=re.escape(f"{blank}:2: empty line")):
        read_text(blank)
    dup = tmp_path / "dup"
    dup.write_text("u1 a\nu2 b\nu1 c\n")
    with pytest.raises(FrugalError, match=re.escape(f"{dup}:3: utterance 'u1' appears twice")):
        read_text(dup)
    with pytest.raises(FrugalError, match="cannot read"):
        read_text(tmp_path / "absent")


def test_per_utt_and_ops_files_describe_the_alignments():
    rng = random.Random(3)
    refs = {f"u{k}": random_words(rng, 8, "abc") for k in range(30)}
    hyps = {f"u{k}": random_words(rng, 8, "abc") for k in range(30)}
    result = score(refs, hyps)
    lines = format_per_utt(result).splitlines()
    assert len(lines) == 4 * len(refs)
    for k in range(0, len(lines), 4):
        utt = lines[k].split()[0]
        ref_line, hyp_line, op_line, csid_line = (line.split()[2:] for line in lines[k:k + 4])
        assert [lines[k + i].split()[1] for i in range(4)] == ["ref", "hyp", "op", "#csid"]
        assert [w for w in ref_line if w != KALDI_EPS] == refs[utt]
        assert [w for w in hyp_line if w != KALDI_EPS] == hyps[utt]
        for r, h, op in zip(ref_line, hyp_line, op_line):
            expected = "I" if r == KALDI_EPS else "D" if h == KALDI_EPS else "C" if r == h else "S"
            assert op == expected
        n_c, n_s, n_i, n_d = map(int, csid_line)
        assert (n_c, n_s, n_i, n_d) == tuple(op_line.count(x) for x in "CSID")
        assert n_s + n_i + n_d == dp_edit_distance(refs[utt], hyps[utt])
    per_kind = {"correct": 0, "substitution": 0, "insertion": 0, "deletion": 0}
    for line in format_ops(result).splitlines():
        kind, r, h, n = line.split()
        per_kind[kind] += int(n)
        assert (r == KALDI_EPS) == (kind == "insertion") and (h == KALDI_EPS) == (kind == "deletion")
    c = result.counts
    assert (per_kind["substitution"], per_kind["insertion"], per_kind["deletion"]) == (c.subs, c.ins, c.dels)
    assert per_kind["correct"] == c.ref_words - c.subs - c.dels


def corrupt(rng, words, p):
    """Substitute, delete or insert each word with probability ``p``."""
    out = []
    for w in words:
        u = rng.random()
        if u < p / 3:
            out.append("zz")
        elif u < 2 * p / 3:
            continue
        elif u < p:
            out += [w, "yy"]
        else:
            out.append(w)
    return out


def test_sweep_picks_the_argmin_and_writes_kaldi_files(tmp_path):
    rng = random.Random(4)
    refs = {f"u{k}": random_words(rng, 10, "abcdefgh") for k in range(40)}
    hyps_by_setting = {}
    for lmwt in (7, 9, 11):
        for wip in (0.0, 0.5, 1.0):
            p = rng.uniform(0.05, 0.6)
            hyps_by_setting[(lmwt, wip)] = {u: corrupt(rng, w, p) for u, w in refs.items()}
    wers = {s: sum(dp_edit_distance(refs[u], h[u]) for u in refs) / sum(map(len, refs.values()))
            for s, h in hyps_by_setting.items()}
    argmin = min(wers, key=wers.get)
    sweep = score_sweep(refs, hyps_by_setting, tmp_path, bootstrap_replications=200)
    assert sweep.best == argmin
    for (lmwt, wip), wer in wers.items():
        text = (tmp_path / f"wer_{lmwt}_{wip}").read_text()
        assert text.startswith(f"%WER {100 * wer:.2f} [")
        assert read_text(tmp_path / f"penalty_{wip}" / f"{lmwt}.txt") == hyps_by_setting[(lmwt, wip)]
    best_line = (tmp_path / "best_wer").read_text()
    assert best_line.startswith(f"%WER {100 * wers[argmin]:.2f} [")
    assert best_line.rstrip().endswith(f"wer_{argmin[0]}_{argmin[1]}")
    assert (tmp_path / "wer_details" / "lmwt").read_text() == f"{argmin[0]}\n"
    assert (tmp_path / "wer_details" / "wip").read_text() == f"{argmin[1]}\n"
    assert (tmp_path / "wer_details" / "per_utt").is_file()


def test_sweep_ties_go_to_the_smallest_setting():
    refs = {"u": ["a", "b"]}
    same = {"u": ["a"]}
    sweep = score_sweep(refs, {(12, 0.5): same, (10, 1.0): same, (10, 0.5): {"u": ["a", "c"]}})
    # (10, 0.5) substitutes one of two words, as (10, 1.0) deletes one: the tie goes to (10, 0.5).
    assert sweep.best == (10, 0.5)


def test_bootstrap_ci_contains_wer_and_narrows_with_more_utterances():
    rng = random.Random(5)
    refs = [random_words(rng, 15, "abcdefgh") for _ in range(50)]
    hyps = [corrupt(rng, r, 0.3) for r in refs]
    wer = 100.0 * sum(map(dp_edit_distance, refs, hyps)) / sum(map(len, refs))
    small = bootstrap_ci(refs, hyps, replications=2000, seed=1)
    assert small.wer == pytest.approx(wer)
    assert small.low < wer < small.high
    assert bootstrap_ci(refs, hyps, replications=2000, seed=1) == small  # seeded
    # Four copies of the same utterances: the same WER, an interval about half as wide.
    big = bootstrap_ci(refs * 4, hyps * 4, replications=2000, seed=1)
    assert big.wer == pytest.approx(wer)
    assert big.low < wer < big.high
    ratio = (big.high - big.low) / (small.high - small.low)
    assert 0.35 < ratio < 0.65


def test_results_table_is_appended_and_updated(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# mini\n\nSome notes.\n")
    c1 = ErrorCounts(ins=1, dels=2, subs=3, ref_words=100, sentences=10, sentence_errors=4)
    c2 = ErrorCounts(ins=0, dels=1, subs=1, ref_words=50, sentences=5, sentence_errors=2)
    update_results_table(path, "tdnnf", "dev", "tgsmall", c1, (10, 0.5), "2026-01-01", "abc123")
    update_results_table(path, "tdnnf", "test", "tgsmall", c2, None, "2026-01-01", "abc123")
    c3 = ErrorCounts(ins=0, dels=0, subs=3, ref_words=100, sentences=10, sentence_errors=3)
    update_results_table(path, "tdnnf", "dev", "tgsmall", c3, (12, 0.0), "2026-01-02", "def456")
    lines = path.read_text().splitlines()
    assert lines[:3] == ["# mini", "", "Some notes."]
    rows = [line for line in lines if line.startswith("| tdnnf")]
    assert rows == ["| tdnnf | test | tgsmall | 4.00 | 2 / 50 |  | 2026-01-01 | abc123 |",
                    "| tdnnf | dev | tgsmall | 3.00 | 3 / 100 | lmwt=12 wip=0.0 | 2026-01-02 | def456 |"]
    assert sum(line.startswith("| Model |") for line in lines) == 1


def test_cli_writes_reports_and_names_bad_lines(tmp_path, capsys):
    ref = tmp_path / "ref.txt"
    hyp = tmp_path / "hyp.txt"
    ref.write_text("u1 a b c\nu2 d e\nu3 f\n")
    hyp.write_text("u1 a x c y\nu2 d e\n")
    out = tmp_path / "score"
    assert frugal_main.main(["score", "--ref", str(ref), "--hyp", str(hyp), "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    # u1: one substitution and one insertion; u3: one deletion (no hypothesis).
    assert printed.splitlines()[0] == "%WER 50.00 [ 3 / 6, 1 ins, 1 del, 1 sub ]"
    assert printed.splitlines()[1] == "%SER 66.67 [ 2 / 3 ]"
    assert (out / "wer").read_text() == printed
    assert "u1 op  C S C I" in (out / "per_utt").read_text()
    assert (out / "wer_bootci").read_text().startswith("%WER 50.00 95% Conf Interval [")
    assert (out / "ops").is_file()

    hyp.write_text("u1 a\nu2 d e\n\n")
    assert frugal_main.main(["score", "--ref", str(ref), "--hyp", str(hyp)]) == 1
    assert f"frugal score: error: {hyp}:3: empty line" in capsys.readouterr().err
    hyp.write_text("u1 a\nu7 d e\n")
    assert frugal_main.main(["score", "--ref", str(ref), "--hyp", str(hyp)]) == 1
    assert f"{hyp}: utterance 'u7' has no reference" in capsys.readouterr().err


def test_git_revision_ignores_results_tables(tmp_path):
    def git(*args, cwd=tmp_path):
        subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)
    git("init", "-q")
    recipe = tmp_path / "egs" / "toy"
    recipe.mkdir(parents=True)
    (recipe / "RESULTS.md").write_text("old\n")
    (tmp_path / "lib.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    rev = git_revision(recipe)
    assert re.fullmatch(r"[0-9a-f]{7,}", rev)
    (recipe / "RESULTS.md").write_text("new row\n")  # written by the recipe itself
    assert git_revision(recipe) == rev
    (tmp_path / "lib.py").write_text("x = 2\n")  # code changed anywhere in the repository
    assert git_revision(recipe) == rev + "+dirty"
    assert git_revision(tmp_path / "egs") == rev + "+dirty"


def test_phone_error_rate_through_the_lexicon(tmp_path, capsys):
    # Two pronunciations of READ (equally likely: the first counts), silence phones and unknown
    # words (the OOV word's pronunciation, here silence: nothing) left out.
    (tmp_path / "lexicon.txt").write_text("<UNK> SIL\nREAD R IY D\nREAD R EH D\nRED R EH D\nA AH\nBOOK B UH K\n")
    assert frugal_main.main(["prepare-lang", "--lexicon", str(tmp_path / "lexicon.txt"), "--output-dir",
                             str(tmp_path / "lang"), "--sil-phone", "SIL", "--oov", "<UNK>"]) == 0
    phones = {"READ": "R IY D", "RED": "R EH D", "A": "AH", "BOOK": "B UH K", "<UNK>": "", "XYZZY": ""}
    refs = {"u1": "READ A BOOK", "u2": "RED BOOK", "u3": "A"}
    hyps = {"u1": "RED A BOOK", "u2": "READ XYZZY BOOK", "u3": "A A"}
    for name, texts in (("ref", refs), ("hyp", hyps)):
        (tmp_path / name).write_text("".join(f"{u} {t}\n" for u, t in texts.items()))
    assert frugal_main.main(["score", "--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "hyp"),
                             "--phones-lang", str(tmp_path / "lang"), "--out-dir", str(tmp_path / "per")]) == 0
    out = capsys.readouterr().out
    errors = sum(dp_edit_distance(" ".join(phones[w] for w in refs[u].split()).split(),
                                  " ".join(phones[w] for w in hyps[u].split()).split()) for u in refs)
    ref_phones = sum(len(" ".join(phones[w] for w in t.split()).split()) for t in refs.values())
    assert errors == 3 and ref_phones == 14  # IY/EH twice, one inserted AH
    assert out.startswith(f"%WER {100 * errors / ref_phones:.2f} [ {errors} / {ref_phones},")
    assert "u1 ref R IY D AH B UH K" in (tmp_path / "per/per_utt").read_text().replace("  ", " ")
