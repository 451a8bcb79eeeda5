"""concat-cuts: consecutive cuts joined into long utterances, features concatenated, on yesno's test cuts.

The joined features are stored again with lilcom (LilcomChunkyWriter, tick 2^-5): lossy, so they
are compared with the members' loaded (already lilcom-decoded) features to half a tick, the
rounding of re-compression (the 500-frame chunks of a joined cut straddle its members).
"""
import gzip
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from frugal.bin.main import main as frugal_main
from frugal.data.concat import group_cuts
from frugal.data.cuts import cut_words, load_cuts
from frugal.data.dataset import FeatureDataset

RECOMPRESSION_TOL = 2.0 ** -6 + 1e-6  # half of lilcom's 2^-5 tick


def run(*argv) -> None:
    assert frugal_main([str(a) for a in argv]) == 0, argv


def fails(capsys, *argv) -> str:
    """The one-line error of a `frugal concat-cuts` run that must fail."""
    capsys.readouterr()
    assert frugal_main(["concat-cuts"] + [str(a) for a in argv]) == 1, argv
    err = capsys.readouterr().err
    assert err.startswith("frugal concat-cuts: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def fbank(tmp_path_factory, yesno_dir, repo_dir) -> Path:
    """yesno's 30 test cuts with 23-bin features (and 2 train cuts with 40 bins, in bins40.jsonl.gz)."""
    d = tmp_path_factory.mktemp("concat")
    run("prepare-data", "yesno", "--corpus-dir", yesno_dir, "--output-dir", d / "manifests")
    run("compute-fbank", "--config", repo_dir / "egs/yesno/conf/fbank.yaml",
        "--cuts-in", d / "manifests/yesno_cuts_test.jsonl.gz", "--cuts-out", d / "cuts.jsonl.gz",
        "--storage-dir", d / "feats")
    with gzip.open(d / "manifests/yesno_cuts_train.jsonl.gz", "rt") as f:
        two = f.readlines()[:2]
    with gzip.open(d / "train2.jsonl.gz", "wt") as f:
        f.writelines(two)
    run("compute-fbank", "--num-mel-bins", "40", "--cuts-in", d / "train2.jsonl.gz",
        "--cuts-out", d / "bins40.jsonl.gz", "--storage-dir", d / "feats40")
    return d


def members_of(cut, by_id):
    return [by_id[i] for i in cut.id.split("+")]


def concat(d: Path, out: str, *opts, cuts="cuts.jsonl.gz"):
    run("concat-cuts", "--cuts", d / cuts, "--output", d / f"{out}.jsonl.gz", "--storage-dir", d / f"{out}_feats",
        *opts)
    return load_cuts(d / f"{out}.jsonl.gz", features=True)


def test_groups_of_four_concatenate_features_and_texts(fbank, caplog):
    caplog.set_level(logging.INFO, logger="frugal")
    inputs = load_cuts(fbank / "cuts.jsonl.gz", features=True)
    by_id = {c.id: c for c in inputs}
    out = concat(fbank, "g4")
    assert "30 cuts joined into 8" in caplog.text
    ids = sorted(by_id)
    assert [len(members_of(c, by_id)) for c in out] == [4] * 7 + [2]  # the last group is shorter
    assert [i for c in out for i in c.id.split("+")] == ids  # every cut once, in id order
    for cut in out:
        members = members_of(cut, by_id)
        feats = cut.load_features()
        expected = np.concatenate([m.load_features() for m in members])
        assert feats.shape == expected.shape == (cut.num_frames, 23)
        assert np.abs(feats - expected).max() <= RECOMPRESSION_TOL
        assert cut.num_frames == cut.features.num_frames == sum(m.num_frames for m in members)
        assert cut.duration == pytest.approx(cut.num_frames * 0.01) == cut.features.duration
        assert cut.recording is None and cut.start == 0 and cut.features.start == 0
        assert cut.features.type == "frugal-kaldi-native-fbank" and cut.features.frame_shift == 0.01
        [sup] = cut.supervisions
        assert (sup.start, sup.duration, sup.recording_id) == (0, cut.duration, cut.id)
        assert sup.text == " ".join(" ".join(cut_words(m)) for m in members)
        speakers = {s.speaker for m in members for s in m.supervisions}
        assert sup.speaker == (speakers.pop() if len(speakers) == 1 else "mixed")
    assert Path(out[0].features.storage_path).parent == fbank / "g4_feats"


def test_the_output_loads_through_the_feature_dataset(fbank):
    out = concat(fbank, "g4ds")
    batch = FeatureDataset()[out]
    assert batch["features"].shape == (8, max(c.num_frames for c in out), 23)
    assert batch["feature_lens"].tolist() == [c.num_frames for c in out]
    assert batch["texts"] == [c.supervisions[0].text for c in out]
    assert batch["cut_ids"] == [c.id for c in out]


def test_max_frames_starts_a_group_early(fbank):
    by_id = {c.id: c for c in load_cuts(fbank / "cuts.jsonl.gz")}
    out = concat(fbank, "mf", "--group", "5", "--max-frames", "2000")
    groups = [members_of(c, by_id) for c in out]
    ordered = sorted(by_id.values(), key=lambda c: c.id)
    assert [m for g in groups for m in g] == ordered
    for g, nxt in zip(groups, groups[1:] + [None]):
        frames = sum(m.num_frames for m in g)
        assert len(g) <= 5 and (frames <= 2000 or len(g) == 1)
        if nxt is not None:  # greedy: the group ended because it was full or the next cut would not fit
            assert len(g) == 5 or frames + nxt[0].num_frames > 2000
    assert any(len(g) < 5 for g in groups[:-1])  # the limit did bite
    # A limit below every cut: each cut alone (a longer cut is never split or dropped).
    shortest = min(c.num_frames for c in ordered)
    alone = group_cuts(ordered, 4, shortest - 1)
    assert [len(g) for g in alone] == [1] * len(ordered)


def test_ids_are_deterministic_and_a_rerun_overwrites(fbank):
    first = concat(fbank, "det", "--group", "3")
    feats = {c.id: c.load_features() for c in first}
    # The same cuts in reverse order: sorted by id, the same groups.
    with gzip.open(fbank / "cuts.jsonl.gz", "rt") as f:
        lines = f.readlines()
    with gzip.open(fbank / "reversed.jsonl.gz", "wt") as f:
        f.writelines(reversed(lines))
    again = concat(fbank, "det", "--group", "3", cuts="reversed.jsonl.gz")
    assert [c.id for c in again] == [c.id for c in first] and len({c.id for c in again}) == 10
    for c in again:
        np.testing.assert_array_equal(c.load_features(), feats[c.id])
    assert not [p for p in fbank.iterdir() if p.name.startswith(".tmp.")]
    assert sorted(p.name for p in (fbank / "det_feats").iterdir()) == ["feats-00000.lca"]


def test_group_of_one_copies_each_cut(fbank):
    by_id = {c.id: c for c in load_cuts(fbank / "cuts.jsonl.gz")}
    out = concat(fbank, "g1", "--group", "1")
    assert sorted(c.id for c in out) == sorted(by_id)
    for c in out:
        assert np.abs(c.load_features() - by_id[c.id].load_features()).max() <= RECOMPRESSION_TOL


def test_a_failed_run_keeps_the_old_outputs(fbank, monkeypatch):
    concat(fbank, "keep", "--group", "2")
    manifest = (fbank / "keep.jsonl.gz").read_bytes()
    archive = (fbank / "keep_feats/feats-00000.lca").read_bytes()
    import frugal.data.concat as concat_mod
    calls = []
    real_load = concat_mod._load

    def failing_load(cut, name):
        calls.append(cut.id)
        if len(calls) == 7:
            raise concat_mod.FrugalError(f"{name}: cut {cut.id}: injected failure")
        return real_load(cut, name)

    monkeypatch.setattr(concat_mod, "_load", failing_load)
    argv = ["--cuts", fbank / "cuts.jsonl.gz", "--output", fbank / "keep.jsonl.gz", "--storage-dir",
            fbank / "keep_feats", "--group", "3"]
    assert frugal_main(["concat-cuts"] + [str(a) for a in argv]) == 1
    assert (fbank / "keep.jsonl.gz").read_bytes() == manifest
    assert (fbank / "keep_feats/feats-00000.lca").read_bytes() == archive
    assert not [p for p in fbank.iterdir() if p.name.startswith(".tmp.")]


def test_a_run_killed_while_replacing_features_leaves_no_manifest(fbank, monkeypatch):
    """The old manifest goes before its features are replaced: no manifest points at features not its own."""
    concat(fbank, "kill", "--group", "2")
    real_rename = os.rename

    def killed(src, dst):
        if Path(dst).name == "kill_feats" or Path(src).name == "kill_feats":
            assert not (fbank / "kill.jsonl.gz").exists()
            raise KeyboardInterrupt
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", killed)
    argv = ["--cuts", fbank / "cuts.jsonl.gz", "--output", fbank / "kill.jsonl.gz", "--storage-dir",
            fbank / "kill_feats", "--group", "3"]
    assert frugal_main(["concat-cuts"] + [str(a) for a in argv]) == 130
    monkeypatch.undo()
    assert not (fbank / "kill.jsonl.gz").exists()
    out = concat(fbank, "kill", "--group", "3")  # the re-run cleans up and writes a consistent set
    assert len(out) == 10 and not [p for p in fbank.iterdir() if p.name.startswith(".tmp.")]
    assert out[0].load_features().shape == (out[0].num_frames, 23)


def test_bad_inputs_are_one_line_errors(fbank, capsys):
    d = fbank
    common = ["--cuts", d / "cuts.jsonl.gz", "--output", d / "bad.jsonl.gz", "--storage-dir", d / "bad_feats"]
    assert "--group 0: must be at least 1" in fails(capsys, *common, "--group", "0")
    assert "--max-frames 0: must be positive" in fails(capsys, *common, "--max-frames", "0")
    (d / "empty.jsonl.gz").write_bytes(gzip.compress(b""))
    assert "empty manifest" in fails(capsys, "--cuts", d / "empty.jsonl.gz", *common[2:])
    assert "not found" in fails(capsys, "--cuts", d / "missing.jsonl.gz", *common[2:])
    # 23- and 40-bin features in one manifest.
    with gzip.open(d / "cuts.jsonl.gz", "rt") as f23, gzip.open(d / "bins40.jsonl.gz", "rt") as f40:
        mixed = f23.readlines()[:3] + f40.readlines()
    with gzip.open(d / "mixed.jsonl.gz", "wt") as f:
        f.writelines(mixed)
    err = fails(capsys, "--cuts", d / "mixed.jsonl.gz", *common[2:])
    bins40 = load_cuts(d / "bins40.jsonl.gz")
    assert str(d / "mixed.jsonl.gz") in err and "40-dim" in err and "cannot join" in err
    assert any(c.id in err for c in bins40)
    # The input's own feature directory, or the input manifest, as the output.
    assert "would be replaced" in fails(capsys, *common[:4], "--storage-dir", d / "feats")
    assert "would replace the input" in fails(capsys, "--cuts", d / "cuts.jsonl.gz", "--output", d / "cuts.jsonl.gz",
                                              "--storage-dir", d / "bad_feats")
    assert ".jsonl.gz" in fails(capsys, *common[:2], "--output", d / "bad.txt", "--storage-dir", d / "bad_feats")
    assert not (d / "bad.jsonl.gz").exists() and not (d / "bad_feats").exists()
