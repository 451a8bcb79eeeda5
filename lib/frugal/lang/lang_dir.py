"""Write a Kaldi-like lang directory from a lexicon and a phone (or token) set.

Layout (Kaldi's prepare_lang.sh without position-dependent phones, which frugal does
not use: its acoustic units are context-dependent through the biphone C, not through
word-position variants)::

    phones.txt words.txt oov.txt oov.int
    lexicon.txt lexiconp.txt lexicon_disambig.txt lexiconp_disambig.txt
    phones/{silence,nonsilence,optional_silence,disambig,wdisambig}.txt (+ .int)
    phones/wdisambig_phones.int phones/wdisambig_words.int
    L.fst L_disambig.fst      (OpenFst binary, arcs sorted by output label)
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from frugal.errors import FrugalError
from frugal.fileio import PathLike, atomic_path
from frugal.fsa.openfst import fst_size
from frugal.graph.lexicon_fst import add_disambig_self_loops, make_lexicon_fst
from frugal.lang.lexicon import Lexicon, add_disambig_symbols, disambig_lexicon_text
from frugal.lang.symbols import SymbolTable

log = logging.getLogger(__name__)


@dataclass
class PhoneSet:
    """Kaldi's phone classes. ``optional_silence`` is what L inserts between words."""

    silence: List[str]
    nonsilence: List[str]
    optional_silence: Optional[str]
    zero_symbol: str = "<eps>"  # id 0 of the phone table; "<blk>" for CTC token tables

    def symbol_table(self) -> SymbolTable:
        table = SymbolTable([(self.zero_symbol, 0)])
        for p in self.silence + self.nonsilence:
            table.add(p)
        return table


def phone_set_for_lexicon(lexicon: Lexicon, sil_phone: str,
                          extra_silence: Sequence[str] = ()) -> PhoneSet:
    """Silence phones first (``sil_phone`` and e.g. the OOV phone), then the others sorted."""
    silence = [sil_phone] + [p for p in extra_silence if p != sil_phone]
    nonsilence = sorted(lexicon.phones() - set(silence))
    return PhoneSet(silence=silence, nonsilence=nonsilence, optional_silence=sil_phone)


def word_symbol_table(words: Sequence[str]) -> SymbolTable:
    """<eps> 0, the words sorted, then #0, <s>, </s> (Kaldi's words.txt)."""
    table = SymbolTable([("<eps>", 0)])
    for w in sorted(set(words)):
        table.add(w)
    for special in ("#0", "<s>", "</s>"):
        table.add(special)
    return table


def write_lang_dir(output_dir: PathLike, lexicon: Lexicon, phones: PhoneSet,
                   oov: str, sil_prob: float,
                   write_extra: Optional[Callable[[Path], None]] = None) -> None:
    """Write the whole lang directory to a temporary name, then rename it into place.

    ``write_extra(tmp_dir)`` may add files (e.g. tokens.txt, bpe.model) before the rename.
    """
    unknown = lexicon.phones() - set(phones.silence) - set(phones.nonsilence)
    if unknown:
        raise FrugalError(f"lexicon uses phones outside the phone set: {' '.join(sorted(unknown))}")
    if oov not in lexicon:
        raise FrugalError(f"--oov {oov!r}: the OOV word is not in the lexicon")
    if sil_prob > 0 and phones.optional_silence is None:
        raise FrugalError("--sil-prob > 0 needs an optional silence phone")
    phone_table = phones.symbol_table()
    entries, max_disambig = add_disambig_symbols(lexicon)
    # #0 is the LM backoff symbol; one more symbol separates optional silence in L_disambig.
    num_disambig = max_disambig + (1 if sil_prob > 0 else 0)
    disambig = [f"#{k}" for k in range(num_disambig + 1)]
    for d in disambig:
        phone_table.add(d)
    words = word_symbol_table(lexicon.words())

    sil_id = phone_table[phones.optional_silence] if phones.optional_silence else None
    sil_ids = {phone_table[p] for p in phones.silence}
    plain = [(words[p.word], [phone_table[x] for x in p.phones], p.prob) for p in lexicon.prons]
    with_disambig = [(words[p.word], [phone_table[x] for x in p.phones]
                      + ([phone_table[f"#{n}"]] if n is not None else []), p.prob)
                     for p, n in entries]
    L = make_lexicon_fst(plain, sil_id, sil_prob, sil_ids)
    L_disambig = make_lexicon_fst(with_disambig, sil_id, sil_prob, sil_ids,
                                  sil_disambig=phone_table[disambig[-1]] if sil_prob > 0 else None)
    add_disambig_self_loops(L_disambig, phone_table["#0"], words["#0"])
    log.info("L: %d states, %d arcs; L_disambig: %d states, %d arcs; %d disambiguation symbols",
             *fst_size(L), *fst_size(L_disambig), len(disambig))

    def lines(items) -> str:
        return "".join(f"{x}\n" for x in items)

    with atomic_path(output_dir, is_dir=True) as tmp:
        tmp = Path(tmp)
        (tmp / "phones").mkdir()
        (tmp / "phones.txt").write_text(phone_table.to_text(), encoding="utf-8")
        (tmp / "words.txt").write_text(words.to_text(), encoding="utf-8")
        (tmp / "oov.txt").write_text(f"{oov}\n", encoding="utf-8")
        (tmp / "oov.int").write_text(f"{words[oov]}\n")
        (tmp / "lexicon.txt").write_text(lexicon.to_text(False), encoding="utf-8")
        (tmp / "lexiconp.txt").write_text(lexicon.to_text(True), encoding="utf-8")
        (tmp / "lexicon_disambig.txt").write_text(disambig_lexicon_text(entries, False), encoding="utf-8")
        (tmp / "lexiconp_disambig.txt").write_text(disambig_lexicon_text(entries, True), encoding="utf-8")
        classes = {
            "silence": phones.silence,
            "nonsilence": phones.nonsilence,
            "optional_silence": [phones.optional_silence] if phones.optional_silence else [],
            "disambig": disambig,
            "wdisambig": ["#0"],
        }
        for name, syms in classes.items():
            (tmp / "phones" / f"{name}.txt").write_text(lines(syms), encoding="utf-8")
            (tmp / "phones" / f"{name}.int").write_text(lines(phone_table[s] for s in syms))
        (tmp / "phones" / "wdisambig_phones.int").write_text(f"{phone_table['#0']}\n")
        (tmp / "phones" / "wdisambig_words.int").write_text(f"{words['#0']}\n")
        for name, fst in (("L.fst", L), ("L_disambig.fst", L_disambig)):
            if not fst.write(str(tmp / name)):
                raise FrugalError(f"{output_dir}/{name}: cannot write FST")
        if write_extra is not None:
            write_extra(tmp)
    log.info("wrote %s: %d phones, %d words, %d pronunciations", output_dir,
             len(phones.silence) + len(phones.nonsilence), len(words) - 4, len(lexicon))
