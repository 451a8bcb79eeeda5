"""Logging: the one set-up of the command line, and log files of jobs and training runs.

Every library module logs to a logger under ``frugal`` (``frugal.decode``, ...); the
command line shows them on stderr. A job that keeps its own log (a decode job's
``log/decode.J.log``, a training run's ``log/train.log``) adds a file handler to the
``frugal`` logger for as long as it runs, so the file gets everything the library says
meanwhile, from any module.
"""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Iterator

from frugal.fileio import PathLike

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def setup_cli_logging() -> None:
    """What `frugal <tool>` shows on stderr: INFO and up, WARNING and up on the other
    processes of a distributed run (torchrun's RANK > 0)."""
    level = logging.INFO if os.environ.get("RANK", "0") == "0" else logging.WARNING
    logging.basicConfig(level=level, format=FORMAT)
    logging.getLogger("frugal").setLevel(level)


@contextlib.contextmanager
def log_to_file(path: PathLike, mode: str = "a", logger: str = "frugal") -> Iterator[logging.Handler]:
    """Inside the block, copy ``logger``'s records (INFO and up) to ``path``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode=mode)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    target = logging.getLogger(logger)
    old_level = target.level
    target.addHandler(handler)
    if target.getEffectiveLevel() > logging.INFO:
        target.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        target.removeHandler(handler)
        target.setLevel(old_level)
        handler.close()
