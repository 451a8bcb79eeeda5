#!/usr/bin/env python3
"""Full against pruned RNN-T loss: forward+backward time and peak memory of one training step's loss.

Random encoder (B, T, J) and predictor (B, U+1, J) outputs, an icefall-style joiner
(Linear(tanh(encoder + predictor)) to V logits) and random symbols. "full" builds the
(B, T, U+1, V) logits and `frugal.losses.rnnt.rnnt_loss`; "pruned" is icefall's pair: the
simple loss of linear projections of both (lm-only smoothing 0.25) gives the occupations, the
band of ``--s-range`` symbols a frame is chosen from them, the joiner runs inside it only,
and the loss is 0.5 × simple + pruned. The talk (Kuang et al. 2022, k2 on a GPU against
torchaudio) measured the pruned loss 8.6× faster with 5× less memory; here both are frugal's
own, on the CPU unless ``--device cuda``. Memory is the rise of the peak resident set (or
CUDA's peak allocation) during the step. The last line is machine-readable.

    tools/bench/rnnt_bench.py [--batch 8 --frames 200 --symbols 40 --vocab 500 --joiner 256]
                              [--large] [--s-range 5] [--repeats 3] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import time

import torch

from _memory import PeakMemory, fixed_malloc_thresholds
from frugal.losses.rnnt import (do_rnnt_pruning, get_rnnt_prune_ranges, make_boundary, rnnt_loss,
                                rnnt_loss_pruned, rnnt_loss_simple)


class Case:
    def __init__(self, B: int, T: int, U: int, V: int, J: int, device: torch.device, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.am = torch.randn(B, T, J, generator=g).to(device).requires_grad_()
        self.lm = torch.randn(B, U + 1, J, generator=g).to(device).requires_grad_()
        self.symbols = torch.randint(1, V, (B, U), generator=g).to(device)
        self.boundary = make_boundary(torch.full((B,), T), torch.full((B,), U)).to(device)
        self.joiner = torch.nn.Linear(J, V).to(device)
        self.am_proj = torch.nn.Linear(J, V).to(device)
        self.lm_proj = torch.nn.Linear(J, V).to(device)
        self.desc = f"B {B}, T {T}, U {U}, vocab {V}, joiner {J}"

    def full(self, s_range: int) -> torch.Tensor:
        logits = self.joiner(torch.tanh(self.am[:, :, None, :] + self.lm[:, None, :, :]))
        return rnnt_loss(logits, self.symbols, self.boundary)

    def pruned(self, s_range: int) -> torch.Tensor:
        simple, (px_grad, py_grad) = rnnt_loss_simple(
            self.lm_proj(self.lm), self.am_proj(self.am), self.symbols, self.boundary, lm_only_scale=0.25,
            return_grad=True)
        ranges = get_rnnt_prune_ranges(px_grad, py_grad, self.boundary, s_range)
        am_p, lm_p = do_rnnt_pruning(self.am, self.lm, ranges)
        logits = self.joiner(torch.tanh(am_p + lm_p))
        return 0.5 * simple + rnnt_loss_pruned(logits, self.symbols, ranges, self.boundary)


def step(case: Case, kind: str, s_range: int) -> float:
    device = case.am.device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    getattr(case, kind)(s_range).backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    for p in (case.am, case.lm, *case.joiner.parameters(), *case.am_proj.parameters(), *case.lm_proj.parameters()):
        p.grad = None
    return seconds


def measure(case: Case, kind: str, s_range: int, repeats: int):
    step(case, kind, s_range)  # warm-up
    times = sorted(step(case, kind, s_range) for _ in range(repeats))
    with PeakMemory(case.am.device) as mem:
        step(case, kind, s_range)
    return times[len(times) // 2], mem.bytes


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--symbols", type=int, default=40)
    p.add_argument("--vocab", type=int, default=500)
    p.add_argument("--joiner", type=int, default=256)
    p.add_argument("--large", action="store_true", help="also B 8, T 500, U 100 (several GB for the full loss)")
    p.add_argument("--s-range", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = p.parse_args(argv)
    device = torch.device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    if device.type == "cpu":
        fixed_malloc_thresholds()
    shapes = [(a.batch, a.frames, a.symbols, a.vocab, a.joiner)]
    if a.large:
        shapes.append((a.batch, 500, 100, a.vocab, a.joiner))
    print(f"RNN-T loss benchmark: {a.device}, {torch.get_num_threads()} threads, s_range {a.s_range}, "
          f"median of {a.repeats}, torch {torch.__version__}")
    print(f"{'case':40s} {'loss':7s} {'seconds':>8s} {'ratio':>6s} {'peak MiB':>9s} {'ratio':>6s}")
    summary = ""
    for shape in shapes:
        case = Case(*shape, device=device)
        full = measure(case, "full", a.s_range, a.repeats)
        pruned = measure(case, "pruned", a.s_range, a.repeats)
        for kind, (sec, mem) in (("full", full), ("pruned", pruned)):
            print(f"{case.desc:40s} {kind:7s} {sec:8.3f} {sec / full[0]:6.3f} {mem / 2**20:9.1f} "
                  f"{mem / max(full[1], 1):6.3f}")
        if not summary:
            summary = (f"pruned_over_full_time={pruned[0] / full[0]:.4f} "
                       f"pruned_over_full_memory={pruned[1] / max(full[1], 1):.4f}")
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
