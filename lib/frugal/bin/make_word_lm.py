"""Estimate an interpolated modified Kneser-Ney word n-gram LM and write it in ARPA format.

The text has one sentence a line, ``uttid w1 w2 ...`` (a Kaldi ``text`` file) or plain
words with ``--no-uttid``. ``--cutoffs 0,0,1`` removes trigrams (and higher) seen once;
``--max-ngrams N`` then prunes by Stolcke's relative-entropy criterion down to N n-grams.
"""
from __future__ import annotations

import argparse
import logging
from typing import List, Optional

from frugal.errors import FrugalError
from frugal.lm.kneser_ney import train_kn_lm
from frugal.lm.text import read_sentences

log = logging.getLogger("frugal.make_word_lm")


def _int_list(text: str) -> List[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise FrugalError(f"--cutoffs '{text}': expected comma-separated integers, e.g. 0,0,1") from None


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="frugal make-word-lm", description=__doc__.split("\n")[0])
    parser.add_argument("--text", required=True, help="training text")
    parser.add_argument("--no-uttid", action="store_true", help="lines have no utterance id")
    parser.add_argument("--order", type=int, default=3, help="n-gram order (1 to 9)")
    parser.add_argument("--output", required=True, help="ARPA file to write")
    parser.add_argument("--cutoffs", type=_int_list, default=[],
                        help="per-order raw-count cutoffs, e.g. 0,0,1 (n-grams with count <= cutoff go)")
    parser.add_argument("--max-ngrams", type=int, help="prune (relative entropy) to at most N n-grams")
    parser.add_argument("--vocab", help="closed vocabulary, one word a line (or 'word id'); "
                                        "other words become <unk>")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    vocab = None
    if args.vocab:
        try:
            with open(args.vocab, encoding="utf-8") as f:
                vocab = [line.split()[0] for line in f if line.split()]
        except OSError as e:
            raise FrugalError(f"cannot read --vocab {args.vocab}: {e.strerror}") from None
    sentences = read_sentences(args.text, has_uttid=not args.no_uttid)
    lm = train_kn_lm(sentences, args.order, args.cutoffs, args.max_ngrams, vocab)
    log.info("%s: n-grams per order %s", args.output, lm.num_ngrams())
    lm.write(args.output)
    return 0
