"""Add or replace a row of a recipe's RESULTS.md table from a scored decode directory.

The row (model, data, graph, %WER, errors, setting, date, git revision) takes the WER of
DECODE_DIR at its best LM weight / insertion penalty (frugal score-lattices), or, with
--dev-decode-dir, at the setting that was best on the dev set.
"""
from __future__ import annotations

from frugal.decode.results import update_results_table
from frugal.decode.sweep import chosen_result


def add_arguments(p) -> None:
    p.add_argument("--results", required=True, help="RESULTS.md (created if missing; other text is kept)")
    p.add_argument("--model", required=True, help="model column, e.g. tdnnf")
    p.add_argument("--data", required=True, help="data column, e.g. test")
    p.add_argument("--graph", required=True, help="graph column, e.g. tg")
    p.add_argument("--decode-dir", required=True, help="decode directory scored by frugal score-lattices")
    p.add_argument("--dev-decode-dir", help="scored dev decode directory whose best setting is used")


def run(args) -> None:
    counts, setting = chosen_result(args.decode_dir, args.dev_decode_dir)
    update_results_table(args.results, args.model, args.data, args.graph, counts, setting)
    print(f"{args.results}: {args.model} {args.data} {args.graph} {counts.wer_line()}")
