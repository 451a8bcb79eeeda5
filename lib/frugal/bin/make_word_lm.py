"""Estimate an interpolated modified Kneser-Ney word n-gram LM and write it in ARPA format.

The text has one sentence a line, ``uttid w1 w2 ...`` (a Kaldi ``text`` file) or plain
words with ``--no-uttid``. ``--cutoffs 0,0,1`` removes trigrams (and higher) seen once;
``--max-ngrams N`` then prunes by Stolcke's relative-entropy criterion down to N n-grams.
``--units-lang`` spells the words in the tokens of a prepare-units directory first (a
token LM for transducer shallow fusion).
"""
from __future__ import annotations

from frugal.bin._options import int_list
from frugal.lm.kneser_ney import make_word_lm


def add_arguments(p) -> None:
    p.add_argument("--text", required=True, help="training text")
    p.add_argument("--no-uttid", action="store_true", help="lines have no utterance id")
    p.add_argument("--order", type=int, default=3, help="n-gram order (1 to 9)")
    p.add_argument("--output", required=True, help="ARPA file to write")
    p.add_argument("--cutoffs", type=int_list, default=[],
                   help="per-order raw-count cutoffs, e.g. 0,0,1 (n-grams with count <= cutoff go)")
    p.add_argument("--max-ngrams", type=int, help="prune (relative entropy) to at most N n-grams")
    p.add_argument("--vocab", help="closed vocabulary, one word a line (or 'word id'); other words become <unk>")
    p.add_argument("--units-lang", help="a frugal prepare-units directory: spell the words in its tokens "
                                        "(a token LM for frugal decode-transducer --lm)")


def run(args) -> None:
    make_word_lm(args.text, args.output, args.order, args.cutoffs, args.max_ngrams, args.vocab, not args.no_uttid,
                 args.units_lang)
