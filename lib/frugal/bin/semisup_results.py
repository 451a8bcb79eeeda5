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

from frugal.bin._options import count_and_path, named_path
from frugal.semisup.report import SECTION_HEADING, write_semisup_results


def add_arguments(p) -> None:
    p.add_argument("--results", required=True, help="RESULTS.md to update (created if missing; other text is kept)")
    p.add_argument("--row", dest="rows", action="append", required=True, metavar="NAME:PREFIX", type=named_path,
                   help="a system of table 3.5 and its decode directory prefix (repeatable; the first is the "
                        "supervised baseline)")
    p.add_argument("--oracle-row", help="name of the oracle row (default: the last row)")
    p.add_argument("--dev", default="dev", help="dev set suffix: PREFIX_DEV (default: %(default)s)")
    p.add_argument("--test", default="test", help="test set suffix: PREFIX_TEST (default: %(default)s)")
    p.add_argument("--curve", dest="curves", action="append", default=[], metavar="N:PREFIX", type=count_and_path,
                   help="a point of figure 3.6: N dropout decodings combined, decode directory prefix (repeatable)")
    p.add_argument("--plot", help="PNG of the dev WER against N (needed with --curve)")
    p.add_argument("--title", default="Semi-supervised LF-MMI: dev WER against N", help="title of the plot")
    p.add_argument("--notes", help="a line under the section heading (seed, N, beams, ...)")
    p.add_argument("--section", default=SECTION_HEADING, help="heading of the section (default: %(default)r)")


def run(a) -> None:
    print(write_semisup_results(a.results, a.rows, a.curves, a.dev, a.test, a.plot, a.title, a.notes, a.section,
                                a.oracle_row), end="")
