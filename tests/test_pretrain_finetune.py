"""Pre-training and fine-tuning through the tools (thesis ch. 4): `frugal pretrain mam` resumes
exactly; `frugal train --init-encoder` with the encoder frozen, fine-tuned or held for its first
updates; per-group learning rates; the fine-tuned model decodes with Monte-Carlo dropout."""
import gzip

import pytest
import torch
import yaml

from dropout_testing import DECODE_OPTS, run
from frugal.bin.main import main as frugal_main
from frugal.models.finetune import PretrainedModel, config_from_dict
from frugal.models.mam import MamModel, config_from_dict as mam_config
from frugal.train import TrainConfig, Trainer
from frugal.train.schedule import LrSchedule

TINY_MAM = {"type": "mam", "preset": "mam-small", "d_model": 32, "num_heads": 2, "ff_dim": 64, "num_layers": 1}
HEAD = {"preset": "tdnnf-small", "hidden_dim": 64, "bottleneck_dim": 16, "prefinal_bottleneck_dim": 16}


@pytest.fixture(scope="module")
def yesno(tmp_path_factory, repo_dir, yesno_dir):
    """yesno's data, lang, den graph, HCLG and a MAM pre-trained on its training audio (3 epochs)."""
    d = tmp_path_factory.mktemp("yesno_pretrain")
    run("prepare-data", "yesno", "--corpus-dir", yesno_dir, "--output-dir", d / "data/manifests",
        "--lexicon-dir", d / "data/local")
    run("prepare-lang", "--lexicon", d / "data/local/lexicon.txt", "--output-dir", d / "data/lang", "--sil-phone", "SIL")
    for part in ("train", "test"):
        run("compute-fbank", "--config", repo_dir / "egs/yesno/conf/fbank.yaml",
            "--cuts-in", d / f"data/manifests/yesno_cuts_{part}.jsonl.gz",
            "--cuts-out", d / f"data/fbank/cuts_{part}.jsonl.gz", "--storage-dir", d / f"data/fbank/feats_{part}")
    with gzip.open(d / "data/fbank/cuts_test.jsonl.gz", "rt") as f:
        lines = f.readlines()[:6]
    with gzip.open(d / "data/fbank/cuts_test6.jsonl.gz", "wt") as f:
        f.writelines(lines)
    train = d / "data/fbank/cuts_train.jsonl.gz"
    run("cuts-to-text", "--cuts", train, "--output", d / "data/local/train_text")
    run("make-word-lm", "--text", d / "data/local/train_text", "--order", "1", "--output", d / "data/local/lm.arpa")
    run("make-den-graph", "--lang", d / "data/lang", "--cuts", train, "--context", "mono", "--output", d / "den.pt")
    run("compile-graph", "--lang", d / "data/lang", "--arpa", d / "data/local/lm.arpa", "--topo", "chain",
        "--context", "mono", "--output", d / "graph/HCLG.fst")
    _config(d / "pretrain.yaml", TINY_MAM, epochs=3, lr=0.001, decay="linear")
    run("pretrain", "mam", "--train-config", d / "pretrain.yaml", "--train-cuts", train, "--exp-dir", d / "mam",
        "--num-threads", "1", "--device", "cpu")
    return d


def _config(path, model, epochs=2, lr=0.003, decay="exponential", loss=None, **train):
    path.write_text(yaml.safe_dump({
        "model": model,
        "train": {"num_epochs": epochs, "max_duration": 30.0, "num_buckets": 2, "lr": lr, "warmup_steps": 2,
                  "lr_decay": decay, "seed": 1, "log_every_steps": 1, **train},
        "loss": loss or {}}))
    return path


def _encoder(state):
    return {k: v for k, v in state["model"].items() if k.startswith("encoder.")}


def test_pretraining_logs_learns_and_resumes_exactly(yesno):
    log = (yesno / "mam/log/train.log").read_text()
    losses = [float(line.split("l1=")[1].split(",")[0]) for line in log.splitlines() if "training: loss=" in line]
    assert len(losses) == 3 and losses[-1] < losses[0]
    final = torch.load(yesno / "mam/final.pt", weights_only=True)
    assert final["model_info"]["type"] == "mam" and final["objective"] == "mam"
    # Kill after epoch 2 (its checkpoint is what a killed run leaves): the re-run ends the same, bit for bit.
    (yesno / "mam/epoch-3.pt").unlink()
    (yesno / "mam/final.pt").unlink()
    (yesno / "mam/last-checkpoint").write_text("epoch-2.pt\n")
    run("pretrain", "mam", "--train-config", yesno / "pretrain.yaml", "--train-cuts",
        yesno / "data/fbank/cuts_train.jsonl.gz", "--exp-dir", yesno / "mam", "--num-threads", "1", "--device", "cpu")
    again = torch.load(yesno / "mam/final.pt", weights_only=True)
    assert "resumed from" in (yesno / "mam/log/train.log").read_text()
    assert all(torch.equal(final["model"][k], again["model"][k]) for k in final["model"])
    run("train-curve", "--exp-dir", yesno / "mam", "--key", "l1", "--output", yesno / "curve.png")
    assert (yesno / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _finetune(yesno, name, model, mode=None, objective="lfmmi", **train):
    cfg = _config(yesno / f"{name}.yaml", model, **train)
    args = ["train", "--train-config", cfg, "--train-cuts", yesno / "data/fbank/cuts_train.jsonl.gz",
            "--lang", yesno / "data/lang", "--exp-dir", yesno / name, "--init-encoder", yesno / "mam/final.pt",
            "--objective", objective, "--num-threads", "1", "--device", "cpu"]
    if objective == "lfmmi":
        args += ["--den-graph", yesno / "den.pt"]
    if mode:
        args += ["--encoder-mode", mode]
    run(*args)
    return torch.load(yesno / name / "final.pt", weights_only=True)


def test_frozen_finetuned_and_held_encoders(yesno):
    pre = _encoder(torch.load(yesno / "mam/final.pt", weights_only=True))
    model = {"type": "pretrained", "head": HEAD}
    frozen = _finetune(yesno, "fe", model, "frozen")
    assert all(torch.equal(v, pre[k]) for k, v in _encoder(frozen).items())  # not one bit moved
    assert frozen["model_info"]["config"]["encoder_mode"] == "frozen"
    assert frozen["init_encoder"] == str(yesno / "mam/final.pt")
    tuned = _finetune(yesno, "ft", model, "finetune", encoder_lr_scale=0.05)
    moved = [k for k, v in _encoder(tuned).items() if not torch.equal(v, pre[k])]
    assert len(moved) == len(pre)  # every encoder parameter trains
    held = _finetune(yesno, "held", {**model, "freeze_encoder_steps": 1000}, "finetune")
    assert all(torch.equal(v, pre[k]) for k, v in _encoder(held).items())  # held for all its updates
    head_moved = [k for k in held["model"] if k.startswith("head.") and not torch.equal(held["model"][k], tuned["model"][k])]
    assert head_moved
    # a fine-tuned model trained further from its own weights (--init-model, e.g. semi-supervised)
    cfg = _config(yesno / "again.yaml", model, epochs=1)
    run("train", "--train-config", cfg, "--train-cuts", yesno / "data/fbank/cuts_train.jsonl.gz", "--lang",
        yesno / "data/lang", "--den-graph", yesno / "den.pt", "--exp-dir", yesno / "again", "--init-model",
        yesno / "ft/final.pt", "--num-threads", "1", "--device", "cpu")
    again = torch.load(yesno / "again/final.pt", weights_only=True)
    assert again["model_info"] == tuned["model_info"] and again["init_model"] == str(yesno / "ft/final.pt")
    # CTC with a linear head on the fine-tuned encoder
    ctc = _finetune(yesno, "ctc", {"type": "pretrained", "head_type": "linear"}, "finetune", objective="ctc")
    assert ctc["objective"] == "ctc" and "head.output.weight" in ctc["model"]
    # The fine-tuned LF-MMI model decodes, with Monte-Carlo dropout passes, through the usual tool.
    out = yesno / "decode_ft"
    run("decode", "--model", yesno / "ft/final.pt", "--graph", yesno / "graph/HCLG.fst", "--words",
        yesno / "data/lang/words.txt", "--cuts", yesno / "data/fbank/cuts_test6.jsonl.gz", "--output-dir", out,
        "--dropout-samples", "1", "--dropout-proportion", "0.1", *DECODE_OPTS)
    assert len((out / "hyp.1.txt").read_text().splitlines()) == 6
    assert len((out / "dropout/1/hyp.1.txt").read_text().splitlines()) == 6
    # and aligns, at its output frame rate (a third of the 10 ms frames)
    run("align", "--model", yesno / "ft/final.pt", "--cuts", yesno / "data/fbank/cuts_test6.jsonl.gz", "--lang",
        yesno / "data/lang", "--den-graph", yesno / "den.pt", "--output", yesno / "ali.pt")
    ali = torch.load(yesno / "ali.pt", weights_only=True)
    assert len(ali["utts"]) == 6 and abs(ali["frame_shift"] - 0.03) < 1e-9


def test_bad_fine_tuning_input_is_one_line(yesno, capsys):
    cfg = _config(yesno / "bad.yaml", {"type": "tdnnf", **HEAD})
    base = ["train", "--train-config", str(cfg), "--train-cuts", str(yesno / "data/fbank/cuts_train.jsonl.gz"),
            "--lang", str(yesno / "data/lang"), "--den-graph", str(yesno / "den.pt"), "--exp-dir", str(yesno / "bad")]
    cases = [
        (["--init-encoder", str(yesno / "mam/final.pt")], "needs a model of type pretrained"),
        (["--encoder-mode", "frozen"], "needs a pre-trained encoder"),
    ]
    for extra, message in cases:
        assert frugal_main(base + extra) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    _config(cfg, {"type": "pretrained", "head": HEAD})
    assert frugal_main(base + ["--init-encoder", str(yesno / "den.pt")]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert frugal_main(base) == 1  # a pretrained model without its encoder
    err = capsys.readouterr().err.strip()
    assert "--init-encoder" in err and len(err.splitlines()) == 1, err


def test_learning_rates_of_the_parameter_groups(yesno):
    """Encoder and head groups at 0, 10, 50 and 100% of training (tri-stage; head = 20 x encoder)."""
    encoder = MamModel(mam_config({k: v for k, v in TINY_MAM.items() if k != "type"} | {"feat_dim": 23})).encoder
    model = PretrainedModel(config_from_dict({"feat_dim": 23, "num_pdfs": 5, "encoder": encoder.encoder_info(),
                                              "head": HEAD}))
    from frugal.data.cuts import load_cuts
    cfg = TrainConfig(lr=1e-3, lr_decay="tri_stage", final_lr_ratio=0.05, encoder_lr_scale=0.05, num_buckets=2)
    trainer = Trainer(model, lambda m, b: {}, load_cuts(yesno / "data/fbank/cuts_train.jsonl.gz"), yesno / "lr", cfg)
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert {id(p) for p in groups["encoder"]["params"]} == {id(p) for p in model.encoder.parameters()}
    assert {id(p) for p in groups["head"]["params"]} == {id(p) for p in model.head.parameters()}
    expected_head = {0.0: 0.0, 0.05: 0.5e-3, 0.1: 1e-3, 0.5: 1e-3, 0.75: 1e-3 * 0.05 ** 0.5, 1.0: 1e-3 * 0.05}
    for progress, head_lr in expected_head.items():
        trainer._set_progress(progress)
        assert groups["head"]["lr"] == pytest.approx(head_lr, rel=1e-12, abs=1e-18)
        assert groups["encoder"]["lr"] == pytest.approx(head_lr * 0.05, rel=1e-12, abs=1e-18)
    # TERA's linear decay after the warm-up steps
    s = LrSchedule(lr=2e-4, warmup_steps=10, decay="linear", final_ratio=0.01)
    assert s(5, 0.0) == pytest.approx(1e-4) and s(10, 0.5) == pytest.approx(2e-4 * (1 - 0.99 * 0.5))
    assert s(100, 1.0) == pytest.approx(2e-6)


def test_wav2vec2_pretrains_on_raw_audio_and_fine_tunes(yesno):
    """wav2vec 2.0 on yesno's raw audio: the logged task, then LF-MMI on its 50 Hz outputs with a
    head that keeps that rate; the conv front end never moves in fine-tuning, the rest does."""
    run("compute-fbank", "--raw", "--cuts-in", yesno / "data/manifests/yesno_cuts_train.jsonl.gz",
        "--cuts-out", yesno / "data/raw/cuts_train.jsonl.gz", "--storage-dir", yesno / "data/raw/audio")
    raw = yesno / "data/raw/cuts_train.jsonl.gz"
    tiny = {"type": "wav2vec2", "preset": "w2v2-small", "conv_channels": 32, "d_model": 32, "num_heads": 2,
            "ff_dim": 64, "num_layers": 1, "pos_conv_kernel": 8, "pos_conv_groups": 4, "final_dim": 16,
            "latent_vars": 16}
    cfg = _config(yesno / "w2v2.yaml", tiny, epochs=2, lr=0.001, decay="linear", loss={"num_negatives": 10})
    run("pretrain", "wav2vec2", "--train-config", cfg, "--train-cuts", raw, "--exp-dir", yesno / "w2v2",
        "--num-threads", "1", "--device", "cpu")
    log = (yesno / "w2v2/log/train.log").read_text()
    line = [x for x in log.splitlines() if "epoch 2 training:" in x][0]
    for key in ("contrastive=", "diversity=", "features_pen=", "accuracy=", "code_perplexity=", "temperature="):
        assert key in line
    pre = _encoder(torch.load(yesno / "w2v2/final.pt", weights_only=True))
    cfg = _config(yesno / "w2v2_ft.yaml", {"type": "pretrained", "head": {**HEAD, "subsampling_factor": 1,
                                                                          "time_strides": [1, 1]}})
    run("train", "--train-config", cfg, "--train-cuts", raw, "--lang", yesno / "data/lang", "--den-graph",
        yesno / "den.pt", "--exp-dir", yesno / "w2v2_ft", "--init-encoder", yesno / "w2v2/final.pt",
        "--num-threads", "1", "--device", "cpu")
    tuned = torch.load(yesno / "w2v2_ft/final.pt", weights_only=True)
    conv = [k for k in pre if k.startswith("encoder.feature_extractor.")]
    assert conv and all(torch.equal(tuned["model"][k], pre[k]) for k in conv)
    rest = [k for k in pre if k not in conv and "mask_embedding" not in k]
    assert all(not torch.equal(tuned["model"][k], pre[k]) for k in rest if k.endswith("weight"))
    assert tuned["model_info"]["config"]["encoder"]["type"] == "wav2vec2"
    # decoding reads raw-audio cuts as training did
    run("compute-fbank", "--raw", "--cuts-in", yesno / "data/manifests/yesno_cuts_test.jsonl.gz",
        "--cuts-out", yesno / "data/raw/cuts_test.jsonl.gz", "--storage-dir", yesno / "data/raw/audio_test")
    out = yesno / "decode_w2v2"
    run("decode", "--model", yesno / "w2v2_ft/final.pt", "--graph", yesno / "graph/HCLG.fst", "--words",
        yesno / "data/lang/words.txt", "--cuts", yesno / "data/raw/cuts_test.jsonl.gz", "--output-dir", out,
        *DECODE_OPTS)
    assert len((out / "hyp.1.txt").read_text().splitlines()) == 30
