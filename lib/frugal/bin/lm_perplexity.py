"""Perplexity of an ARPA LM on a text, as SRILM's ngram -ppl (OOVs excluded and reported).

Prints ``N sentences, N words, N OOVs`` and ``logprob= .. ppl= .. ppl1= ..``
(ppl counts the sentence ends, ppl1 does not).
"""
from __future__ import annotations

from frugal.lm.text import text_perplexity


def add_arguments(p) -> None:
    p.add_argument("--arpa", required=True, help="ARPA LM")
    p.add_argument("--text", required=True, help="text, 'uttid w1 w2 ...' a line")
    p.add_argument("--no-uttid", action="store_true", help="lines have no utterance id")
    p.add_argument("--unk", action="store_true", help="score OOVs as <unk> (SRILM's -unk)")


def run(args) -> None:
    print(f"file {args.text}: {text_perplexity(args.arpa, args.text, not args.no_uttid, args.unk).summary()}")
