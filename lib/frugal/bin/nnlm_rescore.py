"""Rescore lattices N times with a neural LM under Monte-Carlo dropout (n-best rescoring, LM uncertainty).

For each utterance, the K best word sequences of its lattice (--nbest) have their n-gram LM
cost (--old-lm, the ARPA LM of the decoding graph) replaced by the neural LM's cost of one
dropout sample: graph cost - old-lm-scale * n-gram cost + new-lm-scale * neural cost. Each
of the --samples samples gives one rescored (determinised) lattice file. Dropout masks are
seeded from --seed and the utterance id, so a run is reproducible. See
frugal.semisup.lattices.

Outputs: OUT_PREFIX.1 .. OUT_PREFIX.N (Kaldi text), or X.1.pt .. X.N.pt for OUT_PREFIX X.pt
(binary).

  frugal nnlm-rescore --lattices exp/decode_unsup/lat.1.pt --nnlm exp/nnlm/model.pt \\
      --old-lm data/lm/lm.arpa --words data/lang/words.txt --samples 4 --seed 1 --nbest 100 \\
      --output exp/lm_unc/lat.1.pt
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Dict, List

from tqdm import tqdm

from frugal.lattice.lattice import Lattice
from frugal.lattice.io import BINARY_SUFFIX, read_lattices, write_lattices
from frugal.lattice.rescore import BackoffLm
from frugal.errors import FrugalError
from frugal.lang.symbols import SymbolTable
from frugal.semisup.lattices import NbestRescoreConfig, nnlm_rescore, utterance_seed

log = logging.getLogger(__name__)


def output_paths(prefix: str, num_samples: int) -> List[Path]:
    """OUT_PREFIX.i, or X.i.pt for X.pt (i = 1 .. num_samples)."""
    if prefix.endswith(BINARY_SUFFIX):
        stem = prefix[:-len(BINARY_SUFFIX)]
        return [Path(f"{stem}.{i}{BINARY_SUFFIX}") for i in range(1, num_samples + 1)]
    return [Path(f"{prefix}.{i}") for i in range(1, num_samples + 1)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="frugal nnlm-rescore", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[1:]))
    parser.add_argument("--lattices", required=True, help="input lattice file (Kaldi text, or binary .pt)")
    parser.add_argument("--nnlm", required=True, help="neural LM checkpoint (frugal train-nnlm)")
    parser.add_argument("--old-lm", required=True, help="ARPA LM whose costs the lattices carry")
    parser.add_argument("--words", required=True, help="words.txt of the lattices")
    parser.add_argument("--samples", type=int, default=1, help="dropout samples N (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    parser.add_argument("--nbest", type=int, default=100, help="paths rescored per lattice (default: %(default)s)")
    parser.add_argument("--old-lm-scale", type=float, default=1.0, help="default: %(default)s")
    parser.add_argument("--new-lm-scale", type=float, default=1.0, help="default: %(default)s")
    parser.add_argument("--acoustic-scale", type=float, default=1.0,
                        help="scale ranking the n-best list (default: %(default)s)")
    parser.add_argument("--lm-scale", type=float, default=1.0,
                        help="graph-cost scale ranking the n-best list (default: %(default)s)")
    parser.add_argument("--no-dropout", action="store_true",
                        help="score with the deterministic LM (needs --samples 1)")
    parser.add_argument("--device", default="cpu", help="device of the neural LM (default: %(default)s)")
    parser.add_argument("--output", required=True, help="OUT_PREFIX of the N output files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.samples < 1:
        raise FrugalError(f"--samples must be >= 1, got {args.samples}")
    if args.nbest < 1:
        raise FrugalError(f"--nbest must be >= 1, got {args.nbest}")
    if args.no_dropout and args.samples != 1:
        raise FrugalError("--no-dropout gives identical samples: use --samples 1")
    from frugal.graph.compile import make_grammar_fst
    from frugal.lm.neural import NeuralLm
    words = SymbolTable.read(args.words)
    old_lm = BackoffLm(make_grammar_fst(args.old_lm, args.words))
    lm = NeuralLm.load(args.nnlm, device=args.device)
    lats = read_lattices(args.lattices)
    config = NbestRescoreConfig(args.nbest, args.old_lm_scale, args.new_lm_scale, args.lm_scale,
                                args.acoustic_scale)
    outs: List[Dict[str, Lattice]] = [{} for _ in range(args.samples)]
    for key, lat in tqdm(lats.items(), desc="nnlm-rescore", unit="lat", disable=None, leave=False):
        for out, rescored in zip(outs, nnlm_rescore(lat, lm, old_lm, words, args.samples,
                                                    utterance_seed(args.seed, key), not args.no_dropout,
                                                    config)):
            out[key] = rescored
    for path, out in zip(output_paths(args.output, args.samples), outs):
        write_lattices(path, out)
    log.info("rescored %d lattices %d times: %s", len(lats), args.samples,
             " ".join(str(p) for p in output_paths(args.output, args.samples)))
    return 0
