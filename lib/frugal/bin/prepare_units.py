"""Make CTC units (characters or sentencepiece BPE) from transcripts: tokens.txt, bpe.model and a lang dir."""
from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from pathlib import Path
from typing import List, Optional

from frugal.errors import FrugalError
from frugal.lang.lang_dir import PhoneSet, write_lang_dir
from frugal.lang.lexicon import Pron
from frugal.lang.units import (BLANK, UNK, bpe_lexicon, bpe_tokens, char_lexicon, char_tokens,
                               read_transcripts, train_bpe)

log = logging.getLogger("frugal.prepare_units")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="frugal prepare-units", description=__doc__,
        epilog="The output is also a lang directory (tokens play the role of phones, "
               "no optional silence), usable by `frugal compile-graph --topo ctc`.")
    p.add_argument("--text", required=True, help="Kaldi text file (uttid word word ...)")
    p.add_argument("--unit", choices=["char", "bpe"], required=True)
    p.add_argument("--vocab-size", type=int, default=500, help="BPE vocabulary size (default 500)")
    p.add_argument("--oov", default="<UNK>", help="OOV word, spelled as the <unk> token (default <UNK>)")
    p.add_argument("--output-dir", required=True)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    transcripts = read_transcripts(args.text)
    words = sorted({w for ws in transcripts for w in ws} - {args.oov})
    with tempfile.TemporaryDirectory() as work:
        model = Path(work) / "bpe.model"
        if args.unit == "char":
            tokens = char_tokens(transcripts)
            lexicon = char_lexicon(words, tokens)
        else:
            if args.vocab_size < 4:
                raise FrugalError(f"--vocab-size {args.vocab_size}: too small")
            train_bpe(transcripts, args.vocab_size, model)
            tokens = bpe_tokens(model)
            lexicon = bpe_lexicon(words, model)
        if tokens[0] != BLANK:
            raise RuntimeError(f"token 0 is {tokens[0]!r}, not {BLANK}")
        lexicon.add(Pron(args.oov, (UNK,)))
        phones = PhoneSet(silence=[], nonsilence=list(tokens[1:]), optional_silence=None,
                          zero_symbol=BLANK)
        token_text = "".join(f"{t} {i}\n" for i, t in enumerate(tokens))

        def write_extra(tmp: Path) -> None:
            (tmp / "tokens.txt").write_text(token_text, encoding="utf-8")
            if args.unit == "bpe":
                shutil.copyfile(model, tmp / "bpe.model")

        write_lang_dir(args.output_dir, lexicon, phones, args.oov, sil_prob=0.0,
                       write_extra=write_extra)
    log.info("%s units: %d tokens (with %s) for %d words", args.unit, len(tokens), BLANK, len(words))
    return 0
