"""Back-off n-gram LMs in ARPA format: the model, reading, writing, scoring, perplexity.

An ``ArpaLm`` holds, for each order k, a map from k-gram (tuple of words) to
``(log10 prob, log10 backoff)``. ``P(w | h)`` is the explicit probability of the longest
``h' w`` in the model (h' a suffix of h), times the back-off weights of the histories that
were skipped on the way down (a history missing from the model has back-off weight 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Sequence, Tuple

from frugal.errors import FrugalError, where
from frugal.fileio import PathLike, atomic_path

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
NGram = Tuple[str, ...]


def _fmt(x: float) -> str:
    return format(x, ".8g")


class ArpaLm:
    """A back-off n-gram LM; ``ngrams[k - 1][words] = (log10 prob, log10 backoff)``."""

    def __init__(self, ngrams: List[Dict[NGram, Tuple[float, float]]]):
        if not ngrams or not ngrams[0]:
            raise ValueError("an ARPA LM needs at least one unigram")
        self.ngrams = ngrams

    @property
    def order(self) -> int:
        return len(self.ngrams)

    @property
    def vocab(self) -> List[str]:
        return sorted(w for (w,) in self.ngrams[0])

    def num_ngrams(self) -> List[int]:
        return [len(t) for t in self.ngrams]

    def __contains__(self, word: str) -> bool:
        return (word,) in self.ngrams[0]

    def log10_prob(self, history: Sequence[str], word: str) -> float:
        """log10 P(word | history); ``-inf`` for a word not in the vocabulary."""
        hist = tuple(history)[max(0, len(history) - (self.order - 1)):] if self.order > 1 else ()
        backoff = 0.0
        while True:
            entry = self.ngrams[len(hist)].get(hist + (word,))
            if entry is not None:
                return backoff + entry[0]
            if not hist:
                return -math.inf
            h = self.ngrams[len(hist) - 1].get(hist)
            if h is not None:
                backoff += h[1]
            hist = hist[1:]

    def histories(self, k: int) -> set:
        """The k-grams that are the history of some (k+1)-gram."""
        return {g[:-1] for g in self.ngrams[k]} if k < self.order else set()

    def to_text(self) -> str:
        lines = ["", "\\data\\"]
        lines += [f"ngram {k}={n}" for k, n in enumerate(self.num_ngrams(), 1)]
        for k, table in enumerate(self.ngrams, 1):
            lines += ["", f"\\{k}-grams:"]
            hists = self.histories(k)
            for g in sorted(table):
                prob, bow = table[g]
                line = f"{_fmt(prob)}\t{' '.join(g)}"
                if g in hists or bow != 0.0:
                    line += f"\t{_fmt(bow)}"
                lines.append(line)
        lines += ["", "\\end\\", ""]
        return "\n".join(lines)

    def write(self, path: PathLike) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(self.to_text(), encoding="utf-8")


def _number(text: str, path, n: int, what: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise FrugalError(f"{where(path, n)}: {what} '{text}' is not a number") from None
    if math.isnan(x) or x == math.inf:
        raise FrugalError(f"{where(path, n)}: {what} '{text}' is not a finite log10 value")
    return x


def read_arpa(path: PathLike) -> ArpaLm:
    """Read an ARPA file; a malformed line raises FrugalError naming ``path:line``."""
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise FrugalError(f"cannot read ARPA file {path}: {e.strerror}") from None
    declared: Dict[int, int] = {}
    ngrams: List[Dict[NGram, Tuple[float, float]]] = []
    section = "header"  # header -> data -> k-grams ... -> end
    order = 0
    with f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if section == "header":
                if line == "\\data\\":
                    section = "data"
                continue
            if section == "end":
                if line:
                    raise FrugalError(f"{where(path, n)}: text after \\end\\")
                continue
            if not line:
                continue
            if line.startswith("\\"):
                if line == "\\end\\":
                    section = "end"
                    continue
                if not (line.endswith("-grams:") and line[1:-7].isdigit()):
                    raise FrugalError(f"{where(path, n)}: unknown section header '{line}'")
                k = int(line[1:-7])
                if k != order + 1 or k not in declared:
                    raise FrugalError(f"{where(path, n)}: section \\{k}-grams: out of order or "
                                      f"not declared in \\data\\")
                if order and len(ngrams[-1]) != declared[order]:
                    raise FrugalError(f"{where(path, n)}: \\data\\ declares {declared[order]} "
                                      f"{order}-grams but {len(ngrams[-1])} were listed")
                order = k
                ngrams.append({})
                section = "grams"
                continue
            if section == "data":
                key, eq, value = line.partition("=")
                fields = key.split()
                if not eq or len(fields) != 2 or fields[0] != "ngram" or not fields[1].isdigit() \
                        or not value.strip().isdigit():
                    raise FrugalError(f"{where(path, n)}: expected 'ngram K=COUNT' in \\data\\, "
                                      f"got '{line}'")
                k = int(fields[1])
                if k != len(declared) + 1:
                    raise FrugalError(f"{where(path, n)}: 'ngram {k}=' out of order")
                declared[k] = int(value)
                continue
            fields = line.split()
            if len(fields) not in (order + 1, order + 2):
                raise FrugalError(f"{where(path, n)}: a {order}-gram line needs log10 prob, "
                                  f"{order} words and an optional backoff; got {len(fields)} fields")
            if len(fields) == order + 2 and order == len(declared):  # Kaldi's reader refuses it too
                raise FrugalError(f"{where(path, n)}: a {order}-gram of the highest order has no backoff weight")
            prob = _number(fields[0], path, n, "log10 prob")
            bow = _number(fields[-1], path, n, "backoff") if len(fields) == order + 2 else 0.0
            if bow == -math.inf:
                raise FrugalError(f"{where(path, n)}: backoff '{fields[-1]}' is not finite")
            gram = tuple(fields[1:order + 1])
            if gram in ngrams[-1]:
                raise FrugalError(f"{where(path, n)}: duplicate {order}-gram '{' '.join(gram)}'")
            ngrams[-1][gram] = (prob, bow)
    if section == "header":
        raise FrugalError(f"{path}: no \\data\\ section: not an ARPA file")
    if section != "end":
        raise FrugalError(f"{path}: unexpected end of file (no \\end\\)")
    if order != len(declared):
        raise FrugalError(f"{path}: \\data\\ declares {len(declared)} orders but "
                          f"{order} sections were listed")
    if order and len(ngrams[-1]) != declared[order]:
        raise FrugalError(f"{path}: \\data\\ declares {declared[order]} {order}-grams but "
                          f"{len(ngrams[-1])} were listed")
    if not ngrams or not ngrams[0]:
        raise FrugalError(f"{path}: the LM has no unigrams")
    return ArpaLm(ngrams)


@dataclass
class Perplexity:
    """SRILM-style result: OOVs are excluded from both the log-prob and the word count."""

    num_sentences: int
    num_words: int
    num_oovs: int
    log10_prob: float
    oov_words: Dict[str, int] = field(default_factory=dict)  # OOV word -> occurrences

    @property
    def perplexity(self) -> float:
        """Over scored words and the sentence ends (SRILM's ``ppl``)."""
        n = self.num_words - self.num_oovs + self.num_sentences
        return 10 ** (-self.log10_prob / n) if n else math.nan

    @property
    def perplexity_no_eos(self) -> float:
        """Without the sentence-end events (SRILM's ``ppl1``)."""
        n = self.num_words - self.num_oovs
        return 10 ** (-self.log10_prob / n) if n else math.nan

    def summary(self) -> str:
        return (f"{self.num_sentences} sentences, {self.num_words} words, {self.num_oovs} OOVs\n"
                f"logprob= {self.log10_prob:.6g} ppl= {self.perplexity:.6g} "
                f"ppl1= {self.perplexity_no_eos:.6g}")


def perplexity(lm: ArpaLm, sentences: Iterable[Sequence[str]], map_oov_to_unk: bool = False) -> Perplexity:
    """Score sentences (lists of words, without <s> and </s>) as SRILM's ``ngram -ppl``.

    A word not in the LM's vocabulary is an OOV: it is not scored, and the words after it
    are scored without the context before it (no n-gram can contain the OOV). With
    ``map_oov_to_unk`` OOVs are scored as ``<unk>`` instead (SRILM's ``-unk``) and counted
    as words.
    """
    num_sent = num_words = num_oov = 0
    total = 0.0
    oovs: Dict[str, int] = {}
    unk_ok = map_oov_to_unk and UNK in lm
    for words in sentences:
        num_sent += 1
        context: List[str] = [BOS]
        for w in list(words) + [EOS]:
            if w != EOS:
                num_words += 1
                if w in (BOS, EOS):
                    raise FrugalError(f"'{w}' inside a sentence")
            if w not in lm:
                oovs[w] = oovs.get(w, 0) + 1
                if not unk_ok:
                    num_oov += 1
                    context = []
                    continue
                w = UNK
            total += lm.log10_prob(context, w)
            context.append(w)
    return Perplexity(num_sent, num_words, num_oov, total, oovs)

