"""The trainer on a toy CTC task: learning, checkpoints, kill -9 and resume, averaging, DDP."""
import importlib.util
import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from frugal.errors import FrugalError
from frugal.models import load_model
from frugal.dirs import ModelDir, load_checkpoint
from frugal.train import TrainConfig, average_checkpoints

import proc_testing

# The toy task as a script, so that the same code runs in-process, in killed subprocesses
# and under torchrun. Each token is a block of 6-12 frames around its own random prototype;
# a TDNN-F at 1/3 frame rate learns to transcribe them with CTC.
TOY = textwrap.dedent(
    '''
    import argparse, os, signal, sys
    from pathlib import Path

    import numpy as np
    import torch
    import torch.nn.functional as F
    from lhotse import CutSet, Features, MonoCut, SupervisionSegment
    from lhotse.features.io import NumpyFilesWriter

    from frugal.models import TdnnfModel, tdnnf_config
    from frugal.train import Trainer, TrainConfig

    FEAT_DIM, VOCAB = 10, 4  # tokens 1..VOCAB, 0 is the CTC blank


    def make_cuts(out_dir, num, seed):
        rng = np.random.default_rng(1234)
        protos = rng.normal(size=(VOCAB + 1, FEAT_DIM)) * 2.0
        rng = np.random.default_rng(seed)
        out_dir = Path(out_dir)
        cuts = []
        with NumpyFilesWriter(out_dir / "feats") as writer:
            for i in range(num):
                tokens = rng.integers(1, VOCAB + 1, size=rng.integers(2, 5))
                frames = []
                for t in tokens:
                    frames.append(protos[0] + rng.normal(size=(rng.integers(2, 5), FEAT_DIM)))
                    frames.append(protos[t] + rng.normal(size=(rng.integers(6, 12), FEAT_DIM)))
                feats = np.concatenate(frames).astype(np.float32)
                cut_id = f"s{seed}-{i}"
                key = writer.write(cut_id, feats)
                duration = round(feats.shape[0] * 0.01, 2)
                features = Features(type="toy", num_frames=feats.shape[0], num_features=FEAT_DIM,
                                    frame_shift=0.01, sampling_rate=16000, start=0, duration=duration,
                                    storage_type=writer.name, storage_path=str(writer.storage_path),
                                    storage_key=key, recording_id=cut_id)
                sup = SupervisionSegment(id=cut_id, recording_id=cut_id, start=0, duration=duration,
                                         text=" ".join(str(int(t)) for t in tokens))
                cuts.append(MonoCut(id=cut_id, start=0, duration=duration, channel=0, supervisions=[sup],
                                    features=features))
        return CutSet.from_cuts(cuts)


    def make_model():
        torch.manual_seed(0)
        cfg = tdnnf_config("tdnnf-small", feat_dim=FEAT_DIM, num_pdfs=VOCAB + 1, hidden_dim=32,
                           bottleneck_dim=16, prefinal_bottleneck_dim=16, orthonormal_period=2)
        return TdnnfModel(cfg)


    class CtcLoss:
        """CTC on the chain output plus 0.1 x CTC on the xent head (a second named component)."""

        def __init__(self, die_after=None, exp_dir=None):
            self.die_after, self.exp_dir, self.calls_after_epoch1 = die_after, exp_dir, 0

        def __call__(self, model, batch):
            if self.die_after is not None and torch.is_grad_enabled():
                if (Path(self.exp_dir) / "epoch-1.pt").exists():
                    self.calls_after_epoch1 += 1
                    if self.calls_after_epoch1 > self.die_after:
                        os.kill(os.getpid(), signal.SIGKILL)
            chain, xent, out_lens = model(batch["features"], batch["feature_lens"])
            targets = [torch.tensor([int(w) for w in t.split()]) for t in batch["texts"]]
            tgt_lens = torch.tensor([len(t) for t in targets])
            tgt = torch.cat(targets)
            frames = out_lens.sum()
            ctc = F.ctc_loss(chain.log_softmax(-1).transpose(0, 1), tgt, out_lens, tgt_lens, reduction="sum") / frames
            aux = F.ctc_loss(xent.transpose(0, 1), tgt, out_lens, tgt_lens, reduction="sum") / frames
            return {"loss": ctc + 0.1 * aux, "ctc": ctc, "xent_ctc": aux}


    def config(**kw):
        base = dict(num_epochs=3, max_duration=2.0, num_buckets=2, seed=7, lr=0.02, warmup_steps=5,
                    dropout_schedule="0,0.2@0.5,0", log_every_steps=5)
        base.update(kw)
        return TrainConfig(**base)


    if __name__ == "__main__":
        p = argparse.ArgumentParser()
        p.add_argument("data_dir")
        p.add_argument("exp_dir")
        p.add_argument("--epochs", type=int, default=3)
        p.add_argument("--save-every-steps", type=int, default=0)
        p.add_argument("--die-after", type=int, default=None,
                       help="SIGKILL itself at this training batch after epoch-1.pt exists")
        p.add_argument("--out", default=None)
        a = p.parse_args()
        torch.set_num_threads(1)
        train = CutSet.from_file(Path(a.data_dir) / "train.jsonl.gz")
        valid = CutSet.from_file(Path(a.data_dir) / "valid.jsonl.gz")
        trainer = Trainer(make_model(), CtcLoss(a.die_after, a.exp_dir), train, a.exp_dir,
                          config(num_epochs=a.epochs, save_every_steps=a.save_every_steps), valid_cuts=valid,
                          model_info={"type": "tdnnf"})
        model = trainer.run()
        if a.out:
            torch.save(model.state_dict(), a.out.replace("RANK", str(trainer.dist.rank)))
    '''
)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    script = d / "toy_ctc.py"
    script.write_text(TOY)
    spec = importlib.util.spec_from_file_location("toy_ctc", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.make_cuts(d / "data", 48, seed=1).to_file(d / "data" / "train.jsonl.gz")
    mod.make_cuts(d / "data", 12, seed=2).to_file(d / "data" / "valid.jsonl.gz")
    mod.script = script
    mod.data_dir = d / "data"
    return mod


def run_toy(toy, exp_dir, *args, check=True, torchrun=False):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    if torchrun:
        cmd = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node", "2"]
    else:
        cmd = [sys.executable]
    proc = proc_testing.run(cmd + [str(toy.script), str(toy.data_dir), str(exp_dir), *args], env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def dataset_loss(toy, model, cuts):
    from frugal.data.dataset import FeatureDataset

    model.eval()
    batch = FeatureDataset()[cuts]
    with torch.no_grad():
        return float(toy.CtcLoss()(model, batch)["ctc"])


def test_loss_decreases_and_checkpoints_load_weights_only(toy, tmp_path):
    from lhotse import CutSet

    torch.set_num_threads(1)
    train = CutSet.from_file(toy.data_dir / "train.jsonl.gz")
    valid = CutSet.from_file(toy.data_dir / "valid.jsonl.gz")
    model = toy.make_model()
    before = dataset_loss(toy, model, valid)
    from frugal.train import Trainer

    trainer = Trainer(model, toy.CtcLoss(), train, tmp_path / "exp", toy.config(num_epochs=4), valid_cuts=valid,
                      model_info=dict(model.model_info(), note="toy"))
    model = trainer.run()
    after = dataset_loss(toy, model, valid)
    assert after < 0.5 * before, (before, after)

    # Greedy CTC decoding of the held-out cuts is mostly right.
    from frugal.data.dataset import FeatureDataset

    batch = FeatureDataset()[valid]
    with torch.no_grad():
        chain, _, lens = model(batch["features"], batch["feature_lens"])
    errors = total = 0
    import kaldialign

    for b, text in enumerate(batch["texts"]):
        best = chain[b, : lens[b]].argmax(-1).tolist()
        hyp = [str(t) for i, t in enumerate(best) if t != 0 and (i == 0 or best[i - 1] != t)]
        errors += kaldialign.edit_distance(text.split(), hyp)["total"]
        total += len(text.split())
    assert errors / total < 0.5, errors / total

    # Every checkpoint reads back with weights_only=True and restores the model exactly.
    for epoch in range(1, 5):
        ck = torch.load(ModelDir(tmp_path / "exp").epoch_checkpoint(epoch), weights_only=True)
        assert ck["trainer"] == {"epoch": epoch + 1, "batch_in_epoch": 0, "step": ck["trainer"]["step"]}
        assert set(ck["valid"]) == {"loss", "ctc", "xent_ctc"}
        assert ck["model_info"]["note"] == "toy"
    last = load_checkpoint(ModelDir(tmp_path / "exp").epoch_checkpoint(4))
    for k, v in model.state_dict().items():
        assert torch.equal(last["model"][k], v), k
    assert ModelDir(tmp_path / "exp").latest_checkpoint() == ModelDir(tmp_path / "exp").epoch_checkpoint(4)
    rebuilt = load_model(ModelDir(tmp_path / "exp").epoch_checkpoint(4))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(batch["features"], batch["feature_lens"])[0], chain)
    log = (tmp_path / "exp" / "log" / "train.log").read_text()
    assert "xent_ctc=" in log and "frames/s=" in log and "epoch 4 validation" in log

    # Averaging the last 3 epochs is the element-wise mean of their weights.
    paths = ModelDir(tmp_path / "exp").last_epoch_checkpoints(4, 3)
    avg = average_checkpoints(paths)
    sds = [torch.load(p, weights_only=True)["model"] for p in paths]
    for k, v in avg.items():
        if v.is_floating_point():
            torch.testing.assert_close(v, (sds[0][k] + sds[1][k] + sds[2][k]) / 3)
        else:
            assert int(v) == (int(sds[0][k]) + int(sds[1][k]) + int(sds[2][k])) // 3
    with pytest.raises(FrugalError):
        ModelDir(tmp_path / "exp").last_epoch_checkpoints(4, 5)


def final_weights(path):
    return torch.load(path, weights_only=True)


def test_kill_and_resume_reaches_the_same_model(toy, tmp_path):
    run_toy(toy, tmp_path / "ref", "--out", str(tmp_path / "ref.pt"))
    ref = final_weights(tmp_path / "ref.pt")

    # Killed 3 batches into epoch 2: resumes from epoch-1.pt.
    killed = run_toy(toy, tmp_path / "a", "--die-after", "3", check=False)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert ModelDir(tmp_path / "a").latest_checkpoint().name == "epoch-1.pt"
    assert not (tmp_path / "a" / "epoch-2.pt").exists()
    run_toy(toy, tmp_path / "a", "--out", str(tmp_path / "a.pt"))

    # With mid-epoch checkpoints every 4 steps, killed after one of them in epoch 2.
    killed = run_toy(toy, tmp_path / "b", "--save-every-steps", "4", "--die-after", "6", check=False)
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed_from = ModelDir(tmp_path / "b").latest_checkpoint()
    assert resumed_from.name.startswith("checkpoint-"), resumed_from
    assert load_checkpoint(resumed_from)["trainer"]["epoch"] == 2
    run_toy(toy, tmp_path / "b", "--save-every-steps", "4", "--out", str(tmp_path / "b.pt"))

    for name in ("a", "b"):
        got = final_weights(tmp_path / f"{name}.pt")
        assert got.keys() == ref.keys()
        for k in ref:
            torch.testing.assert_close(got[k], ref[k], msg=f"{name}: {k}")
    log = (tmp_path / "b" / "log" / "train.log").read_text()
    assert "resumed from" in log


def test_torchrun_two_ranks_end_identical(toy, tmp_path):
    run_toy(toy, tmp_path / "ddp", "--epochs", "1", "--out", str(tmp_path / "rank-RANK.pt"), torchrun=True)
    w0, w1 = final_weights(tmp_path / "rank-0.pt"), final_weights(tmp_path / "rank-1.pt")
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    # The weights moved away from the initial model, and rank 0 wrote the checkpoint.
    init = toy.make_model().state_dict()
    assert any(not torch.allclose(w0[k], init[k]) for k in w0 if w0[k].is_floating_point())
    ck = load_checkpoint(ModelDir(tmp_path / "ddp").epoch_checkpoint(1))
    assert ck["sampler"]["world_size"] == 2
    for k in w0:
        assert torch.equal(ck["model"][k], w0[k])


def test_feature_dataset_pads_and_keeps_order(toy):
    from lhotse import CutSet

    from frugal.data.dataset import FeatureDataset

    cuts = CutSet.from_file(toy.data_dir / "valid.jsonl.gz").subset(first=5)
    batch = FeatureDataset()[cuts]
    assert batch["cut_ids"] == [c.id for c in cuts]
    assert batch["texts"] == [c.supervisions[0].text for c in cuts]
    assert batch["feature_lens"].tolist() == [c.num_frames for c in cuts]
    assert batch["features"].shape == (5, max(c.num_frames for c in cuts), toy.FEAT_DIM)
    for i, c in enumerate(cuts):
        n = c.num_frames
        assert torch.equal(batch["features"][i, :n], torch.from_numpy(c.load_features()))
        assert not batch["features"][i, n:].any()


def test_config_errors(tmp_path):
    from frugal.train import load_train_config

    p = tmp_path / "train.yaml"
    p.write_text("train:\n  num_epochs: 2\n  lr: 0.002\n  dropout_schedule: '0,0@0.20,0.5@0.50,0'\n")
    cfg = load_train_config(p)
    assert cfg == TrainConfig(num_epochs=2, lr=0.002, dropout_schedule="0,0@0.20,0.5@0.50,0")
    p.write_text("num_epoch: 2\n")
    with pytest.raises(FrugalError, match="num_epoch"):
        load_train_config(p)
    p.write_text("lr_decay: stepwise\n")
    with pytest.raises(FrugalError, match="stepwise"):
        load_train_config(p)
