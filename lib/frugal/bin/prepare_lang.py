"""Make a Kaldi-like lang directory (phones, words, L.fst, L_disambig.fst) from a lexicon or CMUdict.

Position-dependent phones are not made (frugal models context with biphones).
"""
from __future__ import annotations

from frugal.graph.prepare_lang import prepare_lang


def add_arguments(p) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--lexicon", dest="lexicon_file",
                     help="lexicon.txt (WORD p1 p2 ...) or lexiconp.txt (WORD prob p1 ...)")
    src.add_argument("--cmudict", action="store_true",
                     help="pronounce the words of --words-from or --word-list with CMUdict")
    words = p.add_mutually_exclusive_group()
    words.add_argument("--words-from", metavar="TEXT",
                       help="Kaldi text file (uttid word ...): its words must be pronounceable")
    words.add_argument("--word-list", metavar="FILE",
                       help="one word a line (data/local/words.txt of prepare-data): they must be pronounceable")
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
    p.add_argument("--extra-lexicon", metavar="LEXICON",
                   help="with --cmudict: pronunciations (WORD p1 p2 ...) of words CMUdict lacks, e.g. the "
                        "missing-words list completed by hand")
    p.add_argument("--keep-stress", action="store_true", help="with --cmudict: keep stress digits (AH0)")
    p.add_argument("--missing-words", metavar="FILE",
                   help="where to list words of --words-from without pronunciation "
                        "(default: OUTPUT_DIR/missing_words.txt, in the lang dir)")


def run(args) -> None:
    prepare_lang(args.output_dir, args.lexicon_file, args.cmudict, args.words_from, args.word_list, args.sil_phone,
                 args.sil_prob, args.oov, args.oov_phone, args.unk_ok, args.keep_stress, args.missing_words,
                 args.extra_lexicon)
