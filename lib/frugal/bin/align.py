"""Viterbi-align cuts with a chain model through their numerator graphs (transcripts + lexicon).

For each cut, the model's chain output (the LF-MMI training output, 1/3 frame rate) is
aligned to the flat-start numerator graph of its transcript (all pronunciations, optional
silence, normalised by the den graph as in training) with the Viterbi algorithm. The
alignments (pdf, phone and word per output frame) go into one file
(frugal.decode.align.save_alignments) that `frugal show-alignments` prints. Cuts whose
transcript cannot be aligned in their number of frames are kept with score -inf and
counted in the log.
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from tqdm import tqdm

from frugal.decode.align import Alignment, align, save_alignments
from frugal.errors import FrugalError
from frugal.graph.chain import ChainDenGraph, ChainLexicon, NumeratorBuilder
from frugal.models import load_model
from frugal.train.data import FeatureDataset, load_cuts

log = logging.getLogger("frugal.bin.align")


def batches_by_duration(cuts: Sequence, max_duration: float) -> List[list]:
    """Consecutive groups of cuts (sorted by duration) with at most max_duration seconds each."""
    out: List[list] = []
    total = 0.0
    for c in sorted(cuts, key=lambda c: (c.duration, c.id)):
        if out and total + c.duration <= max_duration:
            out[-1].append(c)
            total += c.duration
        else:
            out.append([c])
            total = c.duration
    return out


def align_cuts(model_path: str, lang: str, den_graph: str, cuts: Sequence, max_duration: float,
               device: str = "cpu", progress: bool = True) -> List[Alignment]:
    """Alignments of ``cuts`` (in the given order)."""
    model = load_model(model_path, map_location=device)
    den = ChainDenGraph.load(den_graph)
    num_out = model.config.num_pdfs
    if num_out != den.num_pdfs:
        raise FrugalError(f"--model {model_path} has {num_out} outputs but --den-graph {den_graph} "
                          f"has {den.num_pdfs} pdfs")
    builder = NumeratorBuilder(ChainLexicon.from_lang_dir(lang), den.pdf_map, den.graph)
    dataset = FeatureDataset()
    by_id = {}
    groups = batches_by_duration(cuts, max_duration)
    for group in tqdm(groups, desc="align", disable=not progress):
        batch = dataset[group]
        graphs = builder.build_batch([t.split() for t in batch["texts"]])
        with torch.no_grad():
            chain, _, out_lens = model(batch["features"].to(device), batch["feature_lens"].to(device))
        for a in align(chain, out_lens, graphs, batch["cut_ids"]):
            by_id[a.id] = a
    return [by_id[c.id] for c in cuts]


def _align_job(args) -> List[Alignment]:
    torch.set_num_threads(1)  # one process a core
    return align_cuts(*args, progress=False)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="frugal align", description=__doc__.split("\n")[0],
                                epilog=__doc__.split("\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model checkpoint, e.g. exp/tdnnf_seed/final.pt")
    p.add_argument("--cuts", required=True, help="lhotse cuts with features and transcripts")
    p.add_argument("--lang", required=True, help="lang directory (lexicon of the numerators)")
    p.add_argument("--den-graph", required=True, help="den.pt the model was trained with")
    p.add_argument("--output", required=True, help="alignment file, e.g. exp/tdnnf_seed/ali_train.pt")
    p.add_argument("--nj", type=int, default=1, help="parallel processes (each aligns a share of the cuts)")
    p.add_argument("--max-duration", type=float, default=200.0, help="seconds of audio a batch")
    p.add_argument("--device", default="cpu", help="cpu or cuda (with --nj 1)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.nj < 1:
        raise FrugalError(f"--nj {args.nj}: must be at least 1")
    if args.max_duration <= 0:
        raise FrugalError(f"--max-duration {args.max_duration}: must be positive")
    for opt in ("model", "den_graph"):
        if not Path(getattr(args, opt)).is_file():
            raise FrugalError(f"--{opt.replace('_', '-')} {getattr(args, opt)}: no such file")
    cuts = list(load_cuts(args.cuts, where=f"--cuts {args.cuts}"))
    if not cuts:
        raise FrugalError(f"--cuts {args.cuts}: no cuts")
    common = (args.model, args.lang, args.den_graph)
    if args.nj == 1:
        alignments = align_cuts(*common, cuts, args.max_duration, args.device)
    else:
        shares = [cuts[j::args.nj] for j in range(args.nj)]
        with multiprocessing.get_context("spawn").Pool(args.nj) as pool:
            results = pool.map(_align_job, [(*common, s, args.max_duration, args.device) for s in shares])
        by_id = {a.id: a for r in results for a in r}
        alignments = [by_id[c.id] for c in cuts]
    model = load_model(args.model)
    frame_shift = float(cuts[0].frame_shift or 0.01) * model.config.subsampling_factor
    save_alignments(args.output, alignments, frame_shift)
    failed = [a.id for a in alignments if a.score == float("-inf")]
    log.info("wrote %s: %d alignments, %d without a path%s", args.output, len(alignments), len(failed),
             f" (e.g. {failed[0]})" if failed else "")
    return 0
