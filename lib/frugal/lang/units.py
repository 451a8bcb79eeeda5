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
from frugal.lang.lang import Lang
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


class UnitCodec:
    """Words <-> token ids of a `frugal prepare-units` lang directory (transducers' units).

    A word is its lexicon pronunciation (the likeliest, for a lexicon with several); a word
    not in the lexicon is spelled as prepare-units spells words (characters, or the pieces
    of bpe.model), the OOV word itself as ``<unk>``. Token ids back to words: the token
    strings joined, split at the word boundary ``▁``; ``<unk>`` comes out as the OOV word.
    """

    def __init__(self, lang_dir: PathLike) -> None:
        lang = Lang(lang_dir, need=("phones.txt", "words.txt", "lexiconp.txt", "tokens.txt"))
        self.lang_dir = lang.path
        table = lang.phones
        if table.get(BLANK) != 0:
            raise BadValue("lang", str(lang_dir), f"token 0 is not {BLANK}: not a frugal prepare-units directory")
        self.tokens = [table.symbol(i) for i in range(max(lang.units()) + 1)]
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        best = {}
        for p in lang.lexicon().prons:
            if p.word not in best or p.prob > best[p.word].prob:
                best[p.word] = p
        self.prons = {w: tuple(table[x] for x in p.phones) for w, p in best.items()}
        self.oov = lang.oov
        self.unk = table.get(UNK)
        bpe = self.lang_dir / "bpe.model"
        self.bpe_model = bpe if bpe.is_file() else None

    @property
    def vocab_size(self) -> int:
        """Token ids are 0 (blank) .. vocab_size - 1."""
        return len(self.tokens)

    def _spell(self, word: str) -> tuple:
        lexicon = bpe_lexicon([word], self.bpe_model) if self.bpe_model else char_lexicon([word], self.tokens)
        pieces = lexicon.prons_of(word)[0].phones
        return tuple(self.ids.get(x, self.unk) for x in pieces)

    def encode(self, words: Sequence[str]) -> List[int]:
        out: List[int] = []
        for w in words:
            pron = self.prons.get(w)
            if pron is None:
                pron = self._spell(w)
                self.prons[w] = pron
            out.extend(pron)
        return out

    def decode(self, ids: Sequence[int]) -> List[str]:
        pieces = []
        for i in ids:
            if i == self.unk and self.oov is not None:
                pieces.append(f"{WORD_BOUNDARY}{self.oov}{WORD_BOUNDARY}")
            else:
                pieces.append(self.tokens[i])
        return "".join(pieces).replace(WORD_BOUNDARY, " ").split()
