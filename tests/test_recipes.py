"""Recipes end to end, as a user runs them, in a scratch copy of the repository layout."""
import shutil
import subprocess
from pathlib import Path

import pytest
from lhotse import CutSet


@pytest.fixture
def sandbox(tmp_path, repo_dir):
    """tmp/root with path.sh, tools/ and .venv of the repo, and a copy of egs/ to write into."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(repo_dir / "path.sh", root / "path.sh")
    shutil.copy(repo_dir / "run.sh", root / "run.sh")
    (root / "tools").symlink_to(repo_dir / "tools")
    (root / ".venv").symlink_to(repo_dir / ".venv")
    shutil.copytree(repo_dir / "egs", root / "egs")
    return root


def run_recipe(root, recipe, *args):
    r = subprocess.run([str(root / "run.sh"), "--recipe", recipe, *args],
                       capture_output=True, text=True, timeout=1200)
    return r


def test_yesno_data_stages(sandbox, yesno_dir):
    r = run_recipe(sandbox, "yesno", "--corpus-dir", str(yesno_dir), "--stop-stage", "3")
    assert r.returncode == 0, r.stdout + r.stderr
    d = sandbox / "egs/yesno"
    for part, n in (("train", 30), ("test", 30)):
        cuts = CutSet.from_file(d / f"data/fbank/yesno_cuts_{part}.jsonl.gz")
        assert len(cuts) == n
        feats = cuts[0].load_features()
        assert feats.shape[1] == 80 and abs(feats.shape[0] - cuts[0].duration * 100) < 3
    assert (d / "data/lang/words.txt").is_file() and (d / "data/lang/L.fst").is_file()
    assert (d / "exp/log/stage3_fbank_train.log").is_file()
    assert "not implemented yet" in r.stdout

    # A second run skips every finished stage.
    r = run_recipe(sandbox, "yesno", "--corpus-dir", str(yesno_dir), "--stop-stage", "3")
    assert r.returncode == 0 and r.stdout.count("done already") == 4, r.stdout

    # --force redoes one stage and leaves the others alone.
    before = (d / "data/fbank/yesno_cuts_train.jsonl.gz").stat().st_mtime_ns
    words = (d / "data/lang/words.txt").read_text()
    r = run_recipe(sandbox, "yesno", "--stage", "2", "--stop-stage", "2", "--force")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "stage 2: lang" in r.stdout and "done already" not in r.stdout
    assert (d / "data/lang/words.txt").read_text() == words
    assert (d / "data/fbank/yesno_cuts_train.jsonl.gz").stat().st_mtime_ns == before


def test_recipe_rejects_unknown_option(sandbox):
    r = run_recipe(sandbox, "yesno", "--no-such-option", "1")
    assert r.returncode != 0 and "unknown option --no-such-option" in r.stderr


def test_corpus_recipe_needs_corpus_dir(sandbox):
    r = run_recipe(sandbox, "wsj")
    assert r.returncode != 0 and "--corpus-dir is required" in r.stderr
