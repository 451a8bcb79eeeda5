"""N-best WER and SER of each kind of supervision lattice against the true transcripts (thesis table 3.4).

Each --kind NAME:PATH is one kind of supervision (regular, AM, LM, AM+LM uncertainty): a
lattice file, or a directory of them (frugal make-supervision's output). The references
are the supervision texts of --cuts, e.g. the true transcripts of the unsupervised part
(which training never reads). For each kind, the --nbest best word sequences of every
utterance's lattice (ranked with --lm-scale on graph costs and --acoustic-scale on acoustic
costs) are scored against the reference; an utterance's errors are averaged over its paths
(frugal.semisup.lattices.nbest_error_rates). Every utterance of the cuts must have a
lattice in every kind; lattices of other utterances are left out with a warning. The
report (markdown) is written to --output and printed.

  frugal supervision-report --kind regular:exp/semisup/sup_regular --kind am:exp/semisup/sup_am \\
      --kind lm:exp/semisup/sup_lm --kind am_lm:exp/semisup/sup_am_lm \\
      --cuts data/fbank/mini_cuts_train_unsup.jsonl.gz --words data/lang/words.txt \\
      --nbest 4 --acoustic-scale 0.1 --output exp/semisup/supervision.md
"""
from __future__ import annotations

from frugal.bin._options import named_path
from frugal.semisup.supervision import supervision_report


def add_arguments(p) -> None:
    p.add_argument("--kind", dest="kinds", action="append", required=True, metavar="NAME:LATTICES", type=named_path,
                   help="a kind of supervision and its lattice file or directory (repeatable)")
    p.add_argument("--cuts", required=True, help="lhotse cuts whose supervision texts are the true transcripts")
    p.add_argument("--words", required=True, help="words.txt of the lattices' word ids")
    p.add_argument("--nbest", type=int, default=10, help="N: paths of each utterance's n-best list (default: %(default)s)")
    p.add_argument("--acoustic-scale", type=float, default=1.0,
                   help="scale of the lattices' acoustic costs when ranking paths (default: %(default)s)")
    p.add_argument("--lm-scale", type=float, default=1.0,
                   help="scale of the lattices' graph costs when ranking paths (default: %(default)s)")
    p.add_argument("--output", required=True, help="the report, markdown, e.g. exp/semisup/supervision.md")


def run(a) -> None:
    print(supervision_report(a.kinds, a.cuts, a.words, a.nbest, a.lm_scale, a.acoustic_scale, a.output), end="")
