"""HLG for a 20k-word lexicon and a trigram LM (20k unigrams, 50k bigrams, 50k trigrams).

A size and speed check of the whole compilation (prepare-lang, G, LG, HLG), on a
generated lexicon and a generated ARPA file with a proper backoff structure (every
n-gram's history and the bigram suffix of every trigram exist).
"""
import logging
import math
import random
import time

import kaldifst
import pytest

from frugal.graph.compile import CompileInfo, compile_hlg, make_grammar_fst
from frugal.lang.lang import Lang
from frugal.graph.prepare_lang import phone_set_for_lexicon, write_lang_dir
from frugal.lang.lexicon import Lexicon, Pron, add_oov_word
from frugal.fsa.openfst import linear_fst

log = logging.getLogger(__name__)

NUM_WORDS, NUM_BIGRAMS, NUM_TRIGRAMS = 20_000, 50_000, 50_000


def generate(tmp_path, seed=0):
    rng = random.Random(seed)
    phones = [f"P{k:02d}" for k in range(40)]
    words = set()
    while len(words) < NUM_WORDS:
        words.add("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10))))
    words = sorted(words)
    lexicon = Lexicon(Pron(w, tuple(rng.choice(phones) for _ in range(rng.randint(2, 8)))) for w in words)
    for w in rng.sample(words, 500):  # some words with a second pronunciation
        lexicon.add(Pron(w, tuple(rng.choice(phones) for _ in range(rng.randint(2, 8)))))

    bigrams = {}
    while len(bigrams) < NUM_BIGRAMS:
        h = "<s>" if rng.random() < 0.05 else rng.choice(words)
        w = "</s>" if rng.random() < 0.05 else rng.choice(words)
        bigrams[(h, w)] = rng.uniform(-3.0, -0.5)
    by_history = {}
    for h, w in bigrams:
        by_history.setdefault(h, []).append(w)
    continuable = [(h, w) for h, w in bigrams if w != "</s>" and w in by_history]
    trigrams = {}
    while len(trigrams) < NUM_TRIGRAMS:
        h1, h2 = rng.choice(continuable)
        trigrams[(h1, h2, rng.choice(by_history[h2]))] = rng.uniform(-2.0, -0.2)
    bigram_histories = {(h1, h2) for h1, h2, _ in trigrams}

    lines = ["\\data\\", f"ngram 1={NUM_WORDS + 2}", f"ngram 2={len(bigrams)}",
             f"ngram 3={len(trigrams)}", "", "\\1-grams:", f"{-2.0:.4f} </s>", f"-99 <s> {-0.5:.4f}"]
    for w in words:
        bo = f" {rng.uniform(-1.0, -0.1):.4f}" if w in by_history else ""
        lines.append(f"{rng.uniform(-6.0, -3.0):.4f} {w}{bo}")
    lines += ["", "\\2-grams:"]
    for (h, w), p in bigrams.items():
        bo = f" {rng.uniform(-1.0, -0.1):.4f}" if (h, w) in bigram_histories else ""
        lines.append(f"{p:.4f} {h} {w}{bo}")
    lines += ["", "\\3-grams:"] + [f"{p:.4f} {a} {b} {c}" for (a, b, c), p in trigrams.items()]
    (tmp_path / "lm.arpa").write_text("\n".join(lines + ["", "\\end\\", ""]))
    return lexicon, list(trigrams)


@pytest.mark.slow
def test_hlg_20k_words_trigram(tmp_path):
    lexicon, trigrams = generate(tmp_path)
    t0 = time.perf_counter()
    add_oov_word(lexicon, "<UNK>", "SPN")
    write_lang_dir(tmp_path / "lang", lexicon, phone_set_for_lexicon(lexicon, "SIL", ["SPN"]),
                   "<UNK>", sil_prob=0.5)
    lang = Lang(tmp_path / "lang")
    t_lang = time.perf_counter() - t0
    info = CompileInfo()
    G = make_grammar_fst(tmp_path / "lm.arpa", lang.path / "words.txt", info)
    HLG = compile_hlg(lang, G, info=info)
    t_total = time.perf_counter() - t0
    result = info.as_dict()
    log.warning("20k-word HLG: %d states, %d arcs; lang dir %.1f s, G + HLG %.1f s, total %.1f s",
                result["states"], result["arcs"], t_lang, result["seconds"], t_total)
    assert result["states"] > NUM_WORDS and result["arcs"] > NUM_BIGRAMS + NUM_TRIGRAMS
    assert t_total < 120, f"compilation took {t_total:.0f} s"
    # A sentence made of an LM trigram is accepted with a finite cost.
    a, b, c = next(t for t in trigrams if "<s>" not in t and "</s>" not in t)
    acceptor = linear_fst([lang.words[w] for w in (a, b, c)])
    kaldifst.arcsort(HLG, sort_type="olabel")
    best = kaldifst.shortest_path(kaldifst.compose(HLG, acceptor))
    ok, _, osyms, weight = kaldifst.get_linear_symbol_sequence(best)
    assert ok and osyms == [lang.words[w] for w in (a, b, c)] and math.isfinite(weight.value)
