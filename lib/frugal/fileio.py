"""File helpers: crash-safe outputs, weights-only torch files, small text files, one-line errors.

Outputs are written to a temporary name beside the target and renamed when complete.

A stage killed at any point (even with kill -9) leaves at most a ``.tmp.<pid>.<name>`` sibling,
which nothing trusts and the next run replaces; the target name only ever points at a
complete file or directory. rename(2) within one directory is atomic on POSIX.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

from frugal.errors import FrugalError

PathLike = Union[str, os.PathLike]


def _tmp_sibling(path: Path) -> Path:
    # The name ends with the target's own name so that suffix-driven writers (lhotse's
    # to_file picks gzip from '.jsonl.gz') write the format the target will have.
    return path.with_name(f".tmp.{os.getpid()}.{path.name}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def clean_stale_tmp(path: PathLike) -> None:
    """Remove temporaries left beside ``path`` by killed runs."""
    path = Path(path)
    if path.parent.is_dir():
        for stale in path.parent.glob(f".tmp.*.{path.name}"):
            _remove(stale)


@contextlib.contextmanager
def atomic_path(path: PathLike, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` through; rename it into place on success.

    With ``is_dir=True`` the temporary directory is created for the caller. On an
    exception the temporary is removed and the old ``path`` (if any) is left untouched.
    lhotse picks the format from the suffix, so the temporary keeps ``path``'s suffixes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(path)
    tmp = _tmp_sibling(path)
    if is_dir:
        tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)
        raise
    if not (tmp.exists() or tmp.is_symlink()):
        raise RuntimeError(f"atomic_path: nothing was written to {tmp} for {path}")
    if path.is_dir() and not path.is_symlink():
        # A directory cannot be replaced by rename(2) in one step: move the old one
        # aside first, so that a crash between the two renames leaves only temporaries.
        old = path.with_name(f".tmp.{os.getpid()}.old.{path.name}")
        os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old)
    else:
        os.replace(tmp, path)


def atomic_write_text(path: PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_lines(path: PathLike) -> List[str]:
    """The non-blank lines of a small text file, stripped (a symbol or word list)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise FrugalError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise FrugalError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def save_weights_only(path: PathLike, data: dict) -> None:
    """A torch file of tensors and primitive containers only (no pickled classes), written
    atomically: `load_weights_only` reads it with ``torch.load(weights_only=True)``."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(data, tmp)


def load_weights_only(path: PathLike, what: str, tag: Optional[Tuple[str, str]] = None,
                      map_location="cpu") -> dict:
    """A dict saved by `save_weights_only`, read with ``weights_only=True`` (no code runs);
    ``tag`` = (key, value) that it must hold. One-line FrugalErrors naming the file and
    ``what`` it should be, for a missing, cut-short or foreign file."""
    import torch

    if not Path(path).is_file():
        raise FrugalError(f"{path}: no such file ({what})")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types; not e's text: it may advise weights_only=False
        import pickle
        reason = ("pickled objects beyond tensors and plain data, not loaded: no code from data files runs"
                  if isinstance(e, pickle.UnpicklingError)
                  else f"unreadable, cut short or foreign: {type(e).__name__}")
        raise FrugalError(f"{path}: not {what} ({reason})") from None
    if not isinstance(data, dict) or (tag is not None and data.get(tag[0]) != tag[1]):
        raise FrugalError(f"{path}: not {what}")
    return data


def read_keyed_files(files: Iterable[PathLike], read: Callable[[PathLike], Mapping], what: str) -> dict:
    """Key -> value over several files (e.g. the jobs of a decode directory, in order), each
    read with ``read``; a key in two files is an error naming both."""
    out: dict = {}
    first: dict = {}
    for f in files:
        for key, value in read(f).items():
            if key in out:
                raise FrugalError(f"{f}: utterance '{key}' has a {what} in {first[key]} too")
            out[key], first[key] = value, f
    return out
