"""Interpolated modified Kneser-Ney word n-gram LMs (Chen & Goodman 1998), with pruning.

Estimation (as KenLM's lmplz):

- Sentences are padded ``<s> w1 .. wn </s>``; every token after ``<s>`` is predicted, with
  n-grams that do not reach back beyond ``<s>`` (``<s> w1`` is a bigram, never a trigram).
- Adjusted counts ``a``: the raw count for the highest order and for n-grams that start
  with ``<s>`` (nothing can precede them); otherwise the continuation count, the number of
  distinct words seen just before the n-gram.
- Per order k, three discounts from the count-of-counts ``n_j`` of the adjusted counts:
  ``Y = n1 / (n1 + 2 n2)``, ``D1 = 1 - 2Y n2/n1``, ``D2 = 2 - 3Y n3/n2``,
  ``D3+ = 3 - 4Y n4/n3``. Where the counts are too sparse for this (a zero ``n_j`` or a
  discount outside ``(0, j)``, as happens on tiny corpora) that discount becomes ``Y``
  if ``0 < Y < 1``, else 0.5; a warning says so.
- ``P(w|h) = (a(hw) - D(a(hw))) / S(h) + gamma(h) P(w|h')`` with ``S(h) = sum_v a(hv)``,
  ``gamma(h) = (D1 N1(h) + D2 N2(h) + D3+ N3+(h)) / S(h)`` and ``h'`` = h without its first
  word; the unigram distribution is interpolated with the uniform one over the vocabulary
  (all words but ``<s>``, with ``</s>`` and ``<unk>``), so every word has a probability.
  In ARPA form the back-off weight of h is ``gamma(h)``.

Pruning keeps the explicit probabilities of the surviving n-grams and recomputes the
back-off weight of every history whose extensions were removed so that its distribution
still sums to one: ``bow(h) = gamma(h) + sum_removed u(hw) / (1 - sum_kept P(w|h'))`` where
``u`` is the discounted part. Unigrams are never pruned. The kept set is closed under
prefixes and suffixes (a history or a back-off target of a kept n-gram is kept):

- ``cutoffs``: an order-k n-gram with raw count <= ``cutoffs[k-1]`` is removed (KenLM's
  ``--prune``: non-decreasing, first value 0, the last value applies to higher orders).
- ``max_ngrams``: Stolcke's (1998) relative-entropy pruning to a size: each n-gram's cost
  ``-P(h) [p(w|h)(log p(w|h') + log bow'(h) - log p(w|h)) + (log bow'(h) - log bow(h))
  sum_{v backed off} p(v|h)]`` is computed once against the unpruned model, then n-grams
  are removed cheapest first, an n-gram becoming removable once no kept n-gram has it as
  history or as back-off target, until at most ``max_ngrams`` n-grams (all orders) remain.
"""
from __future__ import annotations

import heapq
import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from frugal.errors import BadValue, FrugalError
from frugal.fileio import PathLike
from frugal.lang.symbols import read_symbol_list
from frugal.lang.units import UnitCodec
from frugal.lm.arpa import BOS, EOS, UNK, ArpaLm, NGram
from frugal.lm.text import read_sentences

log = logging.getLogger(__name__)

LOG10_ZERO = -99.0  # what ARPA files give <s>, which is never predicted


def kn_discounts(n1: int, n2: int, n3: int, n4: int) -> Tuple[float, float, float]:
    """Modified Kneser-Ney discounts (D1, D2, D3+) from count-of-counts n1..n4 (see module doc)."""
    y = n1 / (n1 + 2 * n2) if n1 + 2 * n2 > 0 else math.nan
    fallback = y if 0 < y < 1 else 0.5
    nj = (n1, n2, n3, n4)
    out, replaced = [], []
    for j in (1, 2, 3):
        d = j - (j + 1) * y * nj[j] / nj[j - 1] if nj[j - 1] > 0 and math.isfinite(y) else math.nan
        if not 0 < d < j:
            replaced.append(f"D{j}" if j < 3 else "D3+")
            d = fallback
        out.append(d)
    if replaced:
        log.warning("count-of-counts n1..n4 = %s too sparse for %s: using %.4g",
                    nj, ", ".join(replaced), fallback)
    return out[0], out[1], out[2]


@dataclass
class KneserNeyModel:
    """The unpruned interpolated model; n-grams of all orders share the dicts (keyed by tuple)."""

    order: int
    vocab: List[str]  # the words a unigram is given for: all but <s>
    raw_counts: Dict[NGram, int]
    adjusted_counts: Dict[NGram, int]
    count_of_counts: List[Tuple[int, int, int, int]]  # per order: n1, n2, n3, n4
    discounts: List[Tuple[float, float, float]]  # per order: D1, D2, D3+
    prob: Dict[NGram, float]  # P(w|h) for every n-gram of the model
    discounted: Dict[NGram, float]  # u(hw) = (a - D) / S(h)
    gamma: Dict[NGram, float]  # back-off weight of each history that has extensions

    def ngrams(self, k: int) -> List[NGram]:
        return [g for g in self.prob if len(g) == k]


def _pad(sentences: Iterable[Sequence[str]], vocab: Optional[Set[str]]) -> List[Tuple[str, ...]]:
    out = []
    for n, words in enumerate(sentences, 1):
        for w in words:
            if w in (BOS, EOS):
                raise FrugalError(f"sentence {n}: '{w}' inside a sentence")
        mapped = [w if vocab is None or w in vocab else UNK for w in words]
        out.append((BOS, *mapped, EOS))
    return out


def estimate_kn(sentences: Iterable[Sequence[str]], order: int = 3,
                vocab: Optional[Iterable[str]] = None) -> KneserNeyModel:
    """Interpolated modified Kneser-Ney estimates of all n-grams up to ``order``.

    ``vocab``: a closed vocabulary; other words are counted as ``<unk>``. Without it the
    vocabulary is the training words. Either way ``</s>`` and ``<unk>`` belong to it.
    """
    if not 1 <= order <= 9:
        raise BadValue("order", order, "must be between 1 and 9")
    vocab_set = set(vocab) - {BOS} if vocab is not None else None
    padded = _pad(sentences, vocab_set)
    if not padded:
        raise FrugalError("no sentences to estimate the LM from")

    raw: Dict[NGram, int] = defaultdict(int)
    for sent in padded:
        for i in range(1, len(sent)):
            for k in range(1, min(order, i + 1) + 1):
                raw[sent[i - k + 1:i + 1]] += 1

    left_extensions: Dict[NGram, int] = defaultdict(int)
    for g in raw:
        if len(g) > 1:
            left_extensions[g[1:]] += 1
    adjusted = {g: c if len(g) == order or g[0] == BOS else left_extensions[g] for g, c in raw.items()}

    words = {g[0] for g in raw if len(g) == 1}
    vocab_list = sorted((vocab_set if vocab_set is not None else set()) | words | {EOS, UNK})

    count_of_counts, discounts = [], []
    for k in range(1, order + 1):
        n = [0, 0, 0, 0]
        for g, a in adjusted.items():
            if len(g) == k and a <= 4:
                n[a - 1] += 1
        count_of_counts.append(tuple(n))
        discounts.append(kn_discounts(*n))

    # S(h) and N1/N2/N3+(h) for every history
    total: Dict[NGram, int] = defaultdict(int)
    n_by_count: Dict[NGram, List[int]] = defaultdict(lambda: [0, 0, 0])
    for g, a in adjusted.items():
        total[g[:-1]] += a
        n_by_count[g[:-1]][min(a, 3) - 1] += 1

    def disc(g: NGram) -> float:
        return discounts[len(g) - 1][min(adjusted[g], 3) - 1]

    gamma = {h: sum(d * m for d, m in zip(discounts[len(h)], n_by_count[h])) / total[h] for h in total}
    discounted = {g: (a - disc(g)) / total[g[:-1]] for g, a in adjusted.items()}
    prob: Dict[NGram, float] = {}
    for w in vocab_list:
        prob[(w,)] = discounted.get((w,), 0.0) + gamma[()] / len(vocab_list)
    for g in sorted((g for g in adjusted if len(g) > 1), key=len):
        prob[g] = discounted[g] + gamma[g[:-1]] * prob[g[1:]]
    for w in vocab_list:
        discounted.setdefault((w,), 0.0)
    return KneserNeyModel(order, vocab_list, dict(raw), adjusted, count_of_counts, discounts,
                          prob, discounted, gamma)


def _check_cutoffs(cutoffs: Sequence[int], order: int) -> List[int]:
    cutoffs = list(cutoffs)
    if not cutoffs:
        return [0] * order
    if cutoffs[0] != 0:
        raise BadValue("cutoffs", ",".join(map(str, cutoffs)), "unigrams cannot be pruned, the first cutoff must be 0")
    if any(b < a for a, b in zip(cutoffs, cutoffs[1:])) or min(cutoffs) < 0:
        raise BadValue("cutoffs", ",".join(map(str, cutoffs)), "must be non-negative and non-decreasing")
    return (cutoffs + [cutoffs[-1]] * order)[:order]


def _full_prob(model: KneserNeyModel, ctx: NGram, w: str) -> float:
    ctx = ctx[max(0, len(ctx) - (model.order - 1)):]
    bow = 1.0
    while True:
        p = model.prob.get(ctx + (w,))
        if p is not None:
            return bow * p
        bow *= model.gamma.get(ctx, 1.0)
        ctx = ctx[1:]


def relative_entropy_costs(model: KneserNeyModel, candidates: Iterable[NGram]) -> Dict[NGram, float]:
    """Stolcke's increase in relative entropy from removing each n-gram alone (natural log)."""
    hist_prob: Dict[NGram, float] = {(): 1.0, (BOS,): 1.0}

    def p_hist(h: NGram) -> float:
        if h not in hist_prob:
            hist_prob[h] = p_hist(h[:-1]) * _full_prob(model, h[:-1], h[-1])
        return hist_prob[h]

    lower_sum: Dict[NGram, float] = defaultdict(float)  # sum over explicit w of P(w|h')
    for g in model.prob:
        if len(g) > 1:
            lower_sum[g[:-1]] += model.prob[g[1:]]
    costs = {}
    for g in candidates:
        h = g[:-1]
        p, p_lower, alpha = model.prob[g], model.prob[g[1:]], model.gamma[h]
        den = 1.0 - lower_sum[h]
        num = alpha * den  # mass of the words that back off from h
        new_alpha = (num + p) / (den + p_lower)
        delta = p * (math.log(p_lower) + math.log(new_alpha) - math.log(p))
        if num > 0:
            delta += num * (math.log(new_alpha) - math.log(alpha))
        costs[g] = -p_hist(h) * delta
    return costs


def prune(model: KneserNeyModel, cutoffs: Sequence[int] = (), max_ngrams: Optional[int] = None) -> Set[NGram]:
    """The n-grams of orders >= 2 that survive (see module doc)."""
    cut = _check_cutoffs(cutoffs, model.order)
    kept = {g for g in model.prob if len(g) > 1 and model.raw_counts[g] > cut[len(g) - 1]}
    num_unigrams = len(model.vocab) + 1  # with <s>
    if max_ngrams is None or num_unigrams + len(kept) <= max_ngrams:
        return kept
    if max_ngrams < num_unigrams:
        log.warning("--max-ngrams %d is below the %d unigrams: keeping unigrams only",
                    max_ngrams, num_unigrams)
    costs = relative_entropy_costs(model, kept)
    # an n-gram is removable when no kept n-gram uses it as history or as back-off target
    users: Dict[NGram, int] = defaultdict(int)
    for g in kept:
        users[g[:-1]] += 1
        users[g[1:]] += 1
    heap = [(costs[g], g) for g in kept if users[g] == 0]
    heapq.heapify(heap)
    size = num_unigrams + len(kept)
    while size > max_ngrams and heap:
        _, g = heapq.heappop(heap)
        kept.remove(g)
        size -= 1
        for parent in (g[:-1], g[1:]):
            users[parent] -= 1
            if users[parent] == 0 and parent in kept:
                heapq.heappush(heap, (costs[parent], parent))
    return kept


def to_arpa(model: KneserNeyModel, kept: Set[NGram]) -> ArpaLm:
    """The ARPA form of the model restricted to ``kept`` (plus all unigrams), renormalised."""
    removed_mass: Dict[NGram, float] = defaultdict(float)
    kept_lower: Dict[NGram, float] = defaultdict(float)
    has_kept_ext: Set[NGram] = set()
    for g in model.prob:
        if len(g) < 2:
            continue
        if g in kept:
            kept_lower[g[:-1]] += model.prob[g[1:]]
            has_kept_ext.add(g[:-1])
        else:
            removed_mass[g[:-1]] += model.discounted[g]

    def log10_bow(h: NGram) -> float:
        if h not in has_kept_ext:
            return 0.0
        bow = model.gamma[h]
        if removed_mass[h] > 0:
            bow += removed_mass[h] / (1.0 - kept_lower[h])
        return math.log10(bow)

    ngrams: List[Dict[NGram, Tuple[float, float]]] = [{} for _ in range(model.order)]
    ngrams[0][(BOS,)] = (LOG10_ZERO, log10_bow((BOS,)))
    for g, p in model.prob.items():
        if len(g) == 1 or g in kept:
            ngrams[len(g) - 1][g] = (math.log10(p), log10_bow(g))
    while len(ngrams) > 1 and not ngrams[-1]:
        ngrams.pop()  # e.g. a 4-gram model of one-word sentences
    return ArpaLm(ngrams)


def train_kn_lm(sentences: Iterable[Sequence[str]], order: int = 3, cutoffs: Sequence[int] = (),
                max_ngrams: Optional[int] = None, vocab: Optional[Iterable[str]] = None) -> ArpaLm:
    """Estimate, prune and return an interpolated modified Kneser-Ney LM as an ARPA model."""
    _check_cutoffs(cutoffs, order)  # before the counting, which can take long
    model = estimate_kn(sentences, order, vocab)
    for k, (n, d) in enumerate(zip(model.count_of_counts, model.discounts), 1):
        log.info("order %d: %d n-grams, count-of-counts %s, discounts %.4f %.4f %.4f",
                 k, len(model.ngrams(k)), n, *d)
    kept = prune(model, cutoffs, max_ngrams)
    return to_arpa(model, kept)


def make_word_lm(text: PathLike, output: PathLike, order: int = 3, cutoffs: Sequence[int] = (),
                 max_ngrams: Optional[int] = None, vocab: Optional[PathLike] = None, has_uttid: bool = True,
                 units_lang: Optional[PathLike] = None) -> ArpaLm:
    """The LM of the sentences of ``text`` (Kaldi text, or plain sentences without
    ``has_uttid``) written to ``output`` in ARPA format; a closed vocabulary ``vocab`` (one
    word a line, or 'word id') maps other words to <unk>. With ``units_lang`` (a frugal
    prepare-units directory) the sentences are spelled in its tokens first: a token LM for
    transducer shallow fusion."""
    words = [w.split()[0] for w in read_symbol_list(vocab)] if vocab else None
    sentences = read_sentences(text, has_uttid=has_uttid)
    if units_lang is not None:
        codec = UnitCodec(units_lang)
        sentences = [[codec.tokens[i] for i in codec.encode(s)] for s in sentences]
    lm = train_kn_lm(sentences, order, list(cutoffs), max_ngrams, words)
    log.info("%s: n-grams per order %s", output, lm.num_ngrams())
    lm.write(output)
    return lm
