"""What a lang directory holds: its symbol tables, lexicon, OOV word and disambiguation symbols.

`frugal.dirs.LangDir` says where the files are and checks that they are there; this is the
one reader of their contents, loaded on first use.
"""
from __future__ import annotations

from functools import cached_property
from typing import Dict, List, Optional, Sequence

from frugal.dirs import LangDir
from frugal.fileio import PathLike
from frugal.lang.lexicon import Lexicon, Pron, read_lexicon
from frugal.lang.symbols import SymbolTable


class Lang:
    """A lang directory's contents (``need``: the files that must be there)."""

    def __init__(self, path: PathLike, need: Sequence[str] = ("phones.txt", "words.txt")):
        self.dir = LangDir(path, need)
        self.path = self.dir.path

    @cached_property
    def phones(self) -> SymbolTable:
        return SymbolTable.read(self.dir.file("phones.txt"))

    @cached_property
    def words(self) -> SymbolTable:
        return SymbolTable.read(self.dir.file("words.txt"))

    @property
    def oov(self) -> Optional[str]:
        return self.dir.oov

    @cached_property
    def disambig(self) -> List[int]:
        """Phone-table ids of the disambiguation symbols #0, #1, ..."""
        return [self.phones[s] for s in self.dir.phone_class("disambig")]

    def units(self) -> List[int]:
        """Phone (or token) ids other than 0 and the disambiguation symbols, in id order."""
        dis = set(self.disambig)
        return sorted(i for _, i in self.phones if i != 0 and i not in dis)

    def lexicon(self) -> Lexicon:
        """lexiconp.txt: the pronunciations with their probabilities."""
        return read_lexicon(self.dir.file("lexiconp.txt"), with_probs=True)

    @cached_property
    def _phones_of_words(self) -> Dict[str, List[str]]:
        silence = set(self.dir.phone_class("silence"))
        best: Dict[str, Pron] = {}
        for p in self.lexicon().prons:
            if p.word not in best or p.prob > best[p.word].prob:
                best[p.word] = p
        return {w: [x for x in p.phones if x not in silence] for w, p in best.items()}

    def word_phones(self, words: Sequence[str]) -> List[str]:
        """The phones of a word sequence, for phone error rates: each word's likeliest
        pronunciation without silence phones; a word the lexicon lacks is the OOV word's."""
        table = self._phones_of_words
        oov = table.get(self.oov, []) if self.oov is not None else []
        return [x for w in words for x in table.get(w, oov)]
