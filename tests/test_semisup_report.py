"""frugal supervision-report (thesis table 3.4) and frugal semisup-results (table 3.5, figure 3.6).

The supervision report runs on hand-made supervision lattices whose n-best lists are found by
enumerating every path. The results tables run on decode directories scored by the real
frugal score-lattices; the expected WERs come from enumerating each lattice's paths under
every (LM weight, insertion penalty) and an independent edit distance."""
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from decode_testing import edit_distance, enumerate_paths
from cuts_testing import write_text_cuts
from frugal.bin.main import main as frugal_main
from frugal.dirs import DecodeDir
from frugal.lattice.lattice import Lattice
from frugal.lattice.io import write_lattices
from frugal.decode.results import update_results_table
from frugal.decode.scoring import ErrorCounts
from frugal.semisup.lattices import combine_lattices

HEADING = "## Semi-supervised LF-MMI (table 3.5)"


def run(*argv) -> int:
    return frugal_main([str(a) for a in argv])


def error_of(capsys, tool, *argv) -> str:
    assert run(tool, *argv) in (1, 2)  # a bad value, or a command line argparse cannot read
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"frugal {tool}: error: "), err
    return err


def table_rows(text: str, first_header_cell: str):
    """Rows (lists of cells) of the first markdown table whose header starts with ``first_header_cell``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header_cell} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def write_cuts(path: Path, refs):
    write_text_cuts(path, refs)


# ------------------------------------------------------------------ supervision report
SUP_WORDS = ["<eps>", "a", "b", "c", "x", "d"]
WID = {w: i for i, w in enumerate(SUP_WORDS)}


def one_path(words, graph, acoustic, frames_per_word=2) -> Lattice:
    """A state-level one-path lattice (each word on the first of its frames)."""
    arcs, weights = [], []
    num_arcs = max(1, len(words)) * frames_per_word
    for k in range(num_arcs):
        word = WID[words[k // frames_per_word]] if words and k % frames_per_word == 0 else 0
        arcs.append((k, k + 1, 1 + k % 3, word))
        weights.append((graph if k == 0 else 0.0, acoustic / num_arcs))
    finals = np.full((num_arcs + 1, 2), np.inf, dtype=np.float32)
    finals[num_arcs] = (0.0, 0.0)
    return Lattice(np.array(arcs), np.array(weights), finals)


def supervision(paths) -> Lattice:
    """A supervision lattice as frugal combine-lattices makes one, from (words, graph, acoustic) paths."""
    return combine_lattices([one_path(w.split(), g, a) for w, g, a in paths], beam=None, normalize="none")


SUP_REFS = {"u1": "a b c".split(), "u2": ["d"], "u3": "b a".split()}
# Ranked with acoustic scale 0.1, u1's regular paths come 'a b c' (2.5), 'a x c' (3.0), 'a' (3.2);
# with scale 1: 'a b c' (7), 'a' (21.2), 'a x c' (30): the 2-best differ (1 vs 2 errors).
KINDS = {
    "regular": {"u1": [("a b c", 2.0, 5.0), ("a x c", 0.0, 30.0), ("a", 1.2, 20.0)],
                "u2": [("d", 0.0, 1.0)],
                "u3": [("x", 0.0, 1.0), ("b a", 0.5, 10.0), ("b a c", 0.1, 12.0)]},
    "AM+LM": {"u1": [("a b c", 0.0, 3.0), ("a b", 1.0, 25.0)],
              "u2": [("d d", 0.0, 8.0), ("d", 0.3, 6.0), ("x", 2.0, 0.0)],
              "u3": [("b a", 0.0, 1.0)]},
}


def reference_rates(lats, refs, n, lm_scale, acoustic_scale):
    """(WER %, SER %) of the n-best lists, by enumerating every path of each lattice."""
    errors = sent_errors = ref_words = 0.0
    for uttid, ref in refs.items():
        best = {}
        for _, words, _, g, a in enumerate_paths(lats[uttid]):
            key = tuple(SUP_WORDS[w] for w in words)
            best[key] = min(best.get(key, np.inf), lm_scale * g + acoustic_scale * a)
        ranked = sorted(best, key=best.get)[:n]
        dists = [edit_distance(ref, list(hyp)) for hyp in ranked]
        errors += sum(dists) / len(dists)
        sent_errors += sum(d > 0 for d in dists) / len(dists)
        ref_words += len(ref)
    return 100 * errors / ref_words, 100 * sent_errors / len(refs)


@pytest.fixture
def supervision_dir(tmp_path):
    (tmp_path / "words.txt").write_text("".join(f"{w} {i}\n" for i, w in enumerate(SUP_WORDS)))
    write_cuts(tmp_path / "cuts.jsonl.gz", SUP_REFS)
    lats = {kind: {u: supervision(p) for u, p in by_utt.items()} for kind, by_utt in KINDS.items()}
    # regular: a directory of two jobs' files, as make-supervision writes; AM+LM: one file.
    sup = DecodeDir(tmp_path / "sup_regular")
    sup.prepare(2, {"kind": "regular"})
    write_lattices(sup.job(1).lattices, {"u1": lats["regular"]["u1"], "u3": lats["regular"]["u3"]})
    write_lattices(sup.job(2).lattices, {"u2": lats["regular"]["u2"]})
    sup.finish()
    write_lattices(tmp_path / "sup_am_lm.pt", lats["AM+LM"])
    return tmp_path, lats


def supervision_report(d, *extra, kinds=None, cuts="cuts.jsonl.gz"):
    kinds = kinds or [f"regular:{d / 'sup_regular'}", f"AM+LM:{d / 'sup_am_lm.pt'}"]
    argv = ["supervision-report", "--cuts", d / cuts, "--words", d / "words.txt", "--output", d / "sup.md", *extra]
    for k in kinds:
        argv += ["--kind", k]
    return run(*argv)


@pytest.mark.parametrize("n,acoustic_scale", [(2, 0.1), (2, 1.0), (10, 0.1)])
def test_supervision_report_matches_enumerated_nbest_lists(supervision_dir, capsys, n, acoustic_scale):
    d, lats = supervision_dir
    assert supervision_report(d, "--nbest", n, "--acoustic-scale", acoustic_scale) == 0
    text = (d / "sup.md").read_text()
    assert capsys.readouterr().out == text
    assert f"N = {n} best paths per utterance, ranked with LM scale 1 and acoustic scale {acoustic_scale:g}; " \
           f"3 utterances" in text
    rows = {r[0]: r for r in table_rows(text, "supervision")}
    assert list(rows) == ["regular", "AM+LM"]
    for kind in rows:
        wer, ser = reference_rates(lats[kind], SUP_REFS, n, 1.0, acoustic_scale)
        assert float(rows[kind][1]) == pytest.approx(wer, abs=0.006)
        assert float(rows[kind][2]) == pytest.approx(ser, abs=0.006)
        assert rows[kind][4] == "3"


def test_supervision_report_scale_changes_the_nbest_list():
    """The hand-made lattices are built so that --acoustic-scale matters (guards the test above)."""
    lats = {u: supervision(p) for u, p in KINDS["regular"].items()}
    assert reference_rates(lats, SUP_REFS, 2, 1.0, 0.1) != reference_rates(lats, SUP_REFS, 2, 1.0, 1.0)


def test_supervision_report_uses_only_the_cuts_utterances(supervision_dir, capsys):
    d, lats = supervision_dir
    refs = {u: SUP_REFS[u] for u in ("u1", "u3")}
    write_cuts(d / "cuts2.jsonl.gz", refs)
    assert supervision_report(d, "--nbest", 2, cuts="cuts2.jsonl.gz") == 0
    text = capsys.readouterr().out
    assert "; 2 utterances" in text
    rows = {r[0]: r for r in table_rows(text, "supervision")}
    wer, ser = reference_rates(lats["regular"], refs, 2, 1.0, 1.0)
    assert float(rows["regular"][1]) == pytest.approx(wer, abs=0.006)


def test_supervision_report_errors(supervision_dir, capsys):
    d, _ = supervision_dir
    write_cuts(d / "cuts4.jsonl.gz", {**SUP_REFS, "u4": ["a"], "u5": ["b"]})
    err = error_of(capsys, "supervision-report", "--kind", f"regular:{d / 'sup_regular'}",
                   "--cuts", d / "cuts4.jsonl.gz", "--words", d / "words.txt", "--output", d / "x.md")
    assert f"--kind regular:{d / 'sup_regular'}: 2 of the 5 utterances" in err and "(first: 'u4')" in err
    base = ["--cuts", d / "cuts.jsonl.gz", "--words", d / "words.txt", "--output", d / "x.md"]
    assert "'regular': expected NAME:PATH" in error_of(capsys, "supervision-report", "--kind", "regular", *base)
    (d / "empty").mkdir()
    write_lattices(d / "none.pt", {})
    assert "not a finished decode directory" in error_of(capsys, "supervision-report", "--kind", f"am:{d / 'empty'}",
                                                         *base)
    assert f"--kind am:{d / 'none.pt'}: 3 of the 3 utterances" in error_of(capsys, "supervision-report",
                                                                          "--kind", f"am:{d / 'none.pt'}", *base)
    assert "given twice" in error_of(capsys, "supervision-report", "--kind", f"a:{d / 'sup_am_lm.pt'}",
                                     "--kind", f"a:{d / 'sup_am_lm.pt'}", *base)
    assert not (d / "x.md").exists()


# ------------------------------------------------------------------ semisup-results
NUM_WORDS = 4
RES_WORDS = ["<eps>"] + [f"w{i}" for i in range(1, NUM_WORDS + 1)]
LMWTS, WIPS = tuple(range(1, 11)), (0.0, 0.5, 1.0)
SWEEP = ["--lmwt", "1:10", "--wip", "0.0,0.5,1.0", "--bootstrap-replications", "10"]


def corrupt(rng, ref):
    """The reference with one or two random edits."""
    hyp = list(ref)
    for _ in range(rng.randint(1, 2)):
        op = rng.choice("sid")
        pos = rng.randint(0, len(hyp))
        if op == "i" or not hyp:
            hyp.insert(pos, rng.randint(1, NUM_WORDS))
        elif op == "s":
            pos = min(pos, len(hyp) - 1)
            hyp[pos] = rng.choice([w for w in range(1, NUM_WORDS + 1) if w != hyp[pos]])
        else:
            del hyp[min(pos, len(hyp) - 1)]
    return hyp


def chains_lattice(chains) -> Lattice:
    """A state-level lattice with one chain of arcs per (word ids, graph, acoustic), sharing the
    start state; a chain without words has one epsilon-word arc."""
    arcs, weights, num_states, ends = [], [], 1, []
    for words, g, a in chains:
        cur = 0
        for k, w in enumerate(words or [0]):
            arcs.append((cur, num_states, 1 + k % 3, w))
            weights.append((g, a) if k == 0 else (0.0, 0.0))
            cur, num_states = num_states, num_states + 1
        ends.append(cur)
    finals = np.full((num_states, 2), np.inf, dtype=np.float32)
    finals[ends] = 0.0
    return Lattice(np.array(arcs), np.array(weights), finals)


def system_lattices(seed, quality, refs):
    """Each utterance: its reference and three corrupted versions with random costs; ``quality``
    in [0, 1] scales the reference path's costs down (1: cost 0, the best at every setting)."""
    rng = random.Random(seed)
    out = {}
    for uttid, ref in refs.items():
        ids = [RES_WORDS.index(w) for w in ref]
        chains = [(ids, (1 - quality) * rng.uniform(0, 8), (1 - quality) * rng.uniform(0, 60))]
        chains += [(corrupt(rng, ids), rng.uniform(0, 8), rng.uniform(0, 60)) for _ in range(3)]
        out[uttid] = chains_lattice(chains)
    return out


def expected_counts(lats, refs, setting):
    """(errors, ref words) of the best paths under graph + acoustic / lmwt + wip * words, enumerated."""
    lmwt, wip = setting
    errors = 0
    for uttid, ref in refs.items():
        paths = enumerate_paths(lats[uttid])
        _, words, _, _, _ = min(paths, key=lambda p: p[3] + p[4] / lmwt + wip * len(p[1]))
        errors += edit_distance(ref, [RES_WORDS[w] for w in words])
    return errors, sum(len(r) for r in refs.values())


def expected_result(lats_dev, lats_test, refs_dev, refs_test):
    """Dev WER at the best setting (ties to the smallest (lmwt, wip), Kaldi's rule), test WER there."""
    settings = sorted((lm, wip) for lm in LMWTS for wip in WIPS)
    dev = {s: expected_counts(lats_dev, refs_dev, s) for s in settings}
    best = min(settings, key=lambda s: (dev[s][0] / dev[s][1], s))
    test = expected_counts(lats_test, refs_test, best)
    return 100 * dev[best][0] / dev[best][1], 100 * test[0] / test[1], best


def random_refs(rng, prefix, num):
    return {f"{prefix}{i}": [f"w{rng.randint(1, NUM_WORDS)}" for _ in range(rng.randint(2, 5))] for i in range(num)}


# name -> (system directory, quality); the rows of table 3.5 in order
SYSTEMS = {"Supervised only": ("tdnnf_seed", 0.0), "Regular lattice": ("tdnnf_semisup_regular", 0.45),
           "Combination w.r.t. AM": ("tdnnf_semisup_am", 0.75), "Oracle": ("tdnnf_oracle", 0.9)}
CURVE = {0: "tdnnf_semisup_regular", 1: "tdnnf_semisup_am_n1", 4: "tdnnf_semisup_am"}


def write_scored_decode_dir(d: Path, lats, ref_file: Path, words: Path, dev_dir=None):
    d.mkdir(parents=True)
    write_lattices(d / "lat.1.pt", lats)
    (d / "num_jobs").write_text("1\n")
    (d / ".done").write_text("")
    argv = ["score-lattices", "--decode-dir", d, "--ref", ref_file, "--words", words, *SWEEP]
    assert run(*argv, *(["--dev-decode-dir", dev_dir] if dev_dir else [])) == 0


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """exp/<system>/decode_3g_{dev,test}, scored by frugal score-lattices, and the expected results."""
    root = tmp_path_factory.mktemp("semisup_results")
    rng = random.Random(1)
    refs = {"dev": random_refs(rng, "d", 8), "test": random_refs(rng, "t", 8)}
    (root / "words.txt").write_text("".join(f"{w} {i}\n" for i, w in enumerate(RES_WORDS)))
    for part, r in refs.items():
        (root / f"text_{part}").write_text("".join(f"{u} {' '.join(w)}\n" for u, w in r.items()))
    qualities = {sys_dir: q for sys_dir, q in SYSTEMS.values()}
    qualities["tdnnf_semisup_am_n1"] = 0.6
    expected = {}
    for seed, (sys_dir, q) in enumerate(qualities.items()):
        lats = {part: system_lattices(100 * seed + k, q, refs[part]) for k, part in enumerate(("dev", "test"))}
        prefix = root / "exp" / sys_dir / "decode_3g"
        write_scored_decode_dir(Path(f"{prefix}_dev"), lats["dev"], root / "text_dev", root / "words.txt")
        write_scored_decode_dir(Path(f"{prefix}_test"), lats["test"], root / "text_test", root / "words.txt",
                                dev_dir=f"{prefix}_dev")
        expected[sys_dir] = expected_result(lats["dev"], lats["test"], refs["dev"], refs["test"])
    return root, expected


def results_argv(root, results, *extra, systems=SYSTEMS, curve=CURVE):
    argv = ["semisup-results", "--results", results, *extra]
    for name, (sys_dir, _) in systems.items():
        argv += ["--row", f"{name}:{root / 'exp' / sys_dir / 'decode_3g'}"]
    for n, sys_dir in curve.items():
        argv += ["--curve", f"{n}:{root / 'exp' / sys_dir / 'decode_3g'}"]
    return argv


def wrr(sup, wer, oracle):
    return 100 * (sup - wer) / (sup - oracle)


def test_table_curve_and_plot_match_independent_scoring(scored, tmp_path, capsys):
    root, expected = scored
    sup, oracle = expected["tdnnf_seed"], expected["tdnnf_oracle"]
    assert sup[0] > oracle[0] and sup[1] > oracle[1], "the fixture must give the oracle a lower WER"
    assert len({e[2] for e in expected.values()}) > 1, "the fixture must make systems choose different settings"
    results = tmp_path / "egs/mini/RESULTS.md"
    plot = tmp_path / "egs/mini/exp/semisup/wer_vs_n.png"
    assert run(*results_argv(root, results, "--plot", plot, "--notes", "seed 1, N=4, beam 4")) == 0
    text = results.read_text()
    assert capsys.readouterr().out == text  # the file is just the section
    assert text.startswith(f"{HEADING}\n\nseed 1, N=4, beam 4\n")

    rows = table_rows(text, "System")
    assert [r[0] for r in rows] == list(SYSTEMS)
    for row, (sys_dir, _) in zip(rows, SYSTEMS.values()):
        dev, test, _ = expected[sys_dir]
        assert float(row[1]) == pytest.approx(dev, abs=0.006) and float(row[2]) == pytest.approx(test, abs=0.006)
        assert float(row[3]) == pytest.approx(wrr(sup[0], dev, oracle[0]), abs=0.06)
        assert float(row[4]) == pytest.approx(wrr(sup[1], test, oracle[1]), abs=0.06)
    assert rows[0][3:] == ["0.0", "0.0"] and rows[-1][3:] == ["100.0", "100.0"]
    sources = table_rows(text, "System | Setting (best on dev)")
    for row, (sys_dir, _) in zip(sources, SYSTEMS.values()):
        lmwt, wip = expected[sys_dir][2]
        assert row[1] == f"lmwt={lmwt} wip={float(wip)}"  # the test WER was taken at the dev setting

    points = table_rows(text, "N")
    assert [int(r[0]) for r in points] == sorted(CURVE)
    for row in points:
        assert float(row[1]) == pytest.approx(expected[CURVE[int(row[0])]][0], abs=0.006)
    data = plot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert "![dev WER against N](exp/semisup/wer_vs_n.png)" in text
    assert not list(plot.parent.glob(".tmp.*")) and not list(results.parent.glob(".tmp.*"))


def test_oracle_row_option_and_undefined_wrr(scored, tmp_path):
    root, expected = scored
    results = tmp_path / "RESULTS.md"
    assert run(*results_argv(root, results, "--oracle-row", "Regular lattice", curve={})) == 0
    rows = {r[0]: r for r in table_rows(results.read_text(), "System")}
    sup, oracle = expected["tdnnf_seed"], expected["tdnnf_semisup_regular"]
    assert rows["Regular lattice"][3:] == ["100.0", "100.0"]
    assert float(rows["Oracle"][3]) == pytest.approx(wrr(sup[0], expected["tdnnf_oracle"][0], oracle[0]), abs=0.06)
    assert "oracle: Regular lattice" in results.read_text()
    # The same system as baseline and oracle: no gap to recover.
    same = {"Supervised only": SYSTEMS["Supervised only"], "Oracle": SYSTEMS["Supervised only"]}
    assert run(*results_argv(root, results, systems=same, curve={})) == 0
    assert [r[3:] for r in table_rows(results.read_text(), "System")] == [["n/a", "n/a"]] * 2


def test_section_replacement_keeps_other_text(scored, tmp_path):
    root, _ = scored
    results = tmp_path / "RESULTS.md"
    update_results_table(results, "tdnnf_seed", "dev", "3g", ErrorCounts(subs=3, ref_words=10), (8, 0.0),
                         date="2026-01-01", revision="abc")
    before = "# mini\n\nIntro.\n\n" + results.read_text()
    after = "\n## Other results\n\nkeep me\n"
    results.write_text(before + after)
    assert run(*results_argv(root, results, "--notes", "first", curve={})) == 0
    first = results.read_text()
    assert first.startswith(before + after + "\n" + HEADING + "\n\nfirst\n")
    assert run(*results_argv(root, results, "--notes", "second", curve={})) == 0
    second = results.read_text()
    assert second.count(HEADING) == 1 and "first" not in second and "\nsecond\n" in second
    assert second.startswith(before + after)
    # A section in the middle: replaced up to the next level-2 heading.
    results.write_text(before + f"\n{HEADING}\n\nold notes\n\n### old curve\n\n| N |\n\n## Next\n\nnext text\n")
    assert run(*results_argv(root, results, "--notes", "third", curve={})) == 0
    third = results.read_text()
    assert third.startswith(before + f"\n{HEADING}\n\nthird\n") and third.endswith("\n\n## Next\n\nnext text\n")
    assert "old" not in third and third.count(HEADING) == 1


def test_results_table_appended_after_the_section_survives(scored, tmp_path):
    root, _ = scored
    results = tmp_path / "RESULTS.md"
    assert run(*results_argv(root, results, curve={})) == 0
    # score-lattices --results appends its table after the section (no heading in between).
    update_results_table(results, "tdnnf_seed", "dev", "3g", ErrorCounts(subs=3, ref_words=10), (8, 0.0),
                         date="2026-01-01", revision="abc")
    table = results.read_text().split(HEADING)[1].split("\n| Model |", 1)[1]
    assert run(*results_argv(root, results, "--notes", "again", curve={})) == 0
    text = results.read_text()
    assert text.endswith("\n| Model |" + table) and text.count(HEADING) == 1 and "\nagain\n" in text


def test_semisup_results_errors(scored, tmp_path, capsys):
    root, _ = scored
    res = tmp_path / "RESULTS.md"
    sup = root / "exp/tdnnf_seed/decode_3g"
    oracle = root / "exp/tdnnf_oracle/decode_3g"

    def err(*argv):
        return error_of(capsys, "semisup-results", "--results", res, *argv)

    # A decode directory that was decoded but never scored.
    unscored = tmp_path / "exp/unscored/decode_3g"
    for part in ("dev", "test"):
        d = Path(f"{unscored}_{part}")
        shutil.copytree(f"{sup}_{part}", d, ignore=shutil.ignore_patterns("wer*", "penalty_*", "best_wer"))
    e = err("--row", f"S:{sup}", "--row", f"O:{unscored}")
    assert f"{unscored}_dev" in e and "run frugal score-lattices" in e
    e = err("--row", f"S:{sup}", "--row", f"O:{tmp_path / 'nowhere'}")
    assert f"no decode directory {tmp_path / 'nowhere'}_dev" in e and "--row O:" in e
    assert "--row: 'no colon here': expected NAME:PATH" in err("--row", f"S:{sup}", "--row", "no colon here")
    assert "need at least two rows" in err("--row", f"S:{sup}")
    assert "--row S: the name is given twice" in err("--row", f"S:{sup}", "--row", f"S:{oracle}")
    assert "--oracle-row X:" in err("--row", f"S:{sup}", "--row", f"O:{oracle}", "--oracle-row", "X")
    assert "supervised baseline" in err("--row", f"S:{sup}", "--row", f"O:{oracle}", "--oracle-row", "S")
    rows = ["--row", f"S:{sup}", "--row", f"O:{oracle}"]
    assert f"--curve: 'x:{sup}': expected N:PATH" in err(*rows, "--curve", f"x:{sup}", "--plot", tmp_path / "p.png")
    assert f"--curve: '-1:{sup}': expected" in err(*rows, f"--curve=-1:{sup}", "--plot", tmp_path / "p.png")
    assert "--curve: '4': expected" in err(*rows, "--curve", "4", "--plot", tmp_path / "p.png")
    assert "--curve 4: N is given twice" in err(*rows, "--curve", f"4:{sup}", "--curve", f"4:{oracle}",
                                                "--plot", tmp_path / "p.png")
    assert "--plot: is needed for a curve" in err(*rows, "--curve", f"4:{sup}")
    # Scored against other references: not the same dev set.
    other = tmp_path / "exp/other/decode_3g"
    refs = (root / "text_dev").read_text().splitlines()
    (tmp_path / "text_dev").write_text("\n".join(refs[:-1] + [refs[-1] + " w1"]) + "\n")
    shutil.copytree(f"{unscored}_dev", f"{other}_dev")
    assert run("score-lattices", "--decode-dir", f"{other}_dev", "--ref", tmp_path / "text_dev",
               "--words", root / "words.txt", *SWEEP) == 0
    capsys.readouterr()
    shutil.copytree(f"{oracle}_test", f"{other}_test")
    assert "not the same dev set" in err(*rows, "--row", f"X:{other}")
    assert not res.exists()
