"""Make a Kaldi-like lang directory (phones, words, L.fst, L_disambig.fst) from a lexicon or CMUdict."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import List, Optional

from frugal.errors import FrugalError
from frugal.lang.cmudict_lexicon import cmudict_lexicon, read_text_words, write_word_list
from frugal.lang.lang_dir import phone_set_for_lexicon, write_lang_dir
from frugal.lang.lexicon import add_oov_word, read_lexicon

log = logging.getLogger("frugal.prepare_lang")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="frugal prepare-lang", description=__doc__,
        epilog="Position-dependent phones are not made (frugal models context with biphones).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--lexicon", help="lexicon.txt (WORD p1 p2 ...) or lexiconp.txt (WORD prob p1 ...)")
    src.add_argument("--cmudict", action="store_true",
                     help="pronounce the words of --words-from with CMUdict")
    p.add_argument("--words-from", metavar="TEXT",
                   help="Kaldi text file (uttid word ...): its words must be pronounceable")
    p.add_argument("--output-dir", required=True, help="the lang directory to write")
    p.add_argument("--sil-phone", default="SIL", help="optional silence phone (default SIL)")
    p.add_argument("--sil-prob", type=float, default=0.5,
                   help="probability of optional silence at the start and between words (default 0.5)")
    p.add_argument("--oov", default="<UNK>", help="the OOV word (default <UNK>)")
    p.add_argument("--oov-phone", default="SPN",
                   help="phone of the OOV word if the lexicon has none for it; a silence phone (default SPN)")
    p.add_argument("--unk-ok", action="store_true",
                   help="drop lexicon words without pronunciation and map words with no "
                        "pronunciation (in --words-from) to the OOV word, instead of failing")
    p.add_argument("--keep-stress", action="store_true", help="with --cmudict: keep stress digits (AH0)")
    p.add_argument("--missing-words", metavar="FILE",
                   help="where to list words of --words-from without pronunciation "
                        "(default: OUTPUT_DIR.missing_words.txt beside the lang dir)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    out = Path(args.output_dir)
    missing_file = Path(args.missing_words or f"{out}.missing_words.txt")
    if args.cmudict and not args.words_from:
        raise FrugalError("--cmudict needs --words-from TEXT")

    counts = read_text_words(args.words_from) if args.words_from else None
    if args.cmudict:
        lexicon, missing = cmudict_lexicon(counts, remove_stress=not args.keep_stress)
        if not lexicon.prons:
            raise FrugalError(f"{args.words_from}: no word found in CMUdict")
    else:
        lexicon = read_lexicon(args.lexicon, drop_empty=args.unk_ok)
        missing = sorted(w for w in counts if w not in lexicon) if counts else []
    if args.oov in (counts or {}):
        missing = [w for w in missing if w != args.oov]
    if missing:
        write_word_list(missing_file, missing)
        tokens = sum(counts[w] for w in missing)
        msg = (f"{args.words_from}: {len(missing)} words ({tokens} tokens) have no pronunciation, "
               f"listed in {missing_file} (e.g. {' '.join(missing[:5])})")
        if not args.unk_ok:
            raise FrugalError(msg + "; use --unk-ok to map them to " + args.oov)
        log.warning("%s; they map to %s", msg, args.oov)
    add_oov_word(lexicon, args.oov, args.oov_phone)
    # Like Kaldi's SPN, the OOV phone is a silence phone (no optional silence after it).
    extra = [args.oov_phone] if args.oov_phone in lexicon.phones() else []
    phones = phone_set_for_lexicon(lexicon, args.sil_phone, extra_silence=extra)
    write_lang_dir(out, lexicon, phones, args.oov, args.sil_prob)
    return 0
