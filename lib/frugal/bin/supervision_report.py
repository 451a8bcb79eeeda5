"""N-best WER and SER of each kind of supervision lattice against the true transcripts (thesis table 3.4).

Each --kind NAME:PATH is one kind of supervision (regular, AM, LM, AM+LM uncertainty): a
lattice file, or a directory of them (the files matching --pattern, e.g. lat.1.pt .. lat.J.pt
of frugal combine-lattices). The references are the supervision texts of --cuts, e.g. the
true transcripts of the unsupervised part (which training never reads). For each kind, the
--nbest best word sequences of every utterance's lattice (ranked with --lm-scale on graph
costs and --acoustic-scale on acoustic costs) are scored against the reference; an
utterance's errors are averaged over its paths (frugal.semisup.lattices.nbest_error_rates).
Every utterance of the cuts must have a lattice in every kind; lattices of other utterances
are left out with a warning. The report (markdown) is written to --output and printed.

  frugal supervision-report --kind regular:exp/semisup/sup_regular --kind am:exp/semisup/sup_am \\
      --kind lm:exp/semisup/sup_lm --kind am_lm:exp/semisup/sup_am_lm \\
      --cuts data/fbank/mini_cuts_train_unsup.jsonl.gz --words data/lang/words.txt \\
      --nbest 4 --acoustic-scale 0.1 --output exp/semisup/supervision.md
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from tqdm import tqdm

from frugal.decode.best_paths import refs_from_cuts
from frugal.lattice.lattice import Lattice
from frugal.lattice.io import read_lattices
from frugal.errors import FrugalError
from frugal.fileio import atomic_write_text
from frugal.lang.symbols import SymbolTable
from frugal.semisup.lattices import supervision_report

log = logging.getLogger("frugal.supervision_report")


def parse_kind(text: str) -> Tuple[str, Path]:
    """NAME:PATH (the path may itself contain colons)."""
    name, sep, path = text.partition(":")
    if not sep or not name.strip() or not path:
        raise FrugalError(f"--kind {text!r}: expected NAME:LATTICES (a lattice file or directory), "
                          f"e.g. am:exp/semisup/sup_am")
    return name.strip(), Path(path)


def read_kind(name: str, path: Path, pattern: str) -> Dict[str, Lattice]:
    """uttid -> lattice of one kind: a lattice file, or the files matching ``pattern`` in a directory."""
    option = f"--kind {name}:{path}"
    if path.is_dir():
        files = sorted((f for f in path.glob(pattern) if f.is_file()), key=lambda f: f.name)
        if not files:
            raise FrugalError(f"{option}: no lattice files matching {pattern!r} in {path}")
    elif path.is_file():
        files = [path]
    else:
        raise FrugalError(f"{option}: no such lattice file or directory")
    lattices: Dict[str, Lattice] = {}
    first_file: Dict[str, Path] = {}
    for f in tqdm(files, desc=name, unit="file", disable=None, leave=False):
        for key, lat in read_lattices(f).items():
            if key in lattices:
                raise FrugalError(f"{f}: utterance '{key}' is also in {first_file[key]}")
            lattices[key], first_file[key] = lat, f
    if not lattices:
        raise FrugalError(f"{option}: no lattices")
    return lattices


def select_utterances(name: str, path: Path, lattices: Dict[str, Lattice], refs: Dict, cuts: str
                      ) -> Dict[str, Lattice]:
    """The lattices of the cuts' utterances (every one must have a lattice), in the cuts' order."""
    missing = [u for u in refs if u not in lattices]
    if missing:
        raise FrugalError(f"--kind {name}:{path}: {len(missing)} of the {len(refs)} utterances of {cuts} "
                          f"have no lattice (first: '{missing[0]}')")
    extra = [u for u in lattices if u not in refs]
    if extra:
        log.warning("--kind %s:%s: %d lattices of utterances not in %s are left out (first: '%s')",
                    name, path, len(extra), cuts, extra[0])
    return {u: lattices[u] for u in refs}


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="frugal supervision-report", description=__doc__.split("\n")[0],
                                epilog=__doc__.split("\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", dest="kinds", action="append", required=True, metavar="NAME:LATTICES",
                   help="a kind of supervision and its lattice file or directory (repeatable)")
    p.add_argument("--cuts", required=True, help="lhotse cuts whose supervision texts are the true transcripts")
    p.add_argument("--words", required=True, help="words.txt of the lattices' word ids")
    p.add_argument("--nbest", type=int, default=10,
                   help="N: paths of each utterance's n-best list (default: %(default)s)")
    p.add_argument("--acoustic-scale", type=float, default=1.0,
                   help="scale of the lattices' acoustic costs when ranking paths (default: %(default)s)")
    p.add_argument("--lm-scale", type=float, default=1.0,
                   help="scale of the lattices' graph costs when ranking paths (default: %(default)s)")
    p.add_argument("--pattern", default="lat.*", help="lattice files in directories (default: %(default)s)")
    p.add_argument("--output", required=True, help="the report, markdown, e.g. exp/semisup/supervision.md")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.nbest < 1:
        raise FrugalError(f"--nbest {args.nbest}: must be at least 1")
    if args.acoustic_scale <= 0 or args.lm_scale <= 0:
        raise FrugalError(f"--acoustic-scale {args.acoustic_scale:g} --lm-scale {args.lm_scale:g}: "
                          f"scales must be positive")
    specs = [parse_kind(k) for k in args.kinds]
    names = [name for name, _ in specs]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise FrugalError(f"--kind: the name {dup!r} is given twice")
    refs = refs_from_cuts(args.cuts)
    if not refs:
        raise FrugalError(f"{args.cuts}: no cuts")
    words = SymbolTable.read(args.words)
    kinds = {name: select_utterances(name, path, read_kind(name, path, args.pattern), refs, args.cuts)
             for name, path in specs}
    table = supervision_report(kinds, refs, words, args.nbest, args.lm_scale, args.acoustic_scale)
    report = (f"# Supervision lattices: {args.nbest}-best WER and SER against the true transcripts (table 3.4)\n\n"
              f"N = {args.nbest} best paths per utterance, ranked with LM scale {args.lm_scale:g} and acoustic "
              f"scale {args.acoustic_scale:g}; {len(refs)} utterances of {args.cuts}.\n\n"
              + table + "\n"
              + "".join(f"- {name}: {path}\n" for name, path in specs))
    atomic_write_text(args.output, report)
    print(report, end="")
    log.info("wrote %s", args.output)
    return 0
