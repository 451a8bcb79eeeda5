"""Print frame alignments (frugal.decode.align files) with phone names, like Kaldi's show-alignments.

Per utterance: ``uttid [ pdf pdf ... ] [ ... ]`` (the pdf ids of each phone instance),
``uttid PHONE PHONE ...`` (each name padded to its group), with --words a line of
``WORD@start_seconds``, with --times one line ``uttid phone start end`` (seconds) per
phone instance, then an empty line.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from frugal.decode.align import format_alignment, load_alignments
from frugal.errors import FrugalError, where
from frugal.lang.symbols import SymbolTable


def read_pdf_phones(path: str, phones: SymbolTable) -> dict:
    """pdf id -> phone id from a pdf_map.txt (``left phone pdf_class pdf_id`` lines)."""
    if not Path(path).is_file():
        raise FrugalError(f"--pdf-map {path}: no such file")
    out = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        f = line.split()
        if not f:
            continue
        if len(f) != 4 or not f[3].isdigit() or f[1] not in phones:
            raise FrugalError(f"{where(path, n)}: expected 'left phone pdf_class pdf_id' with phones of phones.txt")
        out[int(f[3])] = phones[f[1]]
    return out


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="frugal show-alignments", description=__doc__.split("\n")[0],
                                epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--alignments", nargs="+", required=True, help="alignment files (torch, from frugal.decode.align)")
    p.add_argument("--lang", required=True, help="lang directory (phones.txt, words.txt)")
    p.add_argument("--pdf-map", help="pdf_map.txt: check that every pdf belongs to its aligned phone")
    p.add_argument("--frame-shift", type=float,
                   help="seconds per alignment frame (default: the file's, e.g. 0.03 for chain models)")
    p.add_argument("--words", action="store_true", help="also print the words with their start times")
    p.add_argument("--times", action="store_true", help="also print 'uttid phone start end' per phone")
    args = p.parse_args(argv)
    lang = Path(args.lang)
    for name in ("phones.txt", "words.txt"):
        if not (lang / name).is_file():
            raise FrugalError(f"--lang {lang}: no {name}")
    phones = SymbolTable.read(lang / "phones.txt")
    words = SymbolTable.read(lang / "words.txt")
    pdf_phone = read_pdf_phones(args.pdf_map, phones) if args.pdf_map else None
    for path in args.alignments:
        if not Path(path).is_file():
            raise FrugalError(f"--alignments {path}: no such file")
        alignments, file_shift = load_alignments(path)
        shift = args.frame_shift if args.frame_shift is not None else file_shift
        for a in alignments:
            if pdf_phone is not None:
                for t, (pdf, ph) in enumerate(zip(a.pdfs, a.phones)):
                    if pdf_phone.get(pdf) != ph:
                        raise FrugalError(f"{path}: utterance {a.id} frame {t}: pdf {pdf} is not a pdf of "
                                          f"phone {phones.symbol(ph)} in {args.pdf_map}")
            if a.score == float("-inf"):
                print(f"{a.id} (no alignment)\n")
                continue
            text = format_alignment(a, phones.symbol, words.symbol if args.words else None,
                                    shift, args.times)
            sys.stdout.write(text + "\n\n")
    return 0
