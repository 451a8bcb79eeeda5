"""Semi-supervised LF-MMI results (thesis table 3.5, figure 3.6) into RESULTS.md from scored decode directories.

Each --row NAME:PREFIX is one system of table 3.5; its decode directories are PREFIX_DEV and
PREFIX_TEST (--dev, --test: exp/m/decode_3g -> exp/m/decode_3g_dev, exp/m/decode_3g_test),
scored by frugal score-lattices. The dev WER is taken at the LM weight / insertion penalty
best on dev, the test WER at that same setting (as frugal write-results --dev-decode-dir).
The first row is the supervised-only baseline, --oracle-row (default: the last) the system
trained on the true transcripts; every row gets its WER recovery rate
WRR = 100 (WER_supervised - WER) / (WER_supervised - WER_oracle), "n/a" where the two are equal.

Each --curve N:PREFIX is a point of figure 3.6: the dev WER (PREFIX_DEV at its best setting)
of a system trained on supervision combined from N dropout decodings (N = 0: the regular
lattice). The points are plotted against N to --plot (PNG) with the supervised and oracle dev
WERs as reference lines, and listed in the section with a link to the plot.

The section "## Semi-supervised LF-MMI (table 3.5)" of --results is replaced (or appended);
all other text, the results table of frugal score-lattices / write-results included, is kept.

  frugal semisup-results --results RESULTS.md \\
      --row "Supervised only:exp/tdnnf_seed/decode_3g" \\
      --row "Regular lattice:exp/tdnnf_semisup_regular/decode_3g" \\
      --row "Combination w.r.t. AM:exp/tdnnf_semisup_am/decode_3g" \\
      --row "Oracle:exp/tdnnf_oracle/decode_3g" \\
      --curve 0:exp/tdnnf_semisup_regular/decode_3g --curve 4:exp/tdnnf_semisup_am/decode_3g \\
      --plot exp/semisup/wer_vs_n.png --notes "seed 1, N=4"
"""
from __future__ import annotations

import argparse
import datetime
import logging
import os
from pathlib import Path
from typing import List, Optional, Tuple

from frugal.decode.best_paths import chosen_result, read_setting
from frugal.decode.scoring import ErrorCounts, git_revision
from frugal.errors import FrugalError
from frugal.fileio import atomic_write_text
from frugal.semisup.report import (SECTION_HEADING, CurvePoint, SystemResult, plot_wer_vs_n, replace_section,
                                   section_body)

log = logging.getLogger("frugal.semisup_results")


def parse_row(text: str) -> Tuple[str, str]:
    """NAME:PREFIX (the prefix may itself contain colons)."""
    name, sep, prefix = text.partition(":")
    if not sep or not name.strip() or not prefix:
        raise FrugalError(f"--row {text!r}: expected NAME:DECODE_DIR_PREFIX, e.g. 'Oracle:exp/tdnnf_oracle/decode_3g'")
    return name.strip(), prefix


def parse_curve(text: str) -> Tuple[int, str]:
    """N:PREFIX with N a non-negative integer."""
    n, sep, prefix = text.partition(":")
    try:
        value = int(n)
    except ValueError:
        value = -1
    if not sep or not prefix or value < 0:
        raise FrugalError(f"--curve {text!r}: expected N:DECODE_DIR_PREFIX with N a non-negative integer, "
                          f"e.g. '4:exp/tdnnf_semisup_am/decode_3g'")
    return value, prefix


def scored_dir(prefix: str, set_name: str, option: str) -> Path:
    """PREFIX_SET, which must exist and have been scored by frugal score-lattices."""
    d = Path(f"{prefix}_{set_name}")
    if not d.is_dir():
        raise FrugalError(f"{option}: no decode directory {d} (PREFIX_{set_name}, from prefix {prefix})")
    read_setting(d)  # names the directory and says to run frugal score-lattices when it was not scored
    return d


def check_same_references(results: List[Tuple[Path, ErrorCounts]], set_name: str) -> None:
    """Every directory of one set must be scored against the same references (same word count)."""
    first_dir, first = results[0]
    for d, counts in results[1:]:
        if (counts.ref_words, counts.sentences) != (first.ref_words, first.sentences):
            raise FrugalError(f"{d}: scored against {counts.sentences} utterances / {counts.ref_words} words, "
                              f"but {first_dir} against {first.sentences} / {first.ref_words}: "
                              f"not the same {set_name} set")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="frugal semisup-results", description=__doc__.split("\n")[0],
                                epilog=__doc__.split("\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", required=True, help="RESULTS.md to update (created if missing; other text is kept)")
    p.add_argument("--row", dest="rows", action="append", required=True, metavar="NAME:PREFIX",
                   help="a system of table 3.5 and its decode directory prefix (repeatable; the first is the "
                        "supervised baseline)")
    p.add_argument("--oracle-row", help="name of the oracle row (default: the last row)")
    p.add_argument("--dev", default="dev", help="dev set suffix: PREFIX_DEV (default: %(default)s)")
    p.add_argument("--test", default="test", help="test set suffix: PREFIX_TEST (default: %(default)s)")
    p.add_argument("--curve", dest="curves", action="append", default=[], metavar="N:PREFIX",
                   help="a point of figure 3.6: N dropout decodings combined, decode directory prefix (repeatable)")
    p.add_argument("--plot", help="PNG of the dev WER against N (needed with --curve)")
    p.add_argument("--title", default="Semi-supervised LF-MMI: dev WER against N", help="title of the plot")
    p.add_argument("--notes", help="a line under the section heading (seed, N, beams, ...)")
    p.add_argument("--section", default=SECTION_HEADING, help="heading of the section (default: %(default)r)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not args.section.startswith("## "):
        raise FrugalError(f"--section {args.section!r}: must be a level-2 markdown heading ('## ...')")
    if not args.dev or not args.test or args.dev == args.test:
        raise FrugalError(f"--dev {args.dev!r} --test {args.test!r}: need two different non-empty set names")
    rows = [parse_row(r) for r in args.rows]
    names = [name for name, _ in rows]
    if len(rows) < 2:
        raise FrugalError("--row: need at least two rows (the supervised baseline first, and the oracle)")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise FrugalError(f"--row: the name {dup!r} is given twice")
    oracle_name = args.oracle_row if args.oracle_row is not None else names[-1]
    if oracle_name not in names:
        raise FrugalError(f"--oracle-row {oracle_name!r}: no --row of that name (rows: {', '.join(names)})")
    oracle_index = names.index(oracle_name)
    if oracle_index == 0:
        raise FrugalError(f"--oracle-row {oracle_name!r}: the first row is the supervised baseline, not the oracle")
    curves = [parse_curve(c) for c in args.curves]
    ns = [n for n, _ in curves]
    if len(set(ns)) != len(ns):
        dup = next(n for n in ns if ns.count(n) > 1)
        raise FrugalError(f"--curve: N = {dup} is given twice")
    if curves and not args.plot:
        raise FrugalError("--curve needs --plot (the PNG of the dev WER against N)")

    systems = []
    for name, prefix in rows:
        option = f"--row {name}:{prefix}"
        dev_dir, test_dir = scored_dir(prefix, args.dev, option), scored_dir(prefix, args.test, option)
        dev, setting = chosen_result(dev_dir)
        test, _ = chosen_result(test_dir, dev_dir)
        systems.append(SystemResult(name, dev, test, setting, dev_dir, test_dir))
    points = []
    for n, prefix in curves:
        dev_dir = scored_dir(prefix, args.dev, f"--curve {n}:{prefix}")
        dev, setting = chosen_result(dev_dir)
        points.append(CurvePoint(n, dev, setting, dev_dir))
    check_same_references([(s.dev_dir, s.dev) for s in systems] + [(p.dev_dir, p.dev) for p in points], args.dev)
    check_same_references([(s.test_dir, s.test) for s in systems], args.test)

    results = Path(args.results)
    link = None
    if points:
        plot_wer_vs_n(points, systems[0].dev.wer, systems[oracle_index].dev.wer, args.plot, args.title)
        link = Path(os.path.relpath(Path(args.plot).resolve(), results.resolve().parent)).as_posix()
        log.info("wrote %s", args.plot)
    body = section_body(systems, oracle_index, points, link, args.notes, git_revision(),
                        datetime.date.today().isoformat())
    old = results.read_text(encoding="utf-8") if results.exists() else ""
    atomic_write_text(results, replace_section(old, args.section, body))
    print(f"{args.section}\n\n{body}", end="")
    log.info("updated %s", results)
    return 0
