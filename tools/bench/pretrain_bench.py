#!/usr/bin/env python3
"""Pre-training throughput: seconds of audio a second for whole training steps of the pre-training
tasks (MAM on fbank, wav2vec 2.0 on raw audio) against the TDNN-F seed model's training.

A step is what the trainer does for a batch: the task's objective (alteration or span masking,
the model, the loss), backward and an AdamW update. The reference is the seed TDNN-F (egs/mini's
tdnnf-small with its output layer of --num-pdfs) trained with CTC (torch's kernel) on random
token sequences of the same batch, measured in the same run, so the ratios stay meaningful on
a loaded machine. The batch is --batch-size utterances of --seconds each (100 fbank frames or
16,000 samples a second). Usage:

    tools/bench/pretrain_bench.py [--device cpu|cuda] [--batch-size 8] [--seconds 4] [--iters 5]
        [--mam mam-small] [--wav2vec2 w2v2-small] [--threads N]

The last line is machine-readable key=value pairs.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable, Dict

import torch
import torch.nn.functional as F

from frugal.models import TdnnfModel, tdnnf_config
from frugal.models.mam import MamModel, config_from_dict as mam_config
from frugal.models.wav2vec2 import Wav2Vec2Model, config_from_dict as w2v2_config
from frugal.pretrain.mam import MamMasking, MamObjective
from frugal.pretrain.wav2vec2 import Wav2Vec2Loss, Wav2Vec2Objective


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(step: Callable[[], None], device: torch.device, iters: int, warmup: int) -> float:
    """Seconds a step: the median of ``iters`` timed steps after ``warmup`` untimed ones."""
    times = []
    for i in range(warmup + iters):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def training_step(model: torch.nn.Module, loss: Callable[[], torch.Tensor]) -> Callable[[], None]:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss().backward()
        optimizer.step()
    return step


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="pretrain_bench.py", description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seconds", type=float, default=4.0, help="length of each utterance")
    p.add_argument("--mam", default="mam-small", help="MAM preset")
    p.add_argument("--wav2vec2", default="w2v2-small", help="wav2vec 2.0 preset")
    p.add_argument("--num-pdfs", type=int, default=126, help="output size of the TDNN-F reference (egs/mini's)")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    torch.manual_seed(0)
    B, frames, samples = a.batch_size, int(a.seconds * 100), int(a.seconds * 16000)
    fbank = torch.randn(B, frames, 80, device=device)
    frame_lens = torch.full((B,), frames, dtype=torch.int64, device=device)
    audio = (0.1 * torch.randn(B, samples, 1)).to(device)
    sample_lens = torch.full((B,), samples, dtype=torch.int64, device=device)

    seed = TdnnfModel(tdnnf_config("tdnnf-small", feat_dim=80, num_pdfs=a.num_pdfs)).to(device)
    targets = torch.randint(1, a.num_pdfs, (B, frames // 12), device=device)

    def ctc() -> torch.Tensor:
        chain, _, out_lens = seed(fbank, frame_lens)
        return F.ctc_loss(chain.log_softmax(-1).transpose(0, 1), targets, out_lens,
                          torch.full((B,), targets.shape[1], device=device))

    mam = MamModel(mam_config({"preset": a.mam})).to(device)
    mam_objective = MamObjective(MamMasking())
    w2v2 = Wav2Vec2Model(w2v2_config({"preset": a.wav2vec2})).to(device)
    w2v2_objective = Wav2Vec2Objective(Wav2Vec2Loss())
    runs: Dict[str, Callable[[], None]] = {
        "tdnnf-small (CTC)": training_step(seed, ctc),
        f"{a.mam} (MAM)": training_step(mam, lambda: mam_objective(mam, {"features": fbank,
                                                                            "feature_lens": frame_lens})["loss"]),
        f"{a.wav2vec2} (wav2vec 2.0)": training_step(w2v2, lambda: w2v2_objective(
            w2v2, {"features": audio, "feature_lens": sample_lens})["loss"]),
    }
    audio_seconds = B * a.seconds
    print(f"device {device}, threads {torch.get_num_threads()}, batch {B} x {a.seconds:g} s, "
          f"median of {a.iters} steps")
    print()
    print("| Model (task) | Parameters (M) | s/step | Audio s/s | Frames/s (100 Hz) | Time vs tdnnf-small |")
    print("|---|---:|---:|---:|---:|---:|")
    params = {"tdnnf-small (CTC)": seed, f"{a.mam} (MAM)": mam, f"{a.wav2vec2} (wav2vec 2.0)": w2v2}
    results = {}
    for name, step in runs.items():
        results[name] = measure(step, device, a.iters, a.warmup)
    ref = results["tdnnf-small (CTC)"]
    for name, seconds in results.items():
        n = sum(p.numel() for p in params[name].parameters()) / 1e6
        print(f"| {name} | {n:.2f} | {seconds:.3f} | {audio_seconds / seconds:.1f} | "
              f"{audio_seconds * 100 / seconds:.0f} | {seconds / ref:.2f} |")
    keys = ["tdnnf", "mam", "wav2vec2"]
    print(" ".join([f"{k}_frames_per_s={audio_seconds * 100 / s:.0f}" for k, s in zip(keys, results.values())]
                   + [f"{k}_over_tdnnf={s / ref:.3f}" for k, s in zip(keys[1:], list(results.values())[1:])]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
