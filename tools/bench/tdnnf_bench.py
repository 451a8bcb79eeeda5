#!/usr/bin/env python3
"""Throughput of the TDNN-F configurations: input frames per second, forward and forward+backward.

Each configuration runs on the same random batch (default 16 x 300 frames of 80-dim
features); the table gives each one's speed relative to tdnnf-small measured in the same
run, so the ratios stay meaningful on a loaded machine. Usage:

    tools/bench/tdnnf_bench.py [--device cpu|cuda] [--batch-size 16] [--frames 300] [--iters 5]
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from frugal.models import PRESETS, TdnnfModel, tdnnf_config


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model: TdnnfModel, x: torch.Tensor, lengths: torch.Tensor, backward: bool, iters: int,
            warmup: int) -> float:
    """Seconds per batch (median of ``iters`` timed runs after ``warmup`` untimed ones)."""
    model.train(backward)
    times = []
    for i in range(warmup + iters):
        _sync(x.device)
        start = time.perf_counter()
        if backward:
            chain, xent, _ = model(x, lengths)
            (chain.square().mean() - xent.mean()).backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                model(x, lengths)
        _sync(x.device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tdnnf_bench.py", description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="tdnnf-small,tdnnf-s,tdnnf-l",
                   help="comma-separated presets; the first is the reference for the ratios")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--feat-dim", type=int, default=80)
    p.add_argument("--num-pdfs", type=int, default=3000)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    names = [n.strip() for n in a.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        p.error(f"unknown config(s) {', '.join(unknown)}; known: {', '.join(PRESETS)}")
    device = torch.device(a.device)
    torch.manual_seed(0)
    x = torch.randn(a.batch_size, a.frames, a.feat_dim, device=device)
    lengths = torch.full((a.batch_size,), a.frames, dtype=torch.int64)
    frames = a.batch_size * a.frames
    rows = []
    for name in names:
        model = TdnnfModel(tdnnf_config(name, feat_dim=a.feat_dim, num_pdfs=a.num_pdfs)).to(device)
        params = sum(q.numel() for q in model.parameters())
        fwd = frames / measure(model, x, lengths, False, a.iters, a.warmup)
        fwd_bwd = frames / measure(model, x, lengths, True, a.iters, a.warmup)
        rows.append((name, model.config.num_layers, model.config.hidden_dim, model.config.bottleneck_dim, params,
                     fwd, fwd_bwd))
        del model
    desc = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"TDNN-F throughput: batch {a.batch_size} x {a.frames} frames x {a.feat_dim} dims, "
          f"{a.num_pdfs} pdfs, {desc}, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.2f} (timings on a busy machine are not reliable)")
    print(f"{'config':<12} {'layers':>6} {'hidden':>6} {'bneck':>5} {'params':>10} "
          f"{'fwd fr/s':>12} {'ratio':>6} {'fwd+bwd fr/s':>13} {'ratio':>6}")
    ref_fwd, ref_bwd = rows[0][5], rows[0][6]
    for name, layers, hidden, bneck, params, fwd, fb in rows:
        print(f"{name:<12} {layers:>6} {hidden:>6} {bneck:>5} {params:>10,} "
              f"{fwd:>12,.0f} {fwd / ref_fwd:>6.3f} {fb:>13,.0f} {fb / ref_bwd:>6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
