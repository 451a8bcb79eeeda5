"""frugal uncertainty-report: tables 3.2/3.3 from decode directories, on hand-built directories
(the thesis's fig. 3.2 example, values worked out by hand) and on a real dropout decode."""
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from decode_testing import edit_distance
from dropout_testing import DECODE_OPTS, make_yesno_model, run
from cuts_testing import write_text_cuts
from frugal.bin.main import main as frugal_main
from lhotse import CutSet
from frugal.lattice.lattice import Lattice
from frugal.lattice.io import write_lattices
from frugal.lang.text import read_text

# Thesis fig. 3.2: dropout-off 1-best, truth, and N = 4 dropout 1-bests.
BEST = "i i agree with the a hundred percent there or"
TRUTH = "i say agree with you a hundred percent there"
DROPOUT = ["i i agree with you a hundred percent there",
           "yes i agree with the a hundred percent there",
           "i i agree with you a hundred percent there or",
           "yes i agree with the a hundred percent there"]
# The dropout-off lattice of u1: (words, graph cost, acoustic cost as stored, i.e. times
# post_decode_acwt = 4). Ranked with acoustic scale 1/4 the paths come in this order
# (totals 2, 3, 3.5, 4, 4.2, 5); with scale 1 'yes i ...' (4.2) would be first, with
# scale 1/10 the last path (2.6) would be third: only the search's scale keeps the first four.
U1_PATHS = [(BEST, 1.0, 4.0),
            ("i say agree with the a hundred percent there or", 2.0, 4.0),
            ("i i agree with you a hundred percent there or", 2.5, 4.0),
            ("i say agree with you a hundred percent there or", 3.0, 4.0),
            ("yes i agree with the a hundred percent there or", 4.2, 0.0),
            ("i i agree you you a hundred percent there or", 1.0, 16.0)]
POST_DECODE_ACWT = 4.0
# u2: a short utterance; its lattice has only two paths (fewer than N).
U2_REF, U2_BEST = "yes no yes", "yes no no"
U2_DROPOUT = ["yes yes no", "yes yes no", "yes no no", "no no no"]
U2_PATHS = [(U2_BEST, 1.0, 4.0), ("yes no yes", 2.0, 4.0)]

# Worked out by hand (same-length alternatives: substitutions only, one alignment each).
# u1, dropout: the thesis's confidences; true errors at 'i' (for 'say'), 'the' (for 'you'), 'or' (inserted).
U1_ERRORS = {1, 4, 9}
U1_CONF = {"dropout": [0.5, 1, 1, 1, 0.5, 1, 1, 1, 1, 0.25],
           # the first 4 paths: 'i' (pos 1) kept by paths 1 and 3, 'the' (pos 4) by paths 1 and 2
           "n-best": [1, 0.5, 1, 1, 0.5, 1, 1, 1, 1, 1]}
U2_ERRORS = {2}
U2_CONF = {"dropout": [0.75, 0.5, 1.0],  # 'yes' kept by 3, 'no' by 2 of the 4 samples
           "n-best": [1, 1, 0.5]}  # the 2 paths disagree on the last word
THRESHOLDS = (0.4, 0.6, 0.8)
TOP_K = 3


def chain_lattice(paths):
    """A compact lattice with one chain of word arcs a path (one frame a word), each path's
    costs on its first arc."""
    arcs, weights, finals = [], [], [(np.inf, np.inf)]
    for words, graph, acoustic in paths:
        cur = 0
        for n, w in enumerate(words):
            finals.append((np.inf, np.inf))
            arcs.append((cur, len(finals) - 1, w, w))
            weights.append((graph, acoustic) if n == 0 else (0.0, 0.0))
            cur = len(finals) - 1
        finals[cur] = (0.0, 0.0)
    return Lattice(np.array(arcs), np.array(weights), np.array(finals), [(1,)] * len(arcs), {})


def write_decode_dir(d: Path, hyps_by_job, lattices_by_job, words):
    d.mkdir(parents=True)
    (d / "num_jobs").write_text(f"{len(hyps_by_job)}\n")
    for j, hyps in enumerate(hyps_by_job, 1):
        (d / f"hyp.{j}.txt").write_text("".join(f"{u} {h}\n" for u, h in hyps.items()))
        if lattices_by_job is not None:
            write_lattices(d / f"lat.{j}.pt", {u: chain_lattice([([words[w] for w in s.split()], g, a)
                                                                for s, g, a in paths])
                                               for u, paths in lattices_by_job[j - 1].items()})
    (d / ".done").write_text("")


@pytest.fixture
def hand_built(tmp_path):
    vocab = sorted({w for s in [BEST, TRUTH, *DROPOUT, *[p[0] for p in U1_PATHS], U2_REF, *U2_DROPOUT]
                    for w in s.split()})
    words = {w: i for i, w in enumerate(["<eps>", *vocab])}
    (tmp_path / "words.txt").write_text("".join(f"{w} {i}\n" for w, i in words.items()))
    write_text_cuts(tmp_path / "cuts.jsonl.gz", {"u1": TRUTH.split(), "u2": U2_REF.split()})
    dec = tmp_path / "decode"
    # Two jobs: u1 in job 1, u2 in job 2.
    write_decode_dir(dec, [{"u1": BEST}, {"u2": U2_BEST}], [{"u1": U1_PATHS}, {"u2": U2_PATHS}], words)
    (dec / "decode.json").write_text(json.dumps({"post_decode_acwt": POST_DECODE_ACWT, "acoustic_scale": 1.0}))
    for k in range(4):
        write_decode_dir(dec / "dropout" / str(k + 1), [{"u1": DROPOUT[k]}, {"u2": U2_DROPOUT[k]}], None, words)
    (dec / "dropout.json").write_text(json.dumps({"dropout_samples": 4, "dropout_proportion": 0.15,
                                                  "dropout_seed": 3, "pass_seeds": [11, 12, 13, 14]}))
    return tmp_path


def report(tmp_path, *extra, sets=None):
    sets = sets or [f"dev:{tmp_path / 'decode'}:{tmp_path / 'cuts.jsonl.gz'}"]
    argv = ["uncertainty-report", "--words", tmp_path / "words.txt", "--top-k", TOP_K,
            "--thresholds", *THRESHOLDS, "--output", tmp_path / "report.md", *extra]
    for s in sets:
        argv += ["--set", s]
    return frugal_main([str(a) for a in argv])


def table_rows(text: str, title: str):
    """Rows (lists of cells) of the markdown table after the heading that starts with ``title``."""
    section = text.split(title, 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in section.splitlines()
            if line.startswith("|")]
    return rows[0], rows[2:]


def pooled_localisation(conf_by_utt, errors_by_utt, threshold):
    hits = flagged = errors = 0
    for conf, wrong in zip(conf_by_utt, errors_by_utt):
        f = {i for i, c in enumerate(conf) if c < threshold}
        hits, flagged, errors = hits + len(f & wrong), flagged + len(f), errors + len(wrong)
    fmt = lambda n, d: "-" if d == 0 else f"{100 * n / d:.2f}"  # noqa: E731
    return [fmt(hits, flagged + errors - hits), fmt(hits, flagged), fmt(hits, errors)]


def estimate(best, alternatives, top_k):
    """(mean of the top-k pairwise edit distances, mean length) of [best, *alternatives]."""
    hyps = [best, *alternatives]
    dists = sorted((edit_distance(a, b) for a, b in itertools.combinations(hyps, 2)), reverse=True)[:top_k]
    return sum(dists) / len(dists), sum(len(h) for h in hyps) / len(hyps)


def pooled_estimate(cases, top_k):
    pairs = [estimate(b, alts, top_k) for b, alts in cases]
    return f"{100 * sum(d for d, _ in pairs) / sum(n for _, n in pairs):.2f}"


def test_thesis_example_tables(hand_built, capsys):
    assert report(hand_built, sets=[f"{name}:{hand_built / 'decode'}:{hand_built / 'cuts.jsonl.gz'}"
                                    for name in ("dev", "test")]) == 0
    text = (hand_built / "report.md").read_text()
    assert capsys.readouterr().out == text
    # The header: N, top-K, proportion, seeds, n-best size and its acoustic scale 1/post_decode_acwt.
    assert f"top-K = {TOP_K}" in text
    assert f"| dev | {hand_built / 'decode'} | 2 | 4 | 0.15 | 3 | 11 12 13 14 | 4 | 0.25 |" in text

    header, rows = table_rows(text, "## Error localisation")
    assert header[4:] == ["IoU (dropout)", "Prec. (dropout)", "Recall (dropout)",
                          "IoU (n-best)", "Prec. (n-best)", "Recall (n-best)"]
    cells = {(r[0], r[1], r[2]): r for r in rows}
    groups = {"all": [(U1_CONF, U1_ERRORS), (U2_CONF, U2_ERRORS)], "6-10": [(U1_CONF, U1_ERRORS)],
              "1-5": [(U2_CONF, U2_ERRORS)]}
    for set_name in ("dev", "test"):
        for group, utts in groups.items():
            for t in THRESHOLDS:
                row = cells[(set_name, group, f"{t:g}")]
                assert row[3] == f"{sum(len(e) for _, e in utts)} (0)"
                for m, method in enumerate(("dropout", "n-best")):
                    expected = pooled_localisation([c[method] for c, _ in utts], [e for _, e in utts], t)
                    assert row[4 + 3 * m: 7 + 3 * m] == expected, (set_name, group, t, method)
    # The thesis's own numbers for u1 at threshold 0.6: IoU 2/4, precision and recall 2/3.
    assert cells[("dev", "6-10", "0.6")][4:7] == ["50.00", "66.67", "66.67"]

    header, rows = table_rows(text, "## WER estimation")
    assert header == ["Set", "Length", "Utts", "True %WER", "Est. %WER (dropout)", "Est. %WER (n-best)"]
    u1 = (BEST.split(), [s.split() for s in DROPOUT], [p[0].split() for p in U1_PATHS[:4]], TRUTH.split())
    u2 = (U2_BEST.split(), [s.split() for s in U2_DROPOUT], [p[0].split() for p in U2_PATHS], U2_REF.split())
    for group, utts in (("all", [u1, u2]), ("6-10", [u1]), ("1-5", [u2])):
        row = next(r for r in rows if r[:2] == ["dev", group])
        true = 100 * sum(edit_distance(ref, best) for best, _, _, ref in utts) / sum(len(u[3]) for u in utts)
        assert row[2:] == [str(len(utts)), f"{true:.2f}",
                           pooled_estimate([(b, d) for b, d, _, _ in utts], TOP_K),
                           pooled_estimate([(b, n) for b, _, n, _ in utts], TOP_K)]


def test_nbest_size_option(hand_built):
    assert report(hand_built, "--nbest", "2") == 0
    text = (hand_built / "report.md").read_text()
    assert "| 11 12 13 14 | 2 | 0.25 |" in text
    _, rows = table_rows(text, "## Error localisation")
    row = next(r for r in rows if r[:3] == ["dev", "6-10", "0.6"])
    # u1's 2 best paths: only 'i' (pos 1) is disputed, half the list keeps it.
    assert row[7:10] == pooled_localisation([[1, 0.5, 1, 1, 1, 1, 1, 1, 1, 1]], [U1_ERRORS], 0.6)


def test_errors(hand_built, capsys):
    def error_of(*extra, sets=None):
        assert report(hand_built, *extra, sets=sets) in (1, 2)
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("frugal uncertainty-report: error: "), err
        return err

    dec, cuts = hand_built / "decode", hand_built / "cuts.jsonl.gz"
    assert "expected NAME:DECODE_DIR:CUTS" in error_of(sets=[f"dev:{dec}"])
    assert "--top-k 0" in error_of("--top-k", "0")
    # A dropout pass that lacks an utterance.
    lines = (dec / "dropout/3/hyp.2.txt").read_text()
    (dec / "dropout/3/hyp.2.txt").write_text("")
    assert f"{dec}/dropout/3: no hypothesis for utterance 'u2' of {cuts}" in error_of()
    (dec / "dropout/3/hyp.2.txt").write_text(lines)
    # References for an utterance that was not decoded.
    write_text_cuts(cuts, {"u1": TRUTH.split(), "u2": U2_REF.split(), "u3": ["yes"]})
    assert f"{dec}: no hypothesis for utterance 'u3'" in error_of()
    # A decode directory without dropout samples.
    plain = hand_built / "plain"
    plain.mkdir()
    for name in ("num_jobs", "hyp.1.txt", "hyp.2.txt", "lat.1.pt", "lat.2.pt", ".done", "decode.json"):
        (plain / name).write_bytes((dec / name).read_bytes())
    write_text_cuts(hand_built / "cuts2.jsonl.gz", {"u1": TRUTH.split(), "u2": U2_REF.split()})
    err = error_of(sets=[f"dev:{plain}:{hand_built / 'cuts2.jsonl.gz'}"])
    assert f"{plain}: no dropout decodes" in err and "--dropout-samples" in err


def test_real_dropout_decode(tmp_path_factory, repo_dir, yesno_dir, capsys):
    d = make_yesno_model(tmp_path_factory.mktemp("uncertainty_e2e"), repo_dir, yesno_dir)
    dec, cuts = d / "exp/chain/tdnnf/decode_test", d / "data/fbank/cuts_test.jsonl.gz"
    run("decode", "--model", d / "exp/chain/tdnnf/final.pt", "--graph", d / "exp/chain/graph/HCLG.fst",
        "--words", d / "data/lang/words.txt", "--cuts", cuts, "--output-dir", dec, "--nj", "1",
        "--dropout-samples", "2", "--dropout-proportion", "0.2", "--dropout-seed", "4", *DECODE_OPTS)
    capsys.readouterr()
    run("uncertainty-report", "--set", f"test:{dec}:{cuts}", "--words", d / "data/lang/words.txt",
        "--top-k", "2", "--output", d / "uncertainty.md")
    text = (d / "uncertainty.md").read_text()
    assert capsys.readouterr().out == text
    info = json.loads((dec / "dropout.json").read_text())
    assert f"| test | {dec} | 12 | 2 | 0.2 | 4 | {' '.join(map(str, info['pass_seeds']))} | 2 | 0.1 |" in text
    # True and estimated (dropout) WER from the decode directory's files, independently.
    refs = {c.id: c.supervisions[0].text.split() for c in CutSet.from_file(cuts)}
    best = read_text(dec / "hyp.1.txt")
    samples = [read_text(dec / f"dropout/{k}/hyp.1.txt") for k in (1, 2)]
    true = 100 * sum(edit_distance(refs[u], best[u]) for u in refs) / sum(len(r) for r in refs.values())
    est = pooled_estimate([(best[u], [s[u] for s in samples]) for u in refs], 2)
    _, rows = table_rows(text, "## WER estimation")
    row = next(r for r in rows if r[:2] == ["test", "all"])
    assert row[2:5] == ["12", f"{true:.2f}", est]
    assert sum(best[u] != s[u] for s in samples for u in refs) > 0  # the samples are not all the 1-best
