"""Results of the semi-supervised recipe: the thesis's table 3.5 and figure 3.6 (Vyas, ch. 3).

Table 3.5 compares LF-MMI systems trained on each kind of supervision lattice by their WER
and their *WER recovery rate* (WRR), the fraction of the gap between the supervised-only
system and the oracle (trained on the true transcripts of the unsupervised data) that a
system closes::

    WRR = 100 * (WER_supervised - WER_system) / (WER_supervised - WER_oracle)

Figure 3.6 plots the dev WER of systems trained on AM-uncertainty supervision combined from
N dropout decodings against N. Both go into a section of a recipe's RESULTS.md
(:func:`replace_section`), beside the results table of
:func:`frugal.decode.scoring.update_results_table`, which is left as it is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from frugal.decode.scoring import RESULTS_HEADER, ErrorCounts, Setting
from frugal.fileio import PathLike, atomic_path

SECTION_HEADING = "## Semi-supervised LF-MMI (table 3.5)"


@dataclass
class SystemResult:
    """One row of table 3.5: dev WER at the setting best on dev, test WER at that setting."""

    name: str
    dev: ErrorCounts
    test: ErrorCounts
    setting: Setting      # (LM weight, insertion penalty) chosen on dev
    dev_dir: Path
    test_dir: Path


@dataclass
class CurvePoint:
    """One point of figure 3.6: N dropout decodings combined, dev WER at its best setting."""

    n: int
    dev: ErrorCounts
    setting: Setting
    dev_dir: Path


def wer_recovery_rate(supervised: float, system: float, oracle: float) -> Optional[float]:
    """WRR in percent; None where it is undefined (the oracle does no better than supervised training)."""
    gap = supervised - oracle
    if gap == 0 or not math.isfinite(gap):
        return None
    return 100.0 * (supervised - system) / gap


def _wrr_cell(wrr: Optional[float]) -> str:
    return "n/a" if wrr is None else f"{wrr:.1f}"


def _setting_cell(setting: Setting) -> str:
    lmwt, wip = setting
    return f"lmwt={lmwt:g} wip={float(wip)}"


def results_table(systems: Sequence[SystemResult], oracle_index: int) -> str:
    """Table 3.5 as markdown; ``systems[0]`` is the supervised baseline, ``systems[oracle_index]`` the oracle."""
    sup, oracle = systems[0], systems[oracle_index]
    lines = ["| System | dev %WER | test %WER | WRR dev (%) | WRR test (%) |",
             "|---|---:|---:|---:|---:|"]
    for s in systems:
        wrr_dev = wer_recovery_rate(sup.dev.wer, s.dev.wer, oracle.dev.wer)
        wrr_test = wer_recovery_rate(sup.test.wer, s.test.wer, oracle.test.wer)
        lines.append(f"| {s.name} | {s.dev.wer:.2f} | {s.test.wer:.2f} | {_wrr_cell(wrr_dev)} "
                     f"| {_wrr_cell(wrr_test)} |")
    return "\n".join(lines) + "\n"


def sources_table(systems: Sequence[SystemResult]) -> str:
    """Where each row of table 3.5 comes from: decode directories, errors and the dev-chosen setting."""
    lines = ["| System | Setting (best on dev) | dev errors | test errors | dev decode dir | test decode dir |",
             "|---|---|---|---|---|---|"]
    for s in systems:
        lines.append(f"| {s.name} | {_setting_cell(s.setting)} | {s.dev.errors} / {s.dev.ref_words} "
                     f"| {s.test.errors} / {s.test.ref_words} | {s.dev_dir} | {s.test_dir} |")
    return "\n".join(lines) + "\n"


def curve_table(points: Sequence[CurvePoint]) -> str:
    """The points of figure 3.6 as markdown, by increasing N."""
    lines = ["| N | dev %WER | Setting | dev decode dir |", "|---:|---:|---|---|"]
    for p in sorted(points, key=lambda p: p.n):
        lines.append(f"| {p.n} | {p.dev.wer:.2f} | {_setting_cell(p.setting)} | {p.dev_dir} |")
    return "\n".join(lines) + "\n"


def plot_wer_vs_n(points: Sequence[CurvePoint], supervised_wer: float, oracle_wer: float, path: PathLike,
                  title: str) -> None:
    """Figure 3.6 as a PNG (written atomically): dev WER against N, with the supervised and
    oracle dev WERs as horizontal reference lines."""
    # The Agg canvas on a bare Figure: no pyplot, so no global backend state to set or leak.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pts = sorted(points, key=lambda p: p.n)
    ns, wers = [p.n for p in pts], [p.dev.wer for p in pts]
    fig = Figure(figsize=(5.5, 4.4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(ns, wers, marker="o", color="C0", label="semi-supervised (AM uncertainty)")
    for n, wer in zip(ns, wers):
        ax.annotate(f"{wer:.2f}", (n, wer), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.axhline(supervised_wer, color="C3", linestyle="--", label=f"supervised only ({supervised_wer:.2f})")
    ax.axhline(oracle_wer, color="C2", linestyle=":", label=f"oracle ({oracle_wer:.2f})")
    ax.set_xticks(ns)
    ax.set_xlabel("N (dropout decodings combined into the supervision)")
    ax.set_ylabel("dev %WER")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    # Below the axes: the reference lines span the whole width, so no corner inside is free.
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


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


def section_body(systems: Sequence[SystemResult], oracle_index: int, points: Sequence[CurvePoint],
                 plot_link: Optional[str], notes: Optional[str], revision: str, date: str) -> str:
    """The text of the RESULTS.md section under its heading."""
    parts: List[str] = []
    if notes:
        parts.append(notes + "\n")
    parts.append(results_table(systems, oracle_index))
    parts.append(f"%WER at the LM weight and insertion penalty best on dev (test at the dev setting). "
                 f"WRR = 100 (WER_supervised - WER) / (WER_supervised - WER_oracle), supervised: "
                 f"{systems[0].name}, oracle: {systems[oracle_index].name}. Written {date}, revision {revision}.\n")
    parts.append(sources_table(systems))
    if points:
        parts.append("### Dev WER against the number N of dropout decodings (figure 3.6)\n")
        parts.append(curve_table(points))
        if plot_link:
            parts.append(f"![dev WER against N]({plot_link})\n")
    return "\n".join(parts)

