"""Work split over processes, as Kaldi's run.pl: splits, job fingerprints, and a spawn pool.

- `split`: ``nj`` contiguous parts whose sizes differ by at most one (Kaldi's split_data.sh).
- `fingerprint`: what a finished job's done-marker holds (its inputs, options and the size
  and modification time of the files it read), so that a re-run skips a job only when
  nothing it depends on changed.
- `run`: tasks through ``nj`` worker processes with one progress bar; results in task
  order. Workers are spawned, not forked: the parent may have started torch threads or an
  eSpeak engine, which a fork copies in an undefined state. A task's progress is counted
  when it finishes (``size``) or reported from inside the worker with `report`. A failed
  task stops the run with its error; a worker killed from outside stops it with a
  one-line FrugalError. With ``nj == 1`` the tasks run in this process.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import queue as queue_lib
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Sequence, TypeVar

from tqdm import tqdm

from frugal.errors import BadValue, FrugalError
from frugal.fileio import PathLike

T = TypeVar("T")
R = TypeVar("R")

# Where `report` sends progress: the bar in this process, or a queue to the parent.
_report: Optional[Callable[[int], None]] = None


def split(items: Sequence[T], nj: int, what: str = "items") -> List[List[T]]:
    """``items`` (in their order) in ``nj`` contiguous parts; every item lands in one part."""
    if nj < 1:
        raise BadValue("nj", nj, "must be at least 1")
    if nj > len(items):
        raise BadValue("nj", nj, f"more jobs than the {len(items)} {what}")
    base, extra = divmod(len(items), nj)
    out, start = [], 0
    for j in range(nj):
        size = base + (j < extra)
        out.append(list(items[start:start + size]))
        start += size
    return out


def file_stamp(path: PathLike) -> List[int]:
    """(size, modification time in ns) of a file: a rewritten file is a new one."""
    st = Path(path).stat()
    return [st.st_size, st.st_mtime_ns]


def fingerprint(ids: Sequence[str], record: Mapping[str, Any], files: Mapping[str, PathLike]) -> str:
    """A job's identity: its item ids (hashed), ``record`` (options, JSON-able) and the stamps
    of the ``files`` it reads."""
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
    return json.dumps({"num_cuts": len(ids), "cuts_sha256": digest, "options": dict(record),
                       "files": {name: file_stamp(p) for name, p in files.items()}}, sort_keys=True)


def report(n: int) -> None:
    """Count ``n`` units of progress from inside a task (a no-op outside `run`)."""
    if _report is not None:
        _report(n)


def _start_worker(progress, threads: Optional[int], initializer, initargs) -> None:
    global _report
    _report = progress.put
    if threads is not None:
        import torch
        torch.set_num_threads(threads)
    if initializer is not None:
        initializer(*initargs)


def run(worker: Callable[[T], R], tasks: Sequence[T], nj: int, *, desc: str, unit: str, total: int,
        size: Optional[Callable[[T], int]] = None, threads: Optional[int] = 1, threads_here: Optional[int] = None,
        initializer: Optional[Callable] = None, initargs: tuple = (), show_progress: bool = True) -> List[R]:
    """``worker(task)`` for every task, ``nj`` processes at a time (see the module docstring);
    ``threads``: torch threads of each worker process (None: torch's choice), ``threads_here``
    those of tasks run in this process (None: the caller's setting, given back after)."""
    global _report
    if nj < 1:
        raise BadValue("nj", nj, "must be at least 1")
    bar = tqdm(total=total, desc=desc, unit=unit, disable=not show_progress or not tasks)
    try:
        if nj == 1 or len(tasks) <= 1:
            return _run_here(worker, tasks, bar, size, threads_here, initializer, initargs)
        return _run_pool(worker, tasks, min(nj, len(tasks)), bar, size, threads, initializer, initargs)
    finally:
        _report = None
        bar.close()


def _run_here(worker, tasks, bar, size, threads, initializer, initargs) -> list:
    global _report
    import torch
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        if initializer is not None:
            initializer(*initargs)
        _report = bar.update
        out = []
        for task in tasks:
            out.append(worker(task))
            if size is not None:
                bar.update(size(task))
        return out
    finally:
        torch.set_num_threads(old_threads)


def _run_pool(worker, tasks, nj, bar, size, threads, initializer, initargs) -> list:
    ctx = multiprocessing.get_context("spawn")
    progress = ctx.Queue()
    results: List[Any] = [None] * len(tasks)
    with ProcessPoolExecutor(nj, mp_context=ctx, initializer=_start_worker,
                             initargs=(progress, threads, initializer, initargs)) as pool:
        futures = {pool.submit(worker, task): k for k, task in enumerate(tasks)}
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                _drain(progress, bar)
                for f in finished:
                    k = futures[f]
                    results[k] = f.result()  # a task's error stops the run here
                    if size is not None:
                        bar.update(size(tasks[k]))
            _drain(progress, bar)
        except BrokenProcessPool:
            raise FrugalError(f"{bar.desc}: a worker process died (killed, or out of memory?)") from None
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    return results


def _drain(progress, bar) -> None:
    while True:
        try:
            bar.update(progress.get_nowait())
        except queue_lib.Empty:
            return
