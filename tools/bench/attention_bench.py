#!/usr/bin/env python3
"""Time and memory per element of one transformer layer with each attention kind (thesis fig. 5.4).

One encoder layer of frugal's transformer (6 heads x 64 = d_model 384, feed-forward 1536,
dropout 0) on a batch of one random sequence of each length N (default 2^9 .. 2^15), for
every attention kind: forward (no_grad) and forward+backward time and peak memory, divided by
N, and each kind's ratio against softmax (SDPA) measured in the same run. Clustered kinds
use 100 clusters, 63 bits, 10 Lloyd iterations; improved clustered and topk k = 32.

Memory: on CUDA, torch.cuda.max_memory_allocated above what was allocated before the run;
on CPU, the rise of the process's peak resident set size during the run (Linux: VmHWM of
/proc/self/status after resetting it through /proc/self/clear_refs, with glibc's mmap
threshold fixed at 64 KiB so that freed tensors leave the resident set) - approximate, most
of all for small N. SDPA runs fused (flash-style) kernels that never hold the N x N matrix,
so softmax memory is linear in N here, unlike the thesis's 2020 baseline. Sizes that would
not fit (topk holds H N^2 scores; estimated against MemAvailable or the free GPU memory) or
that run out of memory are skipped, saying so. A PNG plot of both curves (fwd+bwd time and
memory per element against N) goes to --plot. The last line is key=value pairs, e.g.
linear_over_softmax_fwdbwd_8192=<time ratio>. Usage:

    tools/bench/attention_bench.py [--lengths 512,1024,...] [--kinds softmax,linear,...]
        [--device cpu|cuda] [--repeats 1] [--plot attention_bench.png]
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from _memory import PeakMemory, fixed_malloc_thresholds
from frugal.models.attention import KINDS, AttentionOptions
from frugal.models.transformer import EncoderLayer

HEADS, HEAD_DIM, FF_DIM = 6, 64, 1536


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 1 << 62


def estimate_bytes(kind: str, n: int, backward: bool) -> int:
    """A rough upper estimate of the quadratic kind's attention memory (the others are linear)."""
    if kind != "topk":  # SDPA's fused kernels do not hold the N x N matrix
        return 0
    return (6 if backward else 3) * HEADS * n * n * 4


def run_once(layer: EncoderLayer, x: torch.Tensor, valid: torch.Tensor, backward: bool) -> float:
    _sync(x.device)
    start = time.perf_counter()
    if backward:
        xx = x.detach().requires_grad_()
        layer(xx, valid).sum().backward()
        layer.zero_grad(set_to_none=True)
    else:
        with torch.no_grad():
            layer(x, valid)
    _sync(x.device)
    return time.perf_counter() - start


def measure(layer, x, valid, backward: bool, repeats: int):
    """(median seconds of ``repeats`` runs, peak bytes of the first)."""
    times = []
    with PeakMemory(x.device) as mem:
        times.append(run_once(layer, x, valid, backward))
    for _ in range(repeats - 1):
        times.append(run_once(layer, x, valid, backward))
    return sorted(times)[len(times) // 2], mem.bytes


def plot(results, kinds, lengths, path: str, desc: str) -> str:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for kind in kinds:
        ns = [n for n in lengths if (kind, n, True) in results]
        if not ns:
            continue
        axes[0].plot(ns, [results[kind, n, True][0] / n * 1e6 for n in ns], marker="o", label=kind)
        axes[1].plot(ns, [results[kind, n, True][1] / n / 1024 for n in ns], marker="o", label=kind)
    for ax, what in zip(axes, ("forward+backward time per element (µs)", "peak memory per element (KiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length N")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"one layer, {HEADS} heads x {HEAD_DIM}, FFN {FF_DIM}, batch 1 ({desc})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return f"plot: {path}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="attention_bench.py", description=__doc__.splitlines()[0])
    p.add_argument("--lengths", default=",".join(str(2 ** e) for e in range(9, 16)),
                   help="comma-separated sequence lengths (default 2^9..2^15)")
    p.add_argument("--kinds", default=",".join(KINDS), help="comma-separated attention kinds; softmax is the reference")
    p.add_argument("--clusters", type=int, default=100)
    p.add_argument("--bits", type=int, default=63)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--topk", type=int, default=32)
    p.add_argument("--repeats", type=int, default=1, help="timed runs per point (median; default %(default)s)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--plot", default="attention_bench.png", help="PNG file of the curves ('' for none)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.device == "cpu":
        fixed_malloc_thresholds()
    lengths = [int(n) for n in a.lengths.split(",") if n.strip()]
    kinds = [k.strip() for k in a.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        p.error(f"unknown kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
    if "softmax" not in kinds:
        kinds.insert(0, "softmax")
    device = torch.device(a.device)
    d_model = HEADS * HEAD_DIM
    results, skipped = {}, []
    for kind in kinds:
        opts = AttentionOptions(kind, a.clusters, a.bits, a.iterations, a.topk)
        opts.validate()
        torch.manual_seed(0)
        layer = EncoderLayer(d_model, HEADS, FF_DIM, opts).to(device).train()
        for n in [min(512, min(lengths))] + lengths:  # the first: a short warm-up, not recorded
            x = torch.randn(1, n, d_model, device=device)
            valid = torch.ones(1, n, dtype=torch.bool, device=device)
            for backward in (False, True):
                need = estimate_bytes(kind, n, backward)
                if need > 0.8 * available_bytes(device):
                    skipped.append(f"{kind} N={n} {'fwd+bwd' if backward else 'fwd'}: needs about "
                                   f"{need / 2 ** 30:.1f} GiB, more than is free")
                    continue
                try:
                    results[kind, n, backward] = measure(layer, x, valid, backward, a.repeats)
                except (torch.OutOfMemoryError, RuntimeError) as e:
                    if "memory" not in str(e).lower():
                        raise
                    skipped.append(f"{kind} N={n} {'fwd+bwd' if backward else 'fwd'}: out of memory")
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
            del x
        del layer
    if device.type == "cuda":
        desc = torch.cuda.get_device_name(device)
        memdesc = "torch.cuda.max_memory_allocated"
    else:
        desc = f"cpu, {torch.get_num_threads()} threads"
        memdesc = "peak RSS rise (VmHWM)"
    print(f"Attention benchmark: one layer {HEADS}x{HEAD_DIM}, FFN {FF_DIM}, batch 1, clusters {a.clusters}, "
          f"bits {a.bits}, iterations {a.iterations}, topk {a.topk}, {desc}, torch {torch.__version__}, "
          f"repeats {a.repeats}, memory = {memdesc}, load average {os.getloadavg()[0]:.2f} "
          f"(timings on a busy machine are not reliable)")
    print(f"{'kind':<19} {'N':>6} {'fwd us/el':>10} {'ratio':>6} {'fwd+bwd us/el':>13} {'ratio':>6} "
          f"{'fwd KiB/el':>10} {'fwd+bwd KiB/el':>14} {'ratio':>6}")
    keys = [f"device={device.type}", f"threads={torch.get_num_threads()}"]
    for n in lengths:
        for kind in kinds:
            f, b = results.get((kind, n, False)), results.get((kind, n, True))
            rf, rb = results.get(("softmax", n, False)), results.get(("softmax", n, True))
            if f is None and b is None:
                continue

            def cell(r, w, fmt, scale, i, n=n):
                return f"{r[i] * scale / n:>{w}{fmt}}" if r else f"{'-':>{w}}"

            def ratio(r, ref, i):
                return f"{r[i] / ref[i]:>6.3f}" if r and ref and ref[i] > 0 else f"{'-':>6}"

            print(f"{kind:<19} {n:>6} {cell(f, 10, '.3f', 1e6, 0)} {ratio(f, rf, 0)} {cell(b, 13, '.3f', 1e6, 0)} "
                  f"{ratio(b, rb, 0)} {cell(f, 10, '.2f', 1 / 1024, 1)} {cell(b, 14, '.2f', 1 / 1024, 1)} "
                  f"{ratio(b, rb, 1)}")
            name = kind.replace("-", "_")
            if kind != "softmax":
                for tag, r, ref in (("fwd", f, rf), ("fwdbwd", b, rb)):
                    if r and ref:
                        keys.append(f"{name}_over_softmax_{tag}_{n}={r[0] / ref[0]:.4f}")
                if b and rb and rb[1] > 0:
                    keys.append(f"{name}_over_softmax_mem_fwdbwd_{n}={b[1] / rb[1]:.4f}")
            if b:
                keys.append(f"{name}_fwdbwd_us_per_el_{n}={b[0] * 1e6 / n:.3f}")
    for s in skipped:
        print(f"skipped: {s}")
    if a.plot:
        print(plot(results, kinds, lengths, a.plot, desc))
    print(" ".join(keys))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
