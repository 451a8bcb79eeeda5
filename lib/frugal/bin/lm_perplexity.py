"""Perplexity of an ARPA LM on a text, as SRILM's ngram -ppl (OOVs excluded and reported).

Prints ``N sentences, N words, N OOVs`` and ``logprob= .. ppl= .. ppl1= ..``
(ppl counts the sentence ends, ppl1 does not).
"""
from __future__ import annotations

import argparse
from typing import Optional

from frugal.lm.arpa import perplexity, read_arpa
from frugal.lm.text import read_sentences


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="frugal lm-perplexity", description=__doc__.split("\n")[0])
    parser.add_argument("--arpa", required=True, help="ARPA LM")
    parser.add_argument("--text", required=True, help="text, 'uttid w1 w2 ...' a line")
    parser.add_argument("--no-uttid", action="store_true", help="lines have no utterance id")
    parser.add_argument("--unk", action="store_true", help="score OOVs as <unk> (SRILM's -unk)")
    args = parser.parse_args(argv)
    lm = read_arpa(args.arpa)
    result = perplexity(lm, read_sentences(args.text, has_uttid=not args.no_uttid), args.unk)
    print(f"file {args.text}: {result.summary()}")
    return 0
