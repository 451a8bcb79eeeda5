"""Perplexity of an ARPA LM on a text, as SRILM's ngram -ppl (OOVs excluded and reported).

Prints ``N sentences, N words, N OOVs`` and ``logprob= .. ppl= .. ppl1= ..``
(ppl counts the sentence ends, ppl1 does not); the OOV words, most frequent first, are
warned about: a decoding graph of this LM can never output them.
"""
from __future__ import annotations

import logging

from frugal.lm.text import text_perplexity

log = logging.getLogger(__name__)


def add_arguments(p) -> None:
    p.add_argument("--arpa", required=True, help="ARPA LM")
    p.add_argument("--text", required=True, help="text, 'uttid w1 w2 ...' a line")
    p.add_argument("--no-uttid", action="store_true", help="lines have no utterance id")
    p.add_argument("--unk", action="store_true", help="score OOVs as <unk> (SRILM's -unk)")


def run(args) -> None:
    result = text_perplexity(args.arpa, args.text, not args.no_uttid, args.unk)
    print(f"file {args.text}: {result.summary()}")
    if result.oov_words:  # words a decoding graph of this LM can never output
        by_count = sorted(result.oov_words.items(), key=lambda kv: (-kv[1], kv[0]))
        log.warning("%s: %d word(s) of %s are not in the LM: %s", args.arpa, len(by_count), args.text,
                    " ".join(f"{w} ({n})" for w, n in by_count[:20]) + (" ..." if len(by_count) > 20 else ""))
