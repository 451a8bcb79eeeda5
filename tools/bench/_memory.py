"""Peak memory of a block of code for the benchmarks: CUDA's allocator statistics, or on a
CPU the rise of the process's peak resident set (Linux: VmHWM after resetting it through
/proc/self/clear_refs), with glibc's mmap threshold fixed so that freed tensors leave the
resident set."""
from __future__ import annotations

import torch


def _kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


class PeakMemory:
    """Bytes of peak memory above the level at the start of a ``with`` block."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.bytes = 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # peak RSS := current RSS
            self.base = _kb("VmRSS")
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.bytes = torch.cuda.max_memory_allocated(self.device) - self.base
        else:
            self.bytes = _kb("VmHWM") - self.base
        return False


def fixed_malloc_thresholds() -> None:
    """glibc: allocations of 64 KiB and more are mmapped and given back when freed (no dynamic
    threshold), so that freed tensors leave the resident set and peak RSS rises measure a run."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 * 1024)   # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass
