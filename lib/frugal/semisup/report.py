"""Results of the semi-supervised recipe: the thesis's table 3.5 and figure 3.6 (Vyas, ch. 3).

Table 3.5 compares LF-MMI systems trained on each kind of supervision lattice by their WER
and their *WER recovery rate* (WRR), the fraction of the gap between the supervised-only
system and the oracle (trained on the true transcripts of the unsupervised data) that a
system closes::

    WRR = 100 * (WER_supervised - WER_system) / (WER_supervised - WER_oracle)

Figure 3.6 plots the dev WER of systems trained on AM-uncertainty supervision combined from
N dropout decodings against N. Both go into a section of a recipe's RESULTS.md
(`frugal.decode.results.replace_section`), beside its results table.
"""
from __future__ import annotations

import datetime
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from frugal.decode.results import git_revision, replace_section
from frugal.decode.scoring import ErrorCounts, Setting
from frugal.decode.sweep import chosen_result
from frugal.dirs import DecodeDir
from frugal.errors import BadValue, FrugalError
from frugal.fileio import PathLike, atomic_path, atomic_write_text

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



def _scored_dir(prefix: str, set_name: str, option: str) -> Path:
    """PREFIX_SET, which must exist and have been scored by frugal score-lattices."""
    d = Path(f"{prefix}_{set_name}")
    if not d.is_dir():
        raise FrugalError(f"{option}: no decode directory {d} (PREFIX_{set_name}, from prefix {prefix})")
    DecodeDir(d).best_setting()  # names the directory and says to score it when it was not
    return d


def _check_same_references(results: Sequence[Tuple[Path, ErrorCounts]], set_name: str) -> None:
    """Every directory of one set must be scored against the same references (same word count)."""
    first_dir, first = results[0]
    for d, counts in results[1:]:
        if (counts.ref_words, counts.sentences) != (first.ref_words, first.sentences):
            raise FrugalError(f"{d}: scored against {counts.sentences} utterances / {counts.ref_words} words, "
                              f"but {first_dir} against {first.sentences} / {first.ref_words}: "
                              f"not the same {set_name} set")


def write_semisup_results(results: PathLike, rows: Sequence[Tuple[str, str]], curves: Sequence[Tuple[int, str]] = (),
                          dev: str = "dev", test: str = "test", plot: Optional[PathLike] = None,
                          title: str = "Semi-supervised LF-MMI: dev WER against N", notes: Optional[str] = None,
                          section: str = SECTION_HEADING, oracle_row: Optional[str] = None) -> str:
    """Table 3.5 and figure 3.6 into the section ``section`` of RESULTS.md (all other text is
    kept) from scored decode directories: ``rows`` (name, decode directory prefix; the first
    the supervised baseline, ``oracle_row`` (default: the last) the oracle), ``curves`` (N,
    prefix) plotted to ``plot``; the directories are PREFIX_DEV and PREFIX_TEST. The test
    WERs are at the setting best on dev. Returns the section."""
    if not section.startswith("## "):
        raise BadValue("section", section, "must be a level-2 markdown heading ('## ...')")
    if not dev or not test or dev == test:
        raise BadValue("dev", dev, f"and test {test!r}: need two different non-empty set names")
    names = [name for name, _ in rows]
    if len(rows) < 2:
        raise BadValue("rows", len(rows), "need at least two rows (the supervised baseline first, and the oracle)")
    if len(set(names)) != len(names):
        raise BadValue("rows", next(n for n in names if names.count(n) > 1), "the name is given twice")
    oracle_name = oracle_row if oracle_row is not None else names[-1]
    if oracle_name not in names[1:]:
        raise BadValue("oracle_row", oracle_name, f"not a row after the supervised baseline ({', '.join(names)})")
    ns = [n for n, _ in curves]
    if len(set(ns)) != len(ns):
        raise BadValue("curves", next(n for n in ns if ns.count(n) > 1), "N is given twice")
    if curves and not plot:
        raise BadValue("plot", None, "is needed for a curve (the PNG of the dev WER against N)")
    systems = []
    for name, prefix in rows:
        option = f"--row {name}:{prefix}"
        dev_dir, test_dir = _scored_dir(prefix, dev, option), _scored_dir(prefix, test, option)
        dev_counts, setting = chosen_result(dev_dir)
        test_counts, _ = chosen_result(test_dir, dev_dir)
        systems.append(SystemResult(name, dev_counts, test_counts, setting, dev_dir, test_dir))
    points = []
    for n, prefix in curves:
        dev_dir = _scored_dir(prefix, dev, f"--curve {n}:{prefix}")
        dev_counts, setting = chosen_result(dev_dir)
        points.append(CurvePoint(n, dev_counts, setting, dev_dir))
    _check_same_references([(s.dev_dir, s.dev) for s in systems] + [(p.dev_dir, p.dev) for p in points], dev)
    _check_same_references([(s.test_dir, s.test) for s in systems], test)
    oracle_index = names.index(oracle_name)
    results = Path(results)
    link = None
    if points:
        plot_wer_vs_n(points, systems[0].dev.wer, systems[oracle_index].dev.wer, plot, title)
        link = Path(os.path.relpath(Path(plot).resolve(), results.resolve().parent)).as_posix()
    body = section_body(systems, oracle_index, points, link, notes, git_revision(), datetime.date.today().isoformat())
    old = results.read_text(encoding="utf-8") if results.exists() else ""
    atomic_write_text(results, replace_section(old, section, body))
    return f"{section}\n\n{body}"
