"""Score a decode directory's lattices over LM weights and insertion penalties (Kaldi's score_kaldi.sh).

For each LMWT in --lmwt MIN:MAX and WIP in --wip, the best path of every lattice with graph
scale 1, acoustic scale 1/LMWT and WIP added per word is scored against the references:
DECODE_DIR/wer_LMWT_WIP (compute-wer reports), penalty_WIP/LMWT.txt (the hypotheses),
best_wer, and wer_details/{per_utt,ops,wer_bootci,lmwt,wip} of the best setting.

With --dev-decode-dir (a decode of the dev set scored before), the setting that was best on
dev is the one reported for this set, as Kaldi's recipes report test sets; it is written to
DECODE_DIR/wer_dev_setting. With --results, the (model, data, graph) row of a recipe's
RESULTS.md is added or replaced (frugal write-results does the same from scored directories).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import List, Optional

from tqdm import tqdm

from frugal.decode.best_paths import (SweepHypotheses, parse_float_list, parse_lmwt_range,
                                      read_decode_dir_lattices, read_setting, refs_from_cuts)
from frugal.decode.scoring import read_text, score_sweep, update_results_table
from frugal.errors import FrugalError
from frugal.fileio import atomic_write_text
from frugal.lang.symbols import SymbolTable

log = logging.getLogger("frugal.score_lattices")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="frugal score-lattices", description=__doc__.split("\n")[0],
                                epilog=__doc__.split("\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--decode-dir", required=True, help="directory of frugal decode (lat.J.pt, num_jobs, .done)")
    ref = p.add_mutually_exclusive_group(required=True)
    ref.add_argument("--ref-cuts", help="lhotse cuts whose supervision texts are the references")
    ref.add_argument("--ref", help="reference Kaldi text file (uttid w1 w2 ...)")
    p.add_argument("--words", required=True, help="words.txt of the decoding graph")
    p.add_argument("--lmwt", default="7:17", help="LM weights MIN:MAX (default: %(default)s)")
    p.add_argument("--wip", default="0.0,0.5,1.0",
                   help="word insertion penalties, comma-separated (default: %(default)s)")
    p.add_argument("--dev-decode-dir", help="scored dev decode directory whose best setting is reported")
    p.add_argument("--bootstrap-replications", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--results", help="RESULTS.md to update (needs --model-name, --data-name, --graph-name)")
    p.add_argument("--model-name", help="model column of RESULTS.md, e.g. tdnnf")
    p.add_argument("--data-name", help="data column, e.g. test")
    p.add_argument("--graph-name", help="graph column, e.g. tgsmall")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.results and not (args.model_name and args.data_name and args.graph_name):
        raise FrugalError("--results needs --model-name, --data-name and --graph-name")
    if args.bootstrap_replications < 1:
        raise FrugalError("--bootstrap-replications must be at least 1")
    lmwts = parse_lmwt_range(args.lmwt)
    wips = parse_float_list(args.wip, "--wip")
    decode_dir = Path(args.decode_dir)
    dev_setting = read_setting(Path(args.dev_decode_dir)) if args.dev_decode_dir else None
    refs = refs_from_cuts(args.ref_cuts) if args.ref_cuts else read_text(args.ref)
    lattices = read_decode_dir_lattices(decode_dir)
    words = SymbolTable.read(args.words)
    with tqdm(total=len(lmwts) * len(wips), desc="score", unit="setting") as bar:
        hyps = SweepHypotheses(lattices, words, lmwts, wips, progress=bar.update)
        sweep = score_sweep(refs, hyps, out_dir=decode_dir,
                            bootstrap_replications=args.bootstrap_replications, seed=args.seed)
    print(sweep.best_wer_line(decode_dir))
    counts, setting = sweep.best_result.counts, sweep.best
    if dev_setting is not None:
        key = dev_setting
        if key not in sweep.counts:
            raise FrugalError(f"--dev-decode-dir {args.dev_decode_dir}: its best setting lmwt={key[0]} "
                              f"wip={key[1]} is not among --lmwt {args.lmwt} --wip {args.wip}")
        counts, setting = sweep.counts[key], key
        line = (f"{counts.wer_line()} lmwt={key[0]} wip={key[1]} (best on {args.dev_decode_dir})")
        atomic_write_text(decode_dir / "wer_dev_setting", line + "\n")
        print(line)
    if args.results:
        update_results_table(args.results, args.model_name, args.data_name, args.graph_name,
                             counts, setting)
        log.info("updated %s: %s %s %s %%WER %.2f", args.results, args.model_name, args.data_name,
                 args.graph_name, counts.wer)
    return 0
