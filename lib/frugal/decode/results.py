"""A recipe's RESULTS.md: the results table (one row per model, data and graph) and named sections.

Stages write their numbers here as they finish; the file is rewritten atomically and any
text around the table and the sections (notes, plots, history) is kept as it is.
"""
from __future__ import annotations

import datetime
import subprocess
from pathlib import Path
from typing import List, Optional, Sequence

from frugal.decode.scoring import ErrorCounts, Setting
from frugal.dirs import setting_name
from frugal.fileio import PathLike, atomic_write_text


RESULTS_HEADER = ["Model", "Data", "Graph", "%WER", "Errors", "Setting", "Date", "Revision"]


def git_revision(repo_dir: PathLike = ".") -> str:
    """Short commit hash of ``repo_dir`` (``+dirty`` with uncommitted changes), or ``unknown``.

    Changes to RESULTS.md files do not count: the recipes write them, so a results table
    updated by one stage would otherwise mark every later row dirty.
    """
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo_dir,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ":(top)", ":(top,exclude,glob)**/RESULTS.md"],
                               cwd=repo_dir, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty.strip() else "")


def _table_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _split_row(line: str) -> List[str]:
    inner = line.strip()[1:-1]
    cells, cur, i = [], "", 0
    while i < len(inner):
        if inner[i] == "\\" and inner[i + 1:i + 2] == "|":
            cur += "|"
            i += 2
            continue
        if inner[i] == "|":
            cells.append(cur.strip())
            cur = ""
        else:
            cur += inner[i]
        i += 1
    cells.append(cur.strip())
    return cells


def update_results_table(path: PathLike, model: str, data: str, graph: str,
                         counts: ErrorCounts, setting: Optional[Setting] = None,
                         date: Optional[str] = None, revision: Optional[str] = None) -> None:
    """Add or replace the row of (model, data, graph) in the results table of ``path``.

    The table (header :data:`RESULTS_HEADER`) is created at the end of the file when absent;
    other text in the file is kept as it is. ``date`` defaults to today (ISO), ``revision``
    to :func:`git_revision` of the current directory.
    """
    path = Path(path)
    row = [model, data, graph, f"{counts.wer:.2f}", f"{counts.errors} / {counts.ref_words}",
           f"lmwt={setting_name(setting[0])} wip={setting_name(setting[1])}" if setting else "",
           date or datetime.date.today().isoformat(), revision or git_revision()]
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    header = _table_row(RESULTS_HEADER)
    if header in lines:
        start = lines.index(header)
        end = start + 2  # header and |---| lines
        while end < len(lines) and lines[end].lstrip().startswith("|"):
            end += 1
        rows = [_split_row(line) for line in lines[start + 2:end]]
    else:
        if lines and lines[-1].strip():
            lines.append("")
        start = end = len(lines)
        rows = []
    key = row[:3]
    rows = [r for r in rows if r[:3] != key]
    rows.append(row)
    table = [header, "|" + "|".join("---" for _ in RESULTS_HEADER) + "|"]
    table += [_table_row(r) for r in rows]
    lines[start:end] = table
    atomic_write_text(path, "\n".join(lines) + "\n")


def _is_heading(line: str, max_level: int) -> bool:
    hashes = len(line) - len(line.lstrip("#"))
    return 1 <= hashes <= max_level and line[hashes:hashes + 1] == " "


def _is_results_table_header(line: str) -> bool:
    """The header of update_results_table's table, which may follow a section without a heading."""
    s = line.strip()
    return s.startswith("|") and [c.strip() for c in s.strip("|").split("|")] == RESULTS_HEADER


def replace_section(text: str, heading: str, body: str) -> str:
    """``text`` with the section under ``heading`` (a level-2 markdown heading line) replaced by
    ``heading`` + ``body``, or appended at the end where there is none; all other text is kept.

    A section runs from its heading to the next heading of level 1 or 2, or to the header of
    the RESULTS.md results table (which update_results_table appends at the end of the file,
    so it may follow this section directly), or to the end.
    """
    lines = text.splitlines()
    new = [heading, ""] + body.rstrip("\n").splitlines()
    if heading in lines:
        start = lines.index(heading)
        end = start + 1
        while end < len(lines) and not (_is_heading(lines[end], 2) or _is_results_table_header(lines[end])):
            end += 1
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1  # the blank lines before what follows stay
        lines[start:end] = new
    else:
        if lines and lines[-1].strip():
            lines.append("")
        lines += new
    return "\n".join(lines) + "\n"
