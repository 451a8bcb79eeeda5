"""Pronunciation lexicons in Kaldi's formats, their validation and disambiguation.

``lexicon.txt``: ``WORD p1 p2 ...``; ``lexiconp.txt``: ``WORD prob p1 p2 ...`` where
``prob`` is in (0, 1] and, as in Kaldi, the most likely pronunciation of a word has 1.0
(the lexicon FST charges -log(prob) for a pronunciation).
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from frugal.errors import FrugalError, where
from frugal.fileio import PathLike, atomic_write_text

log = logging.getLogger(__name__)

# Symbols that must never be words of a lexicon: they are special in words.txt.
RESERVED_WORDS = frozenset({"<eps>", "#0", "<s>", "</s>"})
_DISAMBIG_LIKE = re.compile(r"^#")


@dataclass(frozen=True)
class Pron:
    """One lexicon entry: a word, its pronunciation (a phone tuple) and the pronunciation's probability."""

    word: str
    phones: Tuple[str, ...]
    prob: float = 1.0


class Lexicon:
    """An ordered list of pronunciations; a word may have several."""

    def __init__(self, prons: Iterable[Pron] = ()):
        self.prons: List[Pron] = []
        self._by_word: Dict[str, List[Pron]] = {}
        for p in prons:
            self.add(p)

    def add(self, pron: Pron) -> bool:
        """Add ``pron`` unless the same (word, phones) is already there; True if added."""
        known = self._by_word.setdefault(pron.word, [])
        if any(k.phones == pron.phones for k in known):
            return False
        known.append(pron)
        self.prons.append(pron)
        return True

    def words(self) -> List[str]:
        """Words in order of first appearance."""
        return list(self._by_word)

    def phones(self) -> Set[str]:
        return {ph for p in self.prons for ph in p.phones}

    def prons_of(self, word: str) -> List[Pron]:
        return list(self._by_word.get(word, []))

    def __contains__(self, word: str) -> bool:
        return word in self._by_word

    def __len__(self) -> int:
        return len(self.prons)

    def to_text(self, with_probs: bool = False) -> str:
        lines = []
        for p in self.prons:
            prob = f" {p.prob:g}" if with_probs else ""
            lines.append(f"{p.word}{prob} {' '.join(p.phones)}".rstrip() + "\n")
        return "".join(lines)

    def write(self, path: PathLike, with_probs: bool = False) -> None:
        atomic_write_text(path, self.to_text(with_probs))


def check_phone(phone: str, place: str) -> None:
    """Raise FrugalError if ``phone`` cannot be a phone (``place`` names file:line for the message)."""
    if _DISAMBIG_LIKE.match(phone):
        raise FrugalError(f"{place}: phone {phone!r} starts with '#', which is reserved for "
                          "disambiguation symbols")
    if phone in ("<eps>", "<blk>"):
        raise FrugalError(f"{place}: phone {phone!r} is reserved (id 0 of the phone table)")
    if not phone.isprintable():
        raise FrugalError(f"{place}: phone {phone!r} contains a non-printable character")


def check_word(word: str, place: str) -> None:
    if word in RESERVED_WORDS or _DISAMBIG_LIKE.match(word):
        raise FrugalError(f"{place}: word {word!r} is reserved in words.txt")
    if not word.isprintable():
        raise FrugalError(f"{place}: word {word!r} contains a non-printable character")


def read_lexicon(path: PathLike, with_probs: Optional[bool] = None,
                 drop_empty: bool = False) -> Lexicon:
    """Read and validate a Kaldi lexicon.

    ``with_probs=None`` reads a probability column if the file is named ``lexiconp.txt``.
    A word without pronunciation is an error naming file, line and word, unless
    ``drop_empty`` (then it is left out with a warning, and its occurrences in
    transcripts become the OOV word). Repeated identical entries are kept once.
    """
    path = Path(path)
    if with_probs is None:
        with_probs = path.name == "lexiconp.txt"
    lexicon = Lexicon()
    num_dups = 0
    dropped: List[str] = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise FrugalError(f"{path}: cannot read lexicon: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise FrugalError(f"{path}: not UTF-8 text ({e.reason})") from None
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        place = where(path, n)
        word, rest = fields[0], fields[1:]
        check_word(word, place)
        prob = 1.0
        if with_probs:
            if not rest:
                raise FrugalError(f"{place}: word {word!r} has no probability and no pronunciation")
            try:
                prob = float(rest[0])
            except ValueError:
                raise FrugalError(f"{place}: word {word!r}: probability {rest[0]!r} is not a number") from None
            if not (0.0 < prob <= 1.0) or math.isnan(prob):
                raise FrugalError(f"{place}: word {word!r}: probability {rest[0]} is not in (0, 1]")
            rest = rest[1:]
        if not rest:
            if drop_empty:
                dropped.append(word)
                continue
            raise FrugalError(f"{place}: word {word!r} has no pronunciation")
        for ph in rest:
            check_phone(ph, place)
        if not lexicon.add(Pron(word, tuple(rest), prob)):
            num_dups += 1
    if num_dups:
        log.warning("%s: %d repeated (word, pronunciation) entries kept once", path, num_dups)
    if dropped:
        log.warning("%s: %d words without pronunciation dropped (they map to the OOV word): %s",
                    path, len(dropped), " ".join(dropped[:10]) + (" ..." if len(dropped) > 10 else ""))
    if not lexicon.prons:
        raise FrugalError(f"{path}: lexicon has no entries")
    return lexicon


def add_oov_word(lexicon: Lexicon, oov: str, oov_phone: str) -> None:
    """Give the OOV word its own one-phone pronunciation unless the lexicon has one."""
    if oov not in lexicon:
        lexicon.add(Pron(oov, (oov_phone,)))


def map_oov_words(words: Sequence[str], vocabulary, oov: Optional[str],
                  place: str = "transcript") -> List[str]:
    """Replace words outside ``vocabulary`` by ``oov``; with ``oov=None`` an unknown word is an error."""
    out = []
    for w in words:
        if w in vocabulary:
            out.append(w)
        elif oov is None:
            raise FrugalError(f"{place}: word {w!r} is not in the lexicon (no OOV word given)")
        else:
            out.append(oov)
    return out


def add_disambig_symbols(lexicon: Lexicon) -> Tuple[List[Tuple[Pron, Optional[int]]], int]:
    """Kaldi's add_lex_disambig.pl: make phone sequences of different words unambiguous.

    A pronunciation gets a disambiguation symbol #n (n >= 1; #0 is the LM's backoff
    symbol) if it is shared by several entries (homophones) or is a proper prefix of
    another pronunciation. Entries sharing a sequence get #1, #2, ... in order; the
    numbers restart for each sequence. Returns (pron, n or None) pairs in lexicon order
    and the largest n used (0 if none).
    """
    count: Dict[Tuple[str, ...], int] = {}
    prefixes: Set[Tuple[str, ...]] = set()
    for p in lexicon.prons:
        count[p.phones] = count.get(p.phones, 0) + 1
        for k in range(1, len(p.phones)):
            prefixes.add(p.phones[:k])
    last_used: Dict[Tuple[str, ...], int] = {}
    out: List[Tuple[Pron, Optional[int]]] = []
    max_disambig = 0
    for p in lexicon.prons:
        if count[p.phones] == 1 and p.phones not in prefixes:
            out.append((p, None))
            continue
        n = last_used.get(p.phones, 0) + 1
        last_used[p.phones] = n
        max_disambig = max(max_disambig, n)
        out.append((p, n))
    return out, max_disambig


def disambig_lexicon_text(entries: List[Tuple[Pron, Optional[int]]], with_probs: bool) -> str:
    lines = []
    for p, n in entries:
        prob = f" {p.prob:g}" if with_probs else ""
        dis = f" #{n}" if n is not None else ""
        lines.append(f"{p.word}{prob} {' '.join(p.phones)}{dis}\n")
    return "".join(lines)
