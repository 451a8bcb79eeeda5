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

from frugal.decode.align import align_file


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="model checkpoint, e.g. exp/tdnnf_seed/final.pt")
    p.add_argument("--cuts", required=True, help="lhotse cuts with features and transcripts")
    p.add_argument("--lang", required=True, help="lang directory (lexicon of the numerators)")
    p.add_argument("--den-graph", required=True, help="den.pt the model was trained with")
    p.add_argument("--output", required=True, help="alignment file, e.g. exp/tdnnf_seed/ali_train.pt")
    p.add_argument("--nj", type=int, default=1, help="parallel processes (each aligns a share of the cuts)")
    p.add_argument("--max-duration", type=float, default=200.0, help="seconds of audio a batch")
    p.add_argument("--device", default="cpu", help="cpu or cuda (with --nj 1)")


def run(args) -> None:
    align_file(args.model, args.cuts, args.lang, args.den_graph, args.output, args.nj, args.max_duration, args.device)
