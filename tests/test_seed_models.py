"""Seed acoustic models: the yesno recipe through alignment, resume after kill -9, torchrun, bad input.

One scratch copy of the repository layout (like test_recipes.py) runs the yesno recipe's
data stages and den graph once; the training tests use its features with a tiny config.
"""
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lhotse import CutSet

from frugal.decode.align import load_alignments
from frugal.lang.symbols import SymbolTable

import proc_testing

VENV_BIN = Path(sys.executable).parent
LEAKY = 0.1


@pytest.fixture(scope="module")
def yesno_root(tmp_path_factory, repo_dir, yesno_dir):
    """A scratch layout with path.sh, run.sh, tools/, .venv and egs/ (no outputs), the yesno
    recipe run through stage 4 (manifests, lang, fbank, den graph)."""
    root = tmp_path_factory.mktemp("seed") / "root"
    root.mkdir()
    for name in ("path.sh", "run.sh"):
        shutil.copy(repo_dir / name, root / name)
    (root / "tools").symlink_to(repo_dir / "tools")
    (root / ".venv").symlink_to(repo_dir / ".venv")
    shutil.copytree(repo_dir / "egs", root / "egs", ignore=shutil.ignore_patterns("data", "exp", "corpus"))
    r = run_recipe(root, "--corpus-dir", str(yesno_dir), "--stop-stage", "4")
    assert r.returncode == 0, r.stdout + r.stderr
    return root


def run_recipe(root, *args):
    return proc_testing.run([str(root / "run.sh"), "--recipe", "yesno", *args])


def epoch_objectives(train_log: Path, kind: str):
    """Per-epoch objf values of 'training' or 'validation' lines of a train.log."""
    pattern = re.compile(rf"epoch (\d+) {kind}: .*?objf=(-?[0-9.]+)")
    return [float(m.group(2)) for m in map(pattern.search, train_log.read_text().splitlines()) if m]


@pytest.mark.slow
def test_yesno_seed_model_and_alignments(yesno_root):
    d = yesno_root / "egs/yesno"
    t0 = time.time()
    # Hold out 3 training files (the recipe trains on all 30) to watch the validation objective.
    r = run_recipe(yesno_root, "--stage", "5", "--stop-stage", "6", "--num-valid", "3")
    assert r.returncode == 0, r.stdout + r.stderr
    seconds = time.time() - t0

    train = epoch_objectives(d / "exp/tdnnf_seed/log/train.log", "training")
    valid = epoch_objectives(d / "exp/tdnnf_seed/log/train.log", "validation")
    assert len(train) == len(valid) >= 10
    # The objective rises (each third of training better than the one before) ...
    n = len(train) // 3
    thirds = [sum(train[i * n:(i + 1) * n]) / n for i in range(3)]
    assert thirds[0] < thirds[1] < thirds[2], train
    # ... and ends near the limit 0 (num = den): a good chain model ends around -0.05..-0.1.
    assert -0.12 < train[-1] <= 0.0, train
    assert -0.2 < valid[-1] <= 0.0, valid
    assert train[0] < -0.3  # it started far from there

    # Alignments: YES/NO in transcript order at plausible times.
    alignments, shift = load_alignments(d / "exp/tdnnf_seed/ali_train.pt")
    assert shift == pytest.approx(0.03)
    phones = SymbolTable.read(d / "data/lang/phones.txt")
    words = SymbolTable.read(d / "data/lang/words.txt")
    cuts = {c.id: c for c in CutSet.from_file(d / "data/fbank/yesno_cuts_train.jsonl.gz")}
    assert sorted(a.id for a in alignments) == sorted(cuts)
    gaps = []
    for a in alignments:
        cut = cuts[a.id]
        transcript = cut.supervisions[0].text.split()
        assert [words.symbol(w) for w in a.words] == transcript and len(transcript) == 8
        # Every frame of the utterance is aligned, and words start in order inside it.
        assert len(a.pdfs) == -(-cut.num_frames // 3)
        starts = [t * shift for t in a.word_starts]
        assert all(0 <= s < cut.duration for s in starts) and starts == sorted(starts)
        gaps += [b - s for s, b in zip(starts, starts[1:])]
        # Each word's phone (Y or N) starts at the word's first frame.
        segs = {t0: phones.symbol(ph) for ph, t0, _ in a.phone_segments()}
        assert [segs[t] for t in a.word_starts] == [{"YES": "Y", "NO": "N"}[w] for w in transcript]
        assert set(segs.values()) <= {"SIL", "Y", "N"}
    # yesno's words come about every 0.55 s; a flat-start seed model gets most of them right.
    gaps.sort()
    assert 0.45 < gaps[len(gaps) // 2] < 0.7, gaps
    assert sum(g > 0.3 for g in gaps) > 0.85 * len(gaps), gaps
    text = (d / "exp/tdnnf_seed/ali_train.txt").read_text()
    assert "YES@" in text and "NO@" in text and "(no alignment)" not in text
    print(f"yesno stages 5-6: {seconds:.0f} s, final objf train {train[-1]:.4f} valid {valid[-1]:.4f}")


TINY_CONFIG = """
loss:
  xent_regularize: 0.1
model:
  preset: tdnnf-small
  hidden_dim: 64
  bottleneck_dim: 16
  prefinal_bottleneck_dim: 16
train:
  num_epochs: 3
  max_duration: 13.0
  num_buckets: 2
  lr: 0.003
  warmup_steps: 2
  seed: 7
  save_every_steps: 2
  log_every_steps: 1
  device: cpu
"""


@pytest.fixture(scope="module")
def tiny(yesno_root, tmp_path_factory):
    """(recipe dir, tiny config, 12 training cuts): a few seconds a run."""
    d = yesno_root / "egs/yesno"
    work = tmp_path_factory.mktemp("tiny")
    conf = work / "tiny.yaml"
    conf.write_text(TINY_CONFIG)
    cuts = CutSet.from_file(d / "data/fbank/yesno_cuts_train.jsonl.gz").subset(first=12)
    cuts.to_file(work / "cuts.jsonl.gz")
    return d, conf, work / "cuts.jsonl.gz"


def train_cmd(d, conf, cuts, exp_dir, *extra):
    return [str(VENV_BIN / "frugal"), "train", "--train-config", str(conf), "--train-cuts", str(cuts),
            "--lang", "data/lang", "--den-graph", "exp/chain/den.pt", "--exp-dir", str(exp_dir),
            "--num-threads", "1", *extra]


def final_weights(exp_dir):
    return torch.load(Path(exp_dir) / "final.pt", weights_only=True)["model"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].double(), b[k].double(), rtol=1e-5, atol=1e-6), k


@pytest.mark.slow
def test_resume_after_kill_gives_the_same_model(tiny, tmp_path):
    d, conf, cuts = tiny
    ref = proc_testing.run(train_cmd(d, conf, cuts, tmp_path / "ref"), cwd=d)
    assert ref.returncode == 0, ref.stderr

    exp = tmp_path / "killed"
    proc = subprocess.Popen(train_cmd(d, conf, cuts, exp), cwd=d, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (exp / "epoch-1.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # into epoch 2
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert (exp / "epoch-1.pt").exists() and not (exp / "final.pt").exists()
    assert not (exp / "epoch-3.pt").exists()

    again = proc_testing.run(train_cmd(d, conf, cuts, exp), cwd=d)
    assert again.returncode == 0, again.stderr
    assert "resumed from" in (exp / "log/train.log").read_text()
    assert_same_weights(final_weights(exp), final_weights(tmp_path / "ref"))

    # --start-fresh retrains from scratch (and gets the same model again: same seed).
    fresh = proc_testing.run(train_cmd(d, conf, cuts, exp, "--start-fresh"), cwd=d)
    assert fresh.returncode == 0, fresh.stderr
    assert_same_weights(final_weights(exp), final_weights(tmp_path / "ref"))


@pytest.mark.slow
def test_torchrun_two_processes_agree(tiny, tmp_path):
    d, conf, cuts = tiny
    one_epoch = tmp_path / "one.yaml"
    one_epoch.write_text(TINY_CONFIG.replace("num_epochs: 3", "num_epochs: 1"))
    exp = tmp_path / "ddp"
    cmd = [str(VENV_BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "frugal.bin.main",
           *train_cmd(d, one_epoch, cuts, exp)[1:]]
    r = proc_testing.run(cmd, cwd=d)
    assert r.returncode == 0, r.stdout + r.stderr
    log = (exp / "log/train.log").read_text()
    assert "2 process(es)" in log
    # Both ranks compared the SHA-256 of their weights after training.
    assert "model weights agree on all 2 processes" in r.stderr
    state = torch.load(exp / "epoch-1.pt", weights_only=True)
    assert state["sampler"]["world_size"] == 2
    assert_same_weights(final_weights(exp), state["model"])


def test_den_graph_pdfs_must_match_the_model_config(tiny, tmp_path):
    d, conf, cuts = tiny
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY_CONFIG.replace("  preset: tdnnf-small\n", "  preset: tdnnf-small\n  num_pdfs: 10\n"))
    r = proc_testing.run(train_cmd(d, bad, cuts, tmp_path / "exp"), cwd=d)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    den_pdfs = json.loads((d / "exp/chain/den.pt.json").read_text())["num_pdfs"]
    assert den_pdfs != 10
    assert re.match(r"frugal train: error: .*bad\.yaml: model num_pdfs is 10 but must be "
                    rf"{den_pdfs} \(from den graph exp/chain/den\.pt\)\n", r.stderr), r.stderr
    # Resuming from checkpoints of another model is refused the same way.
    (tmp_path / "other").mkdir()
    ok = proc_testing.run(train_cmd(d, conf, cuts, tmp_path / "other"), cwd=d)
    assert ok.returncode == 0, ok.stderr
    bigger = tmp_path / "bigger.yaml"
    bigger.write_text(TINY_CONFIG.replace("hidden_dim: 64", "hidden_dim: 32"))
    r = proc_testing.run(train_cmd(d, bigger, cuts, tmp_path / "other"), cwd=d)
    assert r.returncode == 1 and "checkpoint of a different model" in r.stderr, r.stderr


def test_ctc_seed_model_on_phones(tiny, tmp_path):
    d, conf, cuts = tiny
    cmd = train_cmd(d, conf, cuts, tmp_path / "ctc", "--objective", "ctc")
    cmd.remove("--den-graph")
    cmd.remove("exp/chain/den.pt")
    r = proc_testing.run(cmd, cwd=d)
    assert r.returncode == 0, r.stderr
    final = torch.load(tmp_path / "ctc/final.pt", weights_only=True)
    num_units = SymbolTable.read(d / "data/lang/phones.txt").get("#0")  # phones, blank 0, no #k
    assert final["model_info"]["config"]["num_pdfs"] == num_units and final["objective"] == "ctc"
    losses = [float(m.group(1)) for m in re.finditer(r"training: loss=([0-9.]+)",
                                                      (tmp_path / "ctc/log/train.log").read_text())]
    assert len(losses) == 3 and losses[-1] < losses[0]
