"""Combine lattices of the same utterances (dropout decodings, LM rescorings) into supervision lattices.

Each input is pruned with --beam and determinised, its cost is removed (--normalize: "best"
gives each input's best path cost 0, "total" removes its log-sum as Kaldi's lattice-combine,
"none" keeps it), the inputs are united, and the union is pruned and determinised (unless
--no-determinize): one path per word sequence with its best weight and alignment. See
frugal.semisup.lattices.

Inputs are all lattice files (the output is a file) or all directories (each output file
combines the files of the same name, matching --pattern, e.g. lat.1.pt .. lat.J.pt of each
decoding directory). An utterance missing from some inputs is combined from the others
(with a warning); the utterances are those of the first input.

  frugal combine-lattices --inputs exp/decode_unsup exp/decode_unsup_drop{1..4} --output exp/sup_am
  frugal combine-lattices --inputs lat.1.pt lm.1.1.pt lm.2.1.pt --output sup.1.pt --beam 4
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Dict, List

from tqdm import tqdm

from frugal.lattice.lattice import Lattice
from frugal.lattice.io import read_lattices, write_lattices
from frugal.errors import FrugalError
from frugal.semisup.lattices import DEFAULT_BEAM, NORMALIZE_MODES, combine_lattices

log = logging.getLogger(__name__)


def combine_files(inputs: List[Path], output: Path, args) -> None:
    lats = [read_lattices(p) for p in inputs]
    out: Dict[str, Lattice] = {}
    missing = 0
    for key in tqdm(lats[0], desc=output.name, unit="utt", disable=None, leave=False):
        these = [d[key] for d in lats if key in d]
        missing += len(lats) - len(these)
        out[key] = combine_lattices(these, args.beam, args.normalize, args.determinize,
                                    args.lm_scale, args.acoustic_scale, name=key)
    if missing:
        log.warning("%s: %d lattices missing from some inputs; combined the others", output, missing)
    extra = {k for d in lats[1:] for k in d} - set(lats[0])
    if extra:
        log.warning("%s: %d utterances not in the first input %s are left out", output, len(extra), inputs[0])
    write_lattices(output, out)
    log.info("%s: combined %d utterances from %d inputs", output, len(out), len(inputs))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="frugal combine-lattices", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[1:]))
    parser.add_argument("--inputs", nargs="+", required=True, help="lattice files, or directories of them")
    parser.add_argument("--output", required=True, help="output lattice file, or directory")
    parser.add_argument("--pattern", default="lat.*", help="lattice files in input directories (default: %(default)s)")
    parser.add_argument("--beam", type=float, default=DEFAULT_BEAM,
                        help="pruning beam for each input and the union (default: %(default)s; <= 0: no pruning)")
    parser.add_argument("--normalize", choices=NORMALIZE_MODES, default="best", help="default: %(default)s")
    parser.add_argument("--determinize", action=argparse.BooleanOptionalAction, default=True,
                        help="determinise the union (default: %(default)s)")
    parser.add_argument("--acoustic-scale", type=float, default=1.0, help="default: %(default)s")
    parser.add_argument("--lm-scale", type=float, default=1.0, help="graph-cost scale (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.beam is not None and args.beam <= 0:
        args.beam = None
    inputs = [Path(p) for p in args.inputs]
    for p in inputs:
        if not p.exists():
            raise FrugalError(f"--inputs: {p} does not exist")
    output = Path(args.output)
    if all(p.is_file() for p in inputs):
        combine_files(inputs, output, args)
        return 0
    if not all(p.is_dir() for p in inputs):
        raise FrugalError("--inputs: give only lattice files or only directories")
    names = sorted(f.name for f in inputs[0].glob(args.pattern) if f.is_file())
    if not names:
        raise FrugalError(f"--inputs: no lattice files matching {args.pattern!r} in {inputs[0]}")
    for p in inputs[1:]:
        lacking = [n for n in names if not (p / n).is_file()]
        if lacking:
            raise FrugalError(f"--inputs: {p} has no {lacking[0]} (as {inputs[0]} has)")
    output.mkdir(parents=True, exist_ok=True)
    for name in names:
        combine_files([p / name for p in inputs], output / name, args)
    return 0
