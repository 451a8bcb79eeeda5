#!/usr/bin/env python3
"""Benchmark of the LF-MMI denominator forward-backward (frugal.fsa.leaky_hmm).

  den_bench.py CASE.npz [--leaky X] [--device cpu|cuda] [--repeats 5] [--threads 2]
      time forward and forward+backward (median of --repeats after a warm-up), print the
      objective and the peak memory; when CASE_ref.npz sits beside CASE.npz, compare the
      objective and the gradient with it. The last line is
      ``fwd_ms=... fwdbwd_ms=... objective=...``.
  den_bench.py --make-case S A D B T SEED PATH
      write a random case: S states with 8 to 12 arcs each (A in all, sorted by source),
      D pdfs, B sequences of T frames, normal(0, 1) network output; initial probabilities
      are the leaky-HMM distribution computed as Kaldi does, final probabilities one.
  den_bench.py --scaling-table [--device ...] [--repeats 3]
      forward+backward time (fastest of --repeats) for T in {75, 150, 300, 600} x A in
      {5k, 10k, 20k, 40k} (S = A / 10, D = S, B = 16), and the time per frame-arc relative
      to the smallest case: 1.00 everywhere means linear in T and in the number of arcs.

The case format is described in /work/shared/bench/README.md.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from frugal.errors import FrugalError
from frugal.fileio import atomic_path
from frugal.fsa.leaky_hmm import DenominatorGraph, denominator_log_likelihood, kaldi_initial_probs

MIN_ARCS_PER_STATE, MAX_ARCS_PER_STATE = 8, 12


def make_case(num_states: int, num_arcs: int, num_pdfs: int, batch: int, num_frames: int,
              seed: int) -> Dict[str, np.ndarray]:
    """A random denominator case in the shared format (see the module docstring)."""
    if not MIN_ARCS_PER_STATE * num_states <= num_arcs <= MAX_ARCS_PER_STATE * num_states:
        raise FrugalError(f"--make-case: A={num_arcs} must lie in [{MIN_ARCS_PER_STATE}*S, "
                          f"{MAX_ARCS_PER_STATE}*S] = [{MIN_ARCS_PER_STATE * num_states}, "
                          f"{MAX_ARCS_PER_STATE * num_states}]")
    rng = np.random.default_rng(seed)
    # Every state gets MIN arcs; the rest go to randomly chosen free slots, at most
    # MAX - MIN more per state.
    extra_slots = MAX_ARCS_PER_STATE - MIN_ARCS_PER_STATE
    chosen = rng.permutation(num_states * extra_slots)[: num_arcs - MIN_ARCS_PER_STATE * num_states]
    arcs_per_state = MIN_ARCS_PER_STATE + np.bincount(chosen // extra_slots, minlength=num_states)
    arc_src = np.repeat(np.arange(num_states), arcs_per_state).astype(np.int32)
    arc_dst = rng.integers(0, num_states, num_arcs).astype(np.int32)
    arc_pdf = rng.integers(0, num_pdfs, num_arcs).astype(np.int32)
    logits = rng.normal(size=num_arcs)
    log_norm = np.log(np.bincount(arc_src, weights=np.exp(logits), minlength=num_states))
    arc_log_weight = (logits - log_norm[arc_src]).astype(np.float32)
    final_log_probs = np.zeros(num_states, dtype=np.float32)
    initial = kaldi_initial_probs(
        num_states, torch.from_numpy(arc_src), torch.from_numpy(arc_dst),
        torch.from_numpy(np.exp(arc_log_weight.astype(np.float64))), start_state=0,
        final_probs=torch.from_numpy(np.exp(final_log_probs.astype(np.float64))))
    return {
        "num_states": np.int64(num_states),
        "num_pdfs": np.int64(num_pdfs),
        "start_state": np.int64(0),
        "leaky_hmm_coefficient": np.float64(0.1),
        "arc_src": arc_src,
        "arc_dst": arc_dst,
        "arc_pdf": arc_pdf,
        "arc_log_weight": arc_log_weight,
        "initial_log_probs": initial.log().numpy().astype(np.float32),
        "final_log_probs": final_log_probs,
        "nnet_output": rng.normal(size=(batch, num_frames, num_pdfs)).astype(np.float32),
        "seq_lengths": np.full(batch, num_frames, dtype=np.int64),
    }


def _load_case(path: Path) -> Dict[str, np.ndarray]:
    if not path.is_file():
        raise FrugalError(f"{path}: no such case file")
    with np.load(path) as data:
        case = {key: data[key] for key in data.files}
    for key in ("nnet_output", "seq_lengths"):
        if key not in case:
            raise FrugalError(f"{path}: missing field {key}")
    return case


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _times_ms(fn: Callable[[], None], device: torch.device, repeats: int) -> List[float]:
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(1000.0 * (time.perf_counter() - start))
    return times


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _load_note() -> str:
    # With 2 threads on 2 busy cores, OpenMP barriers wait on descheduled threads and the
    # many small per-frame operations slow down by 10x or more: say when timings are suspect.
    load = os.getloadavg()[0]
    note = f"load average {load:.2f} on {os.cpu_count()} cores"
    if load > 0.5:
        note += " (the machine is busy: timings are not reliable)"
    return note


def time_case(case: Dict[str, np.ndarray], leaky: float, device: torch.device,
              repeats: int) -> Tuple[List[float], List[float], float, torch.Tensor, str]:
    """(fwd times ms, fwdbwd times ms, objective, gradient, memory line) of one case."""
    graph = DenominatorGraph.from_npz(case).to(device)
    lengths = torch.from_numpy(case["seq_lengths"]).to(device)
    x = torch.from_numpy(case["nnet_output"]).to(device).requires_grad_()

    def forward():
        return denominator_log_likelihood(graph, x, lengths, leaky)

    def forward_backward():
        x.grad = None
        forward().backward()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = _current_rss_bytes()
    forward_backward()  # warm-up, also builds and caches the graph's CSR matrices
    _sync(device)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - base
        memory = f"peak GPU memory of forward+backward: {peak / 2**20:.1f} MiB"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
        memory = f"peak RSS growth during forward+backward: {max(peak, 0) / 2**20:.1f} MiB"
    fwd_ms = _times_ms(forward, device, repeats)
    fwdbwd_ms = _times_ms(forward_backward, device, repeats)
    objective = float(forward().detach())
    forward_backward()
    return fwd_ms, fwdbwd_ms, objective, x.grad.detach().cpu(), memory


def compare_with_reference(ref_path: Path, objective: float, grad: torch.Tensor) -> None:
    with np.load(ref_path) as ref:
        ref_objective = float(ref["objective_f64"])
        ref_grad = torch.from_numpy(ref["grad"])
    if ref_grad.shape != grad.shape:
        raise FrugalError(f"{ref_path}: grad has shape {tuple(ref_grad.shape)}, "
                          f"the case gives {tuple(grad.shape)}")
    rel = abs(objective - ref_objective) / abs(ref_objective)
    max_diff = float((grad - ref_grad.to(grad.dtype)).abs().max())
    print(f"reference {ref_path.name}: objective {objective:.5f} vs {ref_objective:.5f} "
          f"(relative difference {rel:.2e}); max |grad - ref| = {max_diff:.2e}")


def run_case(path: Path, leaky: Optional[float], device: torch.device, repeats: int) -> None:
    case = _load_case(path)
    if leaky is None:
        leaky = float(case.get("leaky_hmm_coefficient", 0.1))
    batch, num_frames, num_pdfs = case["nnet_output"].shape
    print(f"case {path}: S={int(case['num_states'])} A={case['arc_src'].size} D={num_pdfs} "
          f"B={batch} T={num_frames} leaky={leaky} device={device} "
          f"threads={torch.get_num_threads()} repeats={repeats}")
    print(_load_note())
    fwd_ms, fwdbwd_ms, objective, grad, memory = time_case(case, leaky, device, repeats)
    print(memory)
    print(f"fastest of {repeats}: fwd {min(fwd_ms):.1f} ms, fwd+bwd {min(fwdbwd_ms):.1f} ms")
    ref_path = path.with_name(path.name[: -len(".npz")] + "_ref.npz") \
        if path.name.endswith(".npz") else None
    if ref_path is not None and ref_path.is_file():
        compare_with_reference(ref_path, objective, grad)
    print(f"fwd_ms={statistics.median(fwd_ms):.1f} fwdbwd_ms={statistics.median(fwdbwd_ms):.1f} "
          f"objective={objective:.5f}")


def scaling_table(device: torch.device, repeats: int) -> None:
    frame_counts = [75, 150, 300, 600]
    arc_counts = [5000, 10000, 20000, 40000]
    batch = 16
    print(f"forward+backward ms (fastest of {repeats}: the run least disturbed by other load), "
          f"B={batch}, S=A/10, D=S, device={device}, "
          f"threads={torch.get_num_threads()}; in brackets: time per frame-arc relative to "
          f"T={frame_counts[0]}, A={arc_counts[0]}")
    print(_load_note())
    rows: List[str] = ["T \\ A " + "".join(f"{a:>18}" for a in arc_counts)]
    base = None
    for num_frames in frame_counts:
        cells = []
        for num_arcs in arc_counts:
            num_states = num_arcs // 10
            case = make_case(num_states, num_arcs, num_states, batch, num_frames, seed=num_arcs)
            fwdbwd_ms = min(time_case(case, 0.1, device, repeats)[1])
            cost = fwdbwd_ms / (num_frames * num_arcs)
            base = cost if base is None else base
            cells.append(f"{fwdbwd_ms:>10.1f} ({cost / base:4.2f})")
        rows.append(f"{num_frames:<6}" + "".join(cells))
        print(rows[-1] if len(rows) > 2 else "\n".join(rows), flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="den_bench.py", description=__doc__.split("\n")[0])
    parser.add_argument("case", nargs="?", type=Path, help="case .npz to benchmark")
    parser.add_argument("--leaky", type=float, default=None,
                        help="leaky-HMM coefficient (default: the case's, else 0.1)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs after one warm-up")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch CPU threads (default 2, the reference machine's cores)")
    parser.add_argument("--make-case", nargs=7, metavar=("S", "A", "D", "B", "T", "SEED", "PATH"),
                        help="write a random case and exit")
    parser.add_argument("--scaling-table", action="store_true",
                        help="print fwd+bwd time over T x number of arcs")
    args = parser.parse_args(argv)
    try:
        if args.make_case:
            *sizes, path = args.make_case
            try:
                num_states, num_arcs, num_pdfs, batch, num_frames, seed = (int(v) for v in sizes)
            except ValueError:
                raise FrugalError(f"--make-case: S A D B T SEED must be integers, got {sizes}")
            case = make_case(num_states, num_arcs, num_pdfs, batch, num_frames, seed)
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.savez(f, **case)
            print(f"wrote {path}")
            return 0
        torch.set_num_threads(args.threads)
        if args.repeats < 1:
            raise FrugalError("--repeats must be at least 1")
        if args.device == "cuda" and not torch.cuda.is_available():
            raise FrugalError("--device cuda: no CUDA device is available")
        device = torch.device(args.device)
        if args.scaling_table:
            scaling_table(device, args.repeats)
            return 0
        if args.case is None:
            parser.error("give a CASE.npz, --make-case or --scaling-table")
        run_case(args.case, args.leaky, device, args.repeats)
        return 0
    except FrugalError as e:
        print(f"den_bench.py: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
