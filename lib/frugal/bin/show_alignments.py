"""Print frame alignments (frugal.decode.align files) with phone names, like Kaldi's show-alignments.

Per utterance: ``uttid [ pdf pdf ... ] [ ... ]`` (the pdf ids of each phone instance),
``uttid PHONE PHONE ...`` (each name padded to its group), with --words a line of
``WORD@start_seconds``, with --times one line ``uttid phone start end`` (seconds) per
phone instance, then an empty line.
"""
from __future__ import annotations

import sys

from frugal.decode.align import show_alignments


def add_arguments(p) -> None:
    p.add_argument("--alignments", nargs="+", required=True, help="alignment files (torch, from frugal.decode.align)")
    p.add_argument("--lang", required=True, help="lang directory (phones.txt, words.txt)")
    p.add_argument("--pdf-map", help="pdf_map.txt: check that every pdf belongs to its aligned phone")
    p.add_argument("--frame-shift", type=float,
                   help="seconds per alignment frame (default: the file's, e.g. 0.03 for chain models)")
    p.add_argument("--words", action="store_true", help="also print the words with their start times")
    p.add_argument("--times", action="store_true", help="also print 'uttid phone start end' per phone")


def run(args) -> None:
    for text in show_alignments(args.alignments, args.lang, args.pdf_map, args.frame_shift, args.words, args.times):
        sys.stdout.write(text)
