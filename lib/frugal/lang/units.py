"""Acoustic units for CTC: characters or sentencepiece BPE pieces, and their token tables.

Both mark the start of each word with the boundary token ``▁`` (U+2581, sentencepiece's
convention), so that a word's token sequence does not depend on its neighbours and a
lexicon (word -> tokens) can be written for decoding graphs. Token tables have the CTC
blank ``<blk>`` at id 0; ``<unk>`` stands for characters or pieces not seen in training.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import List, Sequence

from frugal.errors import BadValue
from frugal.fileio import PathLike
from frugal.lang.lexicon import Lexicon, Pron, check_phone

log = logging.getLogger(__name__)

WORD_BOUNDARY = "\u2581"
BLANK = "<blk>"
UNK = "<unk>"
SOS_EOS = "<sos/eos>"


def char_tokens(transcripts: Sequence[Sequence[str]]) -> List[str]:
    """The character token list: <blk>, <unk>, the boundary, then the characters sorted."""
    chars = sorted({c for words in transcripts for w in words for c in w} - {WORD_BOUNDARY})
    for c in chars:
        check_phone(c, f"character {c!r} of the transcripts")
    return [BLANK, UNK, WORD_BOUNDARY] + chars


def char_lexicon(words: Sequence[str], tokens: Sequence[str]) -> Lexicon:
    """Each word spelled as the boundary token then its characters (unknown ones as <unk>)."""
    known = set(tokens)
    return Lexicon(Pron(w, (WORD_BOUNDARY,) + tuple(c if c in known else UNK for c in w))
                   for w in sorted(set(words)))


def train_bpe(transcripts: Sequence[Sequence[str]], vocab_size: int, model_path: PathLike) -> None:
    """Train a sentencepiece BPE model; ids 0, 1, 2 are <blk>, <sos/eos>, <unk>."""
    import sentencepiece as spm

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "text"
        corpus.write_text("".join(" ".join(w) + "\n" for w in transcripts if w), encoding="utf-8")
        prefix = Path(tmp) / "bpe"
        try:
            spm.SentencePieceTrainer.train(
                input=str(corpus), model_prefix=str(prefix), model_type="bpe",
                vocab_size=vocab_size, character_coverage=1.0,
                user_defined_symbols=[BLANK, SOS_EOS], unk_id=2, bos_id=-1, eos_id=-1,
                input_sentence_size=10_000_000, shuffle_input_sentence=True,
                minloglevel=2)
        except RuntimeError as e:
            reason = str(e).strip().splitlines()[-1]
            raise BadValue("vocab_size", vocab_size, f"sentencepiece failed: {reason}") from None
        Path(model_path).write_bytes(prefix.with_suffix(".model").read_bytes())


def bpe_tokens(model_path: PathLike) -> List[str]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def bpe_lexicon(words: Sequence[str], model_path: PathLike) -> Lexicon:
    """Each word as its BPE pieces (the first one starts with the boundary)."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    return Lexicon(Pron(w, tuple(sp.encode(w, out_type=str))) for w in sorted(set(words)))
