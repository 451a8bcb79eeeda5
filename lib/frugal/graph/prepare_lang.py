"""Lang directories: Kaldi's prepare_lang.sh (lexicon or CMUdict) and CTC unit directories.

Without position-dependent phones, which frugal does not use: its acoustic units are
context-dependent through the biphone C, not through word-position variants. The layout
is `frugal.dirs.LangDir`'s; L.fst and L_disambig.fst (OpenFst binary, arcs sorted by
output label) are built here, so the writer lives with the graphs.
"""
from __future__ import annotations

import logging
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from frugal.dirs import LangDir
from frugal.errors import BadValue, FrugalError
from frugal.fileio import PathLike
from frugal.fsa.openfst import fst_size
from frugal.graph.lexicon_fst import add_disambig_self_loops, make_lexicon_fst
from frugal.lang.cmudict_lexicon import cmudict_lexicon, write_word_list
from frugal.lang.lexicon import Lexicon, Pron, add_disambig_symbols, add_oov_word, disambig_lexicon_text, read_lexicon
from frugal.lang.symbols import SymbolTable, read_symbol_list
from frugal.lang.text import read_text
from frugal.lang.units import BLANK, UNK, bpe_lexicon, bpe_tokens, char_lexicon, char_tokens, train_bpe

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


MISSING_WORDS = "missing_words.txt"  # words without pronunciation, mapped to the OOV word


def write_lang_dir(output_dir: PathLike, lexicon: Lexicon, phones: PhoneSet, oov: str, sil_prob: float,
                   extra_files: Optional[Dict[str, str]] = None, extra_copies: Optional[Dict[str, Path]] = None) -> None:
    """Write the whole lang directory (atomically); ``extra_files`` (name -> text) and
    ``extra_copies`` (name -> file to copy) go in too."""
    unknown = lexicon.phones() - set(phones.silence) - set(phones.nonsilence)
    if unknown:
        raise FrugalError(f"lexicon uses phones outside the phone set: {' '.join(sorted(unknown))}")
    if oov not in lexicon:
        raise BadValue("oov", oov, "the OOV word is not in the lexicon")
    if sil_prob > 0 and phones.optional_silence is None:
        raise BadValue("sil_prob", sil_prob, "a probability of optional silence needs a silence phone")
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

    files = {
        "phones.txt": phone_table.to_text(), "words.txt": words.to_text(),
        "oov.txt": f"{oov}\n", "oov.int": f"{words[oov]}\n",
        "lexicon.txt": lexicon.to_text(False), "lexiconp.txt": lexicon.to_text(True),
        "lexicon_disambig.txt": disambig_lexicon_text(entries, False),
        "lexiconp_disambig.txt": disambig_lexicon_text(entries, True),
        "phones/wdisambig_phones.int": f"{phone_table['#0']}\n",
        "phones/wdisambig_words.int": f"{words['#0']}\n",
    }
    classes = {
        "silence": phones.silence,
        "nonsilence": phones.nonsilence,
        "optional_silence": [phones.optional_silence] if phones.optional_silence else [],
        "disambig": disambig,
        "wdisambig": ["#0"],
    }
    for name, syms in classes.items():
        files[f"phones/{name}.txt"] = lines(syms)
        files[f"phones/{name}.int"] = lines(phone_table[s] for s in syms)
    files.update(extra_files or {})
    LangDir.write(output_dir, files, {"L.fst": L, "L_disambig.fst": L_disambig}, extra_copies)
    log.info("wrote %s: %d phones, %d words, %d pronunciations", output_dir,
             len(phones.silence) + len(phones.nonsilence), len(words) - 4, len(lexicon))


def word_counts(words_from: Optional[PathLike] = None, word_list: Optional[PathLike] = None) -> Optional[Counter]:
    """Word counts of a Kaldi text, or a word list (one word a line: count 1); None for neither."""
    if words_from is not None and word_list is not None:
        raise BadValue("word_list", word_list, "give a text or a word list, not both")
    if words_from is not None:
        return Counter(w for words in read_text(words_from).values() for w in words)
    if word_list is not None:
        return Counter(read_symbol_list(word_list))
    return None


def prepare_lang(output_dir: PathLike, lexicon_file: Optional[PathLike] = None, cmudict: bool = False,
                 words_from: Optional[PathLike] = None, word_list: Optional[PathLike] = None,
                 sil_phone: str = "SIL", sil_prob: float = 0.5, oov: str = "<UNK>", oov_phone: str = "SPN",
                 unk_ok: bool = False, keep_stress: bool = False, missing_words: Optional[PathLike] = None,
                 extra_lexicon: Optional[PathLike] = None) -> None:
    """A lang directory from a lexicon file, or from CMUdict for the words of a Kaldi text
    (``words_from``) or a word list, with ``extra_lexicon`` (a lexicon file) pronouncing the
    words CMUdict lacks. Words of those without pronunciation are listed in
    ``missing_words`` (default OUTPUT_DIR/missing_words.txt: inside the lang dir, or alone in
    OUTPUT_DIR when they stop it) and are an error, or with ``unk_ok`` map to ``oov`` (then
    lexicon words without pronunciation are dropped too).
    The OOV word gets ``oov_phone`` where the lexicon has none for it."""
    if (lexicon_file is None) == (not cmudict):
        raise BadValue("lexicon_file", lexicon_file, "give a lexicon or CMUdict, one of the two")
    counts = word_counts(words_from, word_list)
    if cmudict and counts is None:
        raise BadValue("words_from", words_from, "CMUdict pronounces the words of a text or word list: give one")
    missing_file = Path(missing_words or Path(output_dir) / MISSING_WORDS)
    if extra_lexicon is not None and not cmudict:
        raise BadValue("extra_lexicon", extra_lexicon, "adds to CMUdict's pronunciations: use it with --cmudict")
    if cmudict:
        lexicon, missing = cmudict_lexicon(counts, remove_stress=not keep_stress)
        if extra_lexicon is not None:
            extra = read_lexicon(extra_lexicon)
            for pron in extra.prons:
                lexicon.add(pron)
            missing = [w for w in missing if not extra.prons_of(w)]
        if not lexicon.prons:
            raise FrugalError(f"{words_from or word_list}: no word found in CMUdict")
    else:
        lexicon = read_lexicon(lexicon_file, drop_empty=unk_ok)
        missing = sorted(w for w in counts if w not in lexicon) if counts else []
    if oov in (counts or {}):
        missing = [w for w in missing if w != oov]
    inside = missing_words is None
    if missing:
        tokens = sum(counts[w] for w in missing)
        msg = (f"{words_from or word_list}: {len(missing)} words ({tokens} tokens) have no pronunciation, "
               f"listed in {missing_file} (e.g. {' '.join(missing[:5])})")
        if not unk_ok:
            missing_file.parent.mkdir(parents=True, exist_ok=True)  # (no lang dir is made)
            write_word_list(missing_file, missing)
            raise BadValue("unk_ok", None, f"not set, and {msg}: set it to map them to {oov}")
        log.warning("%s; they map to %s", msg, oov)
        if not inside:
            write_word_list(missing_file, missing)
    add_oov_word(lexicon, oov, oov_phone)
    # Like Kaldi's SPN, the OOV phone is a silence phone (no optional silence after it).
    extra = [oov_phone] if oov_phone in lexicon.phones() else []
    write_lang_dir(output_dir, lexicon, phone_set_for_lexicon(lexicon, sil_phone, extra_silence=extra), oov, sil_prob,
                   extra_files={MISSING_WORDS: "".join(f"{w}\n" for w in missing)} if missing and inside else None)


def prepare_units(text: PathLike, unit: str, output_dir: PathLike, vocab_size: int = 500, oov: str = "<UNK>") -> None:
    """CTC units (characters, or sentencepiece BPE pieces of ``vocab_size``) of the
    transcripts of a Kaldi text, as a lang directory whose phones are the tokens (blank at
    0, no optional silence), with tokens.txt (and bpe.model) in it."""
    if unit not in ("char", "bpe"):
        raise BadValue("unit", unit, "must be char or bpe")
    transcripts = list(read_text(text).values())
    if not any(transcripts):
        raise FrugalError(f"{text}: no words in the transcripts")
    words = sorted({w for ws in transcripts for w in ws} - {oov})
    extra = {}
    with tempfile.TemporaryDirectory() as work:
        model = Path(work) / "bpe.model"
        if unit == "char":
            tokens = char_tokens(transcripts)
            lexicon = char_lexicon(words, tokens)
        else:
            if vocab_size < 4:
                raise BadValue("vocab_size", vocab_size, "too small")
            train_bpe(transcripts, vocab_size, model)
            tokens = bpe_tokens(model)
            lexicon = bpe_lexicon(words, model)
            extra["bpe.model"] = model
        if tokens[0] != BLANK:
            raise RuntimeError(f"token 0 is {tokens[0]!r}, not {BLANK}")
        lexicon.add(Pron(oov, (UNK,)))
        phones = PhoneSet(silence=[], nonsilence=list(tokens[1:]), optional_silence=None, zero_symbol=BLANK)
        write_lang_dir(output_dir, lexicon, phones, oov, sil_prob=0.0,
                       extra_files={"tokens.txt": "".join(f"{t} {i}\n" for i, t in enumerate(tokens))},
                       extra_copies=extra)
    log.info("%s units: %d tokens (with %s) for %d words", unit, len(tokens), BLANK, len(words))
