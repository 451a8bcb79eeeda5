"""Write the transcripts of a lhotse cut manifest as a Kaldi text file (cut id, then its words).

A cut's words are its supervisions' texts joined, as the decoders and scoring see them;
the file feeds frugal make-word-lm --text and frugal score --ref.
"""
from __future__ import annotations

import argparse
from typing import List, Optional

from frugal.decode.best_paths import refs_from_cuts
from frugal.decode.scoring import write_text


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="frugal cuts-to-text", description=__doc__.split("\n")[0])
    p.add_argument("--cuts", required=True, help="lhotse cut manifest (.jsonl.gz)")
    p.add_argument("--output", required=True, help="Kaldi text file to write")
    args = p.parse_args(argv)
    write_text(args.output, refs_from_cuts(args.cuts))
    return 0
