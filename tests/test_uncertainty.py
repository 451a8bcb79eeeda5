"""frugal.semisup.uncertainty: word confidences, error localisation and WER estimation from
dropout samples or N-best lists, on the thesis's example and on values worked out by hand."""
import random

import pytest

from frugal.errors import FrugalError
from frugal.semisup.uncertainty import (DecodedSet, Localisation, WerEstimate, error_positions,
                                        estimate_wer, flagged_positions, localise_errors,
                                        pairwise_distances, uncertainty_report, word_confidences)

# Thesis fig. 3.2 (N = 4 dropout samples).
BEST = "i i agree with the a hundred percent there or".split()
TRUTH = "i say agree with you a hundred percent there".split()
DROPOUT = [s.split() for s in (
    "i i agree with you a hundred percent there",
    "yes i agree with the a hundred percent there",
    "i i agree with you a hundred percent there or",
    "yes i agree with the a hundred percent there",
)]


def dp_edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def test_thesis_example_confidences():
    assert word_confidences(BEST, DROPOUT) == [0.5, 1, 1, 1, 0.5, 1, 1, 1, 1, 0.25]


def test_thesis_example_error_localisation():
    # 'say' -> 'i' at word 2, 'you' -> 'the' at word 5, 'or' inserted at word 10 (1-based).
    assert error_positions(BEST, TRUTH) == ({1, 4, 9}, 0)
    conf = word_confidences(BEST, DROPOUT)
    assert flagged_positions(conf, 0.6) == {0, 4, 9}
    assert flagged_positions(conf, 0.4) == {9}
    assert flagged_positions(conf, 0.5) == {9}  # strictly below the threshold
    at_06 = localise_errors(BEST, DROPOUT, TRUTH, 0.6)
    assert at_06 == Localisation(hits=2, flagged=3, errors=3, deletions=0)
    assert at_06.iou == pytest.approx(2 / 4)
    assert (at_06.precision, at_06.recall) == pytest.approx((2 / 3, 2 / 3))
    at_04 = localise_errors(BEST, DROPOUT, TRUTH, 0.4)
    assert at_04.iou == pytest.approx(1 / 3)
    assert (at_04.precision, at_04.recall) == pytest.approx((1.0, 1 / 3))


def test_confidences_on_constructed_alternatives():
    best = "a b c d e".split()
    # Identical samples agree everywhere; no samples: nothing disagrees.
    assert word_confidences(best, [best, best]) == [1, 1, 1, 1, 1]
    assert word_confidences(best, []) == [1, 1, 1, 1, 1]
    # One sample substitutes c, one deletes d, one inserts a word (which agrees with all of best).
    alts = ["a b x d e".split(), "a b c e".split(), "a b c q d e".split()]
    assert word_confidences(best, alts) == pytest.approx([1, 1, 2 / 3, 2 / 3, 1])
    assert word_confidences([], alts) == []


def test_error_positions_count_every_error_once():
    rng = random.Random(7)
    for _ in range(200):
        ref = [rng.choice("abcd") for _ in range(rng.randint(0, 9))]
        hyp = [rng.choice("abcd") for _ in range(rng.randint(0, 9))]
        wrong, deletions = error_positions(hyp, ref)
        assert all(0 <= p < len(hyp) for p in wrong)
        # substitutions + insertions + deletions is the edit distance, and
        # deletions - insertions the length difference.
        assert len(wrong) + deletions == dp_edit_distance(ref, hyp)
        assert deletions <= len(ref)
    assert error_positions("a b".split(), "a b c d".split()) == (set(), 2)


def test_wer_estimate_by_hand():
    best = "a b c d".split()
    alts = ["a b c d".split(), "a x c d".split(), "a b d".split()]
    # Pairs of [best, *alts]: (0,1)=0 (0,2)=1 (0,3)=1 (1,2)=1 (1,3)=1 (2,3)=2 ('x'->'b', 'c' deleted).
    assert sorted(pairwise_distances([best, *alts])) == [0, 1, 1, 1, 1, 2]
    lengths = (4 + 4 + 4 + 3) / 4
    top3 = estimate_wer(best, alts, top_k=3)
    assert top3.distance == pytest.approx((2 + 1 + 1) / 3)
    assert top3.length == pytest.approx(lengths)
    assert top3.wer == pytest.approx(100 * (4 / 3) / 3.75)
    # K beyond the number of pairs averages all six.
    assert estimate_wer(best, alts, top_k=50).wer == pytest.approx(100 * (6 / 6) / 3.75)
    # Pooled over a set: distances and lengths are summed before dividing.
    second = estimate_wer("e f".split(), ["e g".split()], top_k=3)
    assert (second.distance, second.length) == (1.0, 2.0)
    pooled = top3 + second
    assert pooled.wer == pytest.approx(100 * (4 / 3 + 1) / (3.75 + 2))
    assert estimate_wer([], [[]], top_k=2).wer == 0.0
    assert WerEstimate().wer == 0.0
    with pytest.raises(ValueError):
        estimate_wer(best, alts, top_k=0)


def test_samples_that_agree_estimate_zero_and_disagreeing_samples_more():
    best = "the cat sat on the mat".split()
    assert estimate_wer(best, [best] * 5, top_k=3).wer == 0.0
    noisy = [best[:2] + ["hat"] + best[3:], best[:-1], ["a"] + best[1:]]
    assert estimate_wer(best, noisy, top_k=3).wer > 0.0


def report_rows(table_text, title):
    """Rows of the markdown table following the heading containing ``title``."""
    section = table_text.split(title, 1)[1]
    lines = [line for line in section.split("\n## ", 1)[0].splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]


def test_report_tables_dropout_vs_nbest():
    refs = {"u1": TRUTH, "u2": "a b c".split()}
    best = {"u1": BEST, "u2": "a b c".split()}
    nbest = {"u1": [BEST, BEST[:-1]], "u2": [["a", "b", "c"], ["a", "b", "d"]]}
    dropout = {"u1": DROPOUT, "u2": [["a", "b", "c"]] * 4}
    ds = DecodedSet("dev", refs, best, {"dropout": dropout, "n-best": nbest})
    text = uncertainty_report([ds], top_k=2, thresholds=(0.4, 0.6))

    est_rows = report_rows(text, "WER estimation")
    assert [(r["Set"], r["Length"], r["Utts"]) for r in est_rows] == [
        ("dev", "all", "2"), ("dev", "1-5", "1"), ("dev", "6-10", "1")]
    # u1: 3 errors / 9 words; u2: none / 3 words.
    assert [r["True %WER"] for r in est_rows] == ["25.00", "0.00", "33.33"]
    # Dropout, u1: pairwise distances among [best, *samples], top 2, mean length 9.6.
    hyps = [BEST, *DROPOUT]
    d = sorted((dp_edit_distance(a, b) for i, a in enumerate(hyps) for b in hyps[i + 1:]),
               reverse=True)
    u1_dropout = (d[0] + d[1]) / 2
    u1_len = sum(map(len, hyps)) / len(hyps)
    assert est_rows[0]["Est. %WER (dropout)"] == f"{100 * u1_dropout / (u1_len + 3):.2f}"
    assert est_rows[1]["Est. %WER (dropout)"] == "0.00"
    assert est_rows[2]["Est. %WER (dropout)"] == f"{100 * u1_dropout / u1_len:.2f}"
    # N-best, u2: pairs of [abc, abc, abd]: 0, 1, 1 -> top 2 mean 1, mean length 3.
    assert est_rows[1]["Est. %WER (n-best)"] == f"{100 * 1 / 3:.2f}"

    loc_rows = report_rows(text, "Error localisation")
    by_key = {(r["Length"], r["Threshold"]): r for r in loc_rows}
    assert set(by_key) == {(g, t) for g in ("all", "1-5", "6-10") for t in ("0.4", "0.6")}
    assert by_key[("all", "0.4")]["Wrong words (del.)"] == "3 (0)"
    # u2 has no errors and nothing flagged by dropout: the pooled rates are u1's.
    assert by_key[("all", "0.6")]["IoU (dropout)"] == "50.00"
    assert by_key[("all", "0.4")]["IoU (dropout)"] == "33.33"
    assert by_key[("all", "0.6")]["Prec. (dropout)"] == "66.67"
    assert by_key[("1-5", "0.6")]["Prec. (dropout)"] == "-"  # nothing flagged, no errors
    assert by_key[("1-5", "0.6")]["Recall (dropout)"] == "-"
    # N-best, u1: the second entry drops 'or', so 'or' has confidence 0.5, every other word 1.
    # u2: 'c' has confidence 0.5 and is flagged at 0.6 though right.
    assert by_key[("6-10", "0.6")]["IoU (n-best)"] == f"{100 / 3:.2f}"
    assert by_key[("all", "0.6")]["Prec. (n-best)"] == "50.00"
    assert by_key[("all", "0.6")]["IoU (n-best)"] == "25.00"  # 1 hit / (2 flagged + 3 errors - 1)


def test_report_names_missing_hypotheses():
    ds = DecodedSet("test", {"u1": ["a"], "u2": ["b"]}, {"u1": ["a"], "u2": ["b"]},
                    {"dropout": {"u1": [["a"]]}})
    with pytest.raises(FrugalError, match="set test: utterance 'u2' has no dropout hypotheses"):
        uncertainty_report([ds], top_k=3)
    other = DecodedSet("dev", {"u1": ["a"]}, {"u1": ["a"]}, {"n-best": {"u1": [["a"]]}})
    ok = DecodedSet("test", {"u1": ["a"]}, {"u1": ["a"]}, {"dropout": {"u1": [["a"]]}})
    with pytest.raises(FrugalError, match="set dev has hypotheses of"):
        uncertainty_report([ok, other], top_k=3)
