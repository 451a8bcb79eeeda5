"""Transducers through the command line on yesno: units, token LM, pruned and full training,
greedy / beam / LM-fused / Monte-Carlo dropout decoding, scoring into RESULTS.md, training speed.

The searches themselves are checked against brute force in test_transducer_search.py and the
losses in test_train_transducer.py; here the tools: what they write, that it is reproducible
and independent of batching, and that they refuse a model and units that do not belong together.
"""
import shutil

import pytest
import torch

from frugal.bin.main import main as frugal_main
from frugal.dirs import save_checkpoint

EPOCHS = 8
MODEL = """\
model:
  type: transducer
  encoder: {type: tdnnf, preset: tdnnf-small, time_strides: [1, 1, 0, 3, 3, 3]}
  encoder_dim: 64
  decoder_dim: 32
  joiner_dim: 64
train:
  num_epochs: %d
  max_duration: 24.0
  num_buckets: 2
  lr: 0.005
  warmup_steps: 10
  seed: 1
loss:
  warm_step: 20
""" % EPOCHS


def run(*argv) -> None:
    assert frugal_main([str(a) for a in argv]) == 0, argv


@pytest.fixture(scope="module")
def yesno(tmp_path_factory, repo_dir, yesno_dir):
    d = tmp_path_factory.mktemp("transducer")
    run("prepare-data", "yesno", "--corpus-dir", yesno_dir, "--output-dir", d / "manifests")
    for part in ("train", "test"):
        run("compute-fbank", "--config", repo_dir / "egs/yesno/conf/fbank.yaml",
            "--cuts-in", d / f"manifests/yesno_cuts_{part}.jsonl.gz", "--cuts-out", d / f"fbank/{part}.jsonl.gz",
            "--storage-dir", d / f"fbank/feats_{part}")
    run("cuts-to-text", "--cuts", d / "fbank/train.jsonl.gz", "--output", d / "text")
    run("prepare-units", "--text", d / "text", "--unit", "char", "--output-dir", d / "lang")
    run("make-word-lm", "--text", d / "text", "--order", "2", "--units-lang", d / "lang", "--output", d / "lm.arpa")
    (d / "train.yaml").write_text(MODEL)
    for kind in ("pruned", "full"):
        run("train", "--objective", "transducer", "--rnnt-loss", kind, "--train-config", d / "train.yaml",
            "--train-cuts", d / "fbank/train.jsonl.gz", "--lang", d / "lang", "--exp-dir", d / kind,
            "--device", "cpu", "--num-threads", "1")
    return d


def decode(d, out, *opts, model="pruned"):
    run("decode-transducer", "--model", d / model / "final.pt", "--lang", d / "lang", "--cuts",
        d / "fbank/test.jsonl.gz", "--output-dir", out, *opts)
    return out


def test_training_records_and_logs(yesno):
    d = yesno
    for kind, parts in (("pruned", ("simple=", "pruned=")), ("full", ("full=",))):
        final = torch.load(d / kind / "final.pt", weights_only=True)
        assert final["objective"] == "transducer" and final["rnnt_loss"] == kind
        assert final["model_info"]["type"] == "transducer" and final["model_info"]["config"]["num_pdfs"] == 8
        assert len(final["tokens_sha256"]) == 64
        lines = [x for x in (d / kind / "log/train.log").read_text().splitlines() if " training: " in x]
        assert len(lines) == EPOCHS and all(p in lines[0] for p in parts) and "s/step=" in lines[0]
        losses = [float(x.split("loss=")[1].split(",")[0]) for x in lines]
        assert losses[-1] < 0.5 * losses[0], losses  # it learns
    # the token LM is over the units' tokens
    arpa = (d / "lm.arpa").read_text()
    assert "\tY" in arpa and "\t\u2581" in arpa


def test_searches_write_hypotheses_and_nbest(yesno, tmp_path):
    d = yesno
    cut_ids = [line.split()[0] for line in (d / "text").read_text().splitlines()]
    run("cuts-to-text", "--cuts", d / "fbank/test.jsonl.gz", "--output", tmp_path / "ref")
    test_ids = {line.split()[0] for line in (tmp_path / "ref").read_text().splitlines()}
    greedy = decode(d, tmp_path / "greedy")
    greedy2 = decode(d, tmp_path / "greedy2", "--max-sym-per-frame", "2")
    assert (greedy2 / "decode.json").read_text().count('"max_sym_per_frame": 2') == 1
    beam = decode(d, tmp_path / "beam", "--method", "modified_beam_search", "--beam", "4", "--nbest", "3")
    lm = decode(d, tmp_path / "lm", "--method", "modified_beam_search", "--nbest", "2", "--lm", d / "lm.arpa",
                "--lm-scale", "0.5")
    for out in (greedy, greedy2, beam, lm):
        assert (out / ".done").is_file() and (out / "log/decode.log").is_file()
        hyp = dict(line.split(maxsplit=1) if " " in line else (line, "")
                   for line in (out / "hyp.txt").read_text().splitlines())
        assert set(hyp) == test_ids and not test_ids & set(cut_ids)
    assert not (greedy / "nbest.txt").exists()  # greedy search scores nothing
    rows = [line.split() for line in (beam / "nbest.txt").read_text().splitlines()]
    by_utt = {}
    for r in rows:
        by_utt.setdefault(r[0], []).append(r)
    hyp = {line.split()[0]: line.split()[1:] for line in (beam / "hyp.txt").read_text().splitlines()}
    for utt, rs in by_utt.items():
        assert [int(r[1]) for r in rs] == list(range(1, len(rs) + 1)) and len(rs) <= 3
        scores = [float(r[2]) for r in rs]
        assert scores == sorted(scores, reverse=True)
        assert rs[0][4:] == hyp[utt]  # 1-best of the n-best is hyp.txt
    assert any(float(r[3]) < 0 for r in (x.split() for x in (lm / "nbest.txt").read_text().splitlines()))
    # scoring: a row of RESULTS.md
    run("score", "--ref-cuts", d / "fbank/test.jsonl.gz", "--hyp", beam / "hyp.txt", "--out-dir", beam,
        "--results", tmp_path / "RESULTS.md", "--model-name", "transducer_pruned", "--data-name", "test",
        "--graph-name", "beam4")
    row = [x for x in (tmp_path / "RESULTS.md").read_text().splitlines() if "transducer_pruned" in x]
    wer = (beam / "wer").read_text().split()[1]
    assert len(row) == 1 and f"| {wer} |" in row[0] and "| beam4 |" in row[0]


def test_decoding_is_reproducible_and_independent_of_batching(yesno, tmp_path):
    d = yesno
    for opts in ((), ("--method", "modified_beam_search", "--nbest", "2")):
        a = decode(d, tmp_path / "a", *opts)
        b = decode(d, tmp_path / "b", *opts, "--batch-size", "1")
        c = decode(d, tmp_path / "a", *opts)  # again, into the same directory
        assert (a / "hyp.txt").read_text() == (b / "hyp.txt").read_text() == (c / "hyp.txt").read_text()
        if opts:
            na = [x.split() for x in (a / "nbest.txt").read_text().splitlines()]
            nb = [x.split() for x in (b / "nbest.txt").read_text().splitlines()]
            assert [x[:2] + x[4:] for x in na] == [x[:2] + x[4:] for x in nb]
            assert [float(x[2]) for x in na] == pytest.approx([float(x[2]) for x in nb], abs=1e-3)


def test_monte_carlo_dropout_passes(yesno, tmp_path):
    d = yesno
    plain = decode(d, tmp_path / "plain", "--method", "modified_beam_search")
    opts = ("--method", "modified_beam_search", "--dropout-samples", "2", "--dropout-proportion", "0.3")
    a = decode(d, tmp_path / "a", *opts, "--dropout-seed", "1")
    b = decode(d, tmp_path / "b", *opts, "--dropout-seed", "1", "--batch-size", "3")
    c = decode(d, tmp_path / "c", *opts, "--dropout-seed", "2")
    assert (a / "hyp.txt").read_text() == (plain / "hyp.txt").read_text()  # pass 0: dropout off
    for k in (1, 2):
        assert (a / f"dropout/{k}/.done").is_file()
        assert (a / f"dropout/{k}/hyp.txt").read_text() == (b / f"dropout/{k}/hyp.txt").read_text()
    samples = [(x / f"dropout/{k}/nbest.txt").read_text() for x in (a, c) for k in (1, 2)]
    assert len(set(samples)) == 4  # other masks, other scores
    assert (a / "dropout/1/nbest.txt").read_text() != (plain / "nbest.txt").read_text()
    # fewer samples next time: the stale pass goes
    decode(d, tmp_path / "a", "--method", "modified_beam_search", "--dropout-samples", "1",
           "--dropout-proportion", "0.3", "--dropout-seed", "1")
    assert (a / "dropout/1/hyp.txt").read_text() == (b / "dropout/1/hyp.txt").read_text()
    assert not (a / "dropout/2").exists()


def test_units_and_models_that_do_not_belong_together(yesno, tmp_path, capsys):
    d = yesno
    lang = tmp_path / "lang"
    shutil.copytree(d / "lang", lang)
    lines = (lang / "tokens.txt").read_text().splitlines()
    lines[3], lines[4] = lines[3].split()[0] + " 4", lines[4].split()[0] + " 3"  # two tokens swapped
    (lang / "tokens.txt").write_text("\n".join(lines) + "\n")
    args = ["decode-transducer", "--model", str(d / "pruned/final.pt"), "--lang", str(lang), "--cuts",
            str(d / "fbank/test.jsonl.gz"), "--output-dir", str(tmp_path / "out")]
    assert frugal_main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("frugal decode-transducer: error: --lang") and "tokens.txt differs" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "out/.done").exists()
    assert frugal_main(args + ["--skip-checks"]) == 0
    capsys.readouterr()
    state = torch.load(d / "pruned/final.pt", weights_only=True)
    state["objective"] = "ctc"
    save_checkpoint(tmp_path / "ctc.pt", state)
    args[2] = str(tmp_path / "ctc.pt")
    args[4] = str(d / "lang")
    assert frugal_main(args) == 1
    assert "a ctc model, not a transducer" in capsys.readouterr().err
    args[2] = str(d / "pruned/final.pt")
    assert frugal_main(args + ["--lm-scale", "0.5"]) == 1
    assert "--lm-scale" in capsys.readouterr().err
    assert frugal_main(args + ["--method", "modified_beam_search", "--max-sym-per-frame", "2"]) == 1
    assert "--max-sym-per-frame 2: is for greedy search" in capsys.readouterr().err


def test_train_speed_table(yesno, tmp_path, capsys):
    d = yesno
    run("train-speed", "--exp-dir", d / "pruned", "--exp-dir", d / "full", "--results", tmp_path / "speed.md")
    table = (tmp_path / "speed.md").read_text()
    rows = [x for x in table.splitlines() if x.startswith("| pruned") or x.startswith("| full")]
    assert len(rows) == 2 and "transducer (pruned)" in rows[0] and "| 1.00 |" in rows[0]
    assert "transducer (full)" in rows[1] and f"| {EPOCHS} |" in rows[1]
