"""Make CTC units (characters or sentencepiece BPE) from transcripts: tokens.txt, bpe.model and a lang dir.

The output is also a lang directory (tokens play the role of phones, no optional silence),
usable by `frugal compile-graph --topo ctc` and `frugal train --objective ctc`.
"""
from __future__ import annotations

from frugal.graph.prepare_lang import prepare_units


def add_arguments(p) -> None:
    p.add_argument("--text", required=True, help="Kaldi text file (uttid word word ...)")
    p.add_argument("--unit", choices=["char", "bpe"], required=True)
    p.add_argument("--vocab-size", type=int, default=500, help="BPE vocabulary size (default 500)")
    p.add_argument("--oov", default="<UNK>", help="OOV word, spelled as the <unk> token (default <UNK>)")
    p.add_argument("--output-dir", required=True)


def run(args) -> None:
    prepare_units(args.text, args.unit, args.output_dir, args.vocab_size, args.oov)
