"""Reading LM training/test text: one sentence a line, with or without a leading utterance id."""
from __future__ import annotations

from typing import List

from frugal.errors import FrugalError, where
from frugal.fileio import PathLike
from frugal.lm.arpa import BOS, EOS, Perplexity, perplexity, read_arpa


def read_sentences(path: PathLike, has_uttid: bool = True) -> List[List[str]]:
    """Sentences as word lists; ``<s>``/``</s>`` inside a line are an error (file:line)."""
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise FrugalError(f"cannot read text {path}: {e.strerror}") from None
    sentences = []
    with f:
        for n, line in enumerate(f, 1):
            words = line.split()
            if not words:
                continue  # a blank line; 'uttid' alone is an empty sentence
            if has_uttid:
                words = words[1:]
            for w in words:
                if w in (BOS, EOS):
                    raise FrugalError(f"{where(path, n)}: '{w}' must not appear in the text")
            sentences.append(words)
    return sentences


def text_perplexity(arpa: PathLike, text: PathLike, has_uttid: bool = True, unk: bool = False) -> Perplexity:
    """The perplexity of an ARPA LM on the sentences of a text (SRILM's ngram -ppl)."""
    return perplexity(read_arpa(arpa), read_sentences(text, has_uttid=has_uttid), unk)
