"""A small real acoustic model for the Monte-Carlo dropout tests: yesno's recipe (23 mel bins,
unigram word LM, monophone chain graph) with the seed TDNN-F trained for a few epochs."""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Optional

import yaml

from frugal.bin.main import main as frugal_main

# Few epochs: a real but uncertain model (about 30% WER, mostly deletions), whose dropout
# samples differ from its dropout-off decode on many utterances.
EPOCHS = 4
# A narrow lattice beam keeps word-determinisation of the noisier dropout lattices fast.
DECODE_OPTS = ["--beam", "15", "--lattice-beam", "1"]


def run(*argv) -> None:
    assert frugal_main([str(a) for a in argv]) == 0, argv


def make_yesno_model(d: Path, repo_dir: Path, yesno_dir: Path, num_test_cuts: int = 12,
                     model_section: Optional[dict] = None) -> Path:
    """Data, lang, HCLG and a briefly trained model under ``d`` (yesno's TDNN-F, or the
    config's ``model_section``); the first ``num_test_cuts`` test cuts are written to
    d/data/fbank/cuts_test.jsonl.gz."""
    run("prepare-data", "yesno", "--corpus-dir", yesno_dir, "--output-dir", d / "data/manifests",
        "--lexicon-dir", d / "data/local")
    run("prepare-lang", "--lexicon", d / "data/local/lexicon.txt", "--output-dir", d / "data/lang",
        "--sil-phone", "SIL")
    for part in ("train", "test"):
        run("compute-fbank", "--config", repo_dir / "egs/yesno/conf/fbank.yaml",
            "--cuts-in", d / f"data/manifests/yesno_cuts_{part}.jsonl.gz",
            "--cuts-out", d / f"data/fbank/all_cuts_{part}.jsonl.gz", "--storage-dir", d / f"data/fbank/feats_{part}")
    with gzip.open(d / "data/fbank/all_cuts_test.jsonl.gz", "rt") as f:
        lines = f.readlines()[:num_test_cuts]
    with gzip.open(d / "data/fbank/cuts_test.jsonl.gz", "wt") as f:
        f.writelines(lines)
    train_cuts = d / "data/fbank/all_cuts_train.jsonl.gz"
    run("cuts-to-text", "--cuts", train_cuts, "--output", d / "data/local/train_text")
    run("make-word-lm", "--text", d / "data/local/train_text", "--order", "1", "--output", d / "data/local/lm.arpa")
    run("make-den-graph", "--lang", d / "data/lang", "--cuts", train_cuts, "--context", "mono",
        "--output", d / "exp/chain/den.pt")
    run("compile-graph", "--lang", d / "data/lang", "--arpa", d / "data/local/lm.arpa", "--topo", "chain",
        "--context", "mono", "--output", d / "exp/chain/graph/HCLG.fst")
    config = yaml.safe_load((repo_dir / "egs/yesno/conf/train.yaml").read_text())
    config["train"]["num_epochs"] = EPOCHS
    if model_section is not None:
        config["model"] = model_section
    (d / "train.yaml").write_text(yaml.safe_dump(config))
    run("train", "--train-config", d / "train.yaml", "--train-cuts", train_cuts, "--lang", d / "data/lang",
        "--den-graph", d / "exp/chain/den.pt", "--exp-dir", d / "exp/chain/tdnnf", "--device", "cpu",
        "--num-threads", "1")
    return d
