"""Write the transcripts of a lhotse cut manifest as a Kaldi text file (cut id, then its words).

A cut's words are its supervisions' texts joined, as the decoders and scoring see them;
the file feeds frugal make-word-lm --text and frugal score --ref.
"""
from __future__ import annotations

from frugal.data.cuts import read_transcripts
from frugal.lang.text import write_text


def add_arguments(p) -> None:
    p.add_argument("--cuts", required=True, help="lhotse cut manifest (.jsonl.gz)")
    p.add_argument("--output", required=True, help="Kaldi text file to write")


def run(args) -> None:
    write_text(args.output, read_transcripts(args.cuts))
