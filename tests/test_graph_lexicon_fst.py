"""L and L o G: all paths of small graphs against hand-derived sequences and costs."""
import itertools
import math
from collections import defaultdict

import kaldifst
import pytest

from frugal.bin.main import main as frugal_main
from frugal.graph.compile import make_grammar_fst
from frugal.lang.lang import Lang
from frugal.fsa.openfst import iter_paths, read_fst

SIL_PROB = 0.3
# Two pronunciations of "a" (probabilities as in lexiconp.txt), "b", and <UNK> whose
# phone SPN is a silence phone (so no optional silence may follow it).
LEXICONP = "a 1.0 A B\na 0.5 A C\nb 1.0 C\n"
PRONS = {"a": [(("A", "B"), 1.0), (("A", "C"), 0.5)], "b": [(("C",), 1.0)], "<UNK>": [(("SPN",), 1.0)]}
SILENCE_PHONES = {"SIL", "SPN"}


@pytest.fixture(scope="module")
def lang(tmp_path_factory):
    d = tmp_path_factory.mktemp("lang")
    (d / "lexiconp.txt").write_text(LEXICONP)
    assert frugal_main(["prepare-lang", "--lexicon", str(d / "lexiconp.txt"), "--output-dir",
                        str(d / "lang"), "--sil-prob", str(SIL_PROB)]) == 0
    return Lang(d / "lang")


def expected_l_paths(max_words):
    """Every (phones, words) of L with <= max_words words and its cost, by Kaldi's rules:
    optional silence at the start and after each word not ending in a silence phone,
    -log(sil_prob) when taken and -log(1 - sil_prob) when not; -log(prob) a pronunciation."""
    sil, nosil = -math.log(SIL_PROB), -math.log(1 - SIL_PROB)
    out = {}
    for n in range(max_words + 1):
        for words in itertools.product(sorted(PRONS), repeat=n):
            for prons in itertools.product(*(PRONS[w] for w in words)):
                slots = [True] + [pr[0][-1] not in SILENCE_PHONES for pr in prons]
                for sils in itertools.product([False, True], repeat=sum(slots)):
                    it = iter(sils)
                    take = [next(it) if s else False for s in slots]
                    phones = ["SIL"] if take[0] else []
                    cost = sil if take[0] else nosil
                    for (ph, prob), slot, t in zip(prons, slots[1:], take[1:]):
                        phones += list(ph) + (["SIL"] if t else [])
                        cost += -math.log(prob) + ((sil if t else nosil) if slot else 0.0)
                    out[(tuple(phones), words)] = cost
    return out


def test_lexicon_fst_paths_and_costs(lang):
    L = read_fst(lang.path / "L.fst")
    found = {}
    # Two words need at most 1 + 2 * (2 + 1) arcs.
    for ilabels, olabels, cost in iter_paths(L, max_arcs=7):
        if len(olabels) > 2:
            continue
        key = (tuple(lang.phones.symbol(i) for i in ilabels), tuple(lang.words.symbol(o) for o in olabels))
        assert key not in found, f"two paths for {key}"
        found[key] = cost
    expected = expected_l_paths(2)
    assert set(found) == set(expected)
    for key, cost in expected.items():
        assert found[key] == pytest.approx(cost, abs=1e-5), key


def test_lexicon_disambig_fst_matches_lexicon_fst(lang):
    """L_disambig is L with disambiguation symbols: removing them gives L's paths."""
    # Two words with silence everywhere: 2 + 2 * (2 + 2) arcs (silence is followed by #k).
    dis = set(lang.disambig)
    found = defaultdict(list)
    for ilabels, olabels, cost in iter_paths(read_fst(lang.dir.file("L_disambig.fst")), max_arcs=10):
        if len(olabels) <= 2:
            key = (tuple(lang.phones.symbol(i) for i in ilabels if i not in dis),
                   tuple(lang.words.symbol(o) for o in olabels if o != lang.words["#0"]))
            found[key].append(cost)
    expected = expected_l_paths(2)
    assert set(found) == set(expected)
    for key, cost in expected.items():
        assert min(found[key]) == pytest.approx(cost, abs=1e-5), key


ARPA = """\\data\\
ngram 1=4
ngram 2=4

\\1-grams:
-0.6 </s>
-99 <s> -0.3
-0.5 a -0.2
-0.8 b -0.1

\\2-grams:
-0.2 <s> a
-0.3 a b
-0.25 b </s>
-0.4 a </s>

\\end\\
"""
# log10 P(sentence) computed by hand with the backoff rule.
LM_LOG10 = {(): -0.3 - 0.6, ("a",): -0.2 - 0.4, ("b",): (-0.3 - 0.8) - 0.25, ("a", "b"): -0.2 - 0.3 - 0.25,
            ("a", "a"): -0.2 + (-0.2 - 0.5) - 0.4, ("b", "a"): (-0.3 - 0.8) + (-0.1 - 0.5) - 0.4,
            ("b", "b"): (-0.3 - 0.8) + (-0.1 - 0.8) - 0.25}


def test_lexicon_composed_with_bigram_lm(lang, tmp_path):
    (tmp_path / "lm.arpa").write_text(ARPA)
    G = make_grammar_fst(tmp_path / "lm.arpa", lang.path / "words.txt")
    LG = kaldifst.compose(read_fst(lang.dir.file("L_disambig.fst")), G)
    dis = set(lang.disambig)
    best = {}
    for ilabels, olabels, cost in iter_paths(LG, max_arcs=12):
        key = (tuple(lang.phones.symbol(i) for i in ilabels if i not in dis),
               tuple(lang.words.symbol(o) for o in olabels))
        best[key] = min(cost, best.get(key, math.inf))
    lpaths = expected_l_paths(2)
    checked = 0
    for (phones, words), lcost in lpaths.items():
        if words in LM_LOG10:
            expected = lcost - LM_LOG10[words] * math.log(10)
            assert best[(phones, words)] == pytest.approx(expected, abs=1e-4), (phones, words)
            checked += 1
        else:
            assert (phones, words) not in best  # <UNK> is not in the LM
    assert checked == sum(1 for _, w in lpaths if w in LM_LOG10) > 20
