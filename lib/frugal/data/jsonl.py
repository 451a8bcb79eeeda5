"""Byte-reproducible lhotse manifests: gzipped JSON lines with a fixed gzip time stamp.

lhotse's own writer stamps the current time into the gzip header; writing here gives the
same bytes for the same manifest (so re-runs are comparable byte for byte), atomically.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Iterable

from frugal.fileio import atomic_path


def write_manifest(items: Iterable, path: Path) -> None:
    """Write lhotse manifest items (anything with ``to_dict``) to ``path`` (.jsonl.gz)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            for item in items:
                gz.write((json.dumps(item.to_dict(), ensure_ascii=False) + "\n").encode())
