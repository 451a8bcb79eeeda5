"""HCLG (chain) and HLG (CTC) on a toy lexicon and a tiny ARPA LM.

References: LM scores from a small ARPA scorer written here (backoff rule), lexicon
costs from Kaldi's optional-silence rule, frame sequences built by hand from the
topology and the pdf table the compiler writes.
"""
import itertools
import json
import math

import kaldifst
import pytest

from frugal.bin.main import main as frugal_main
from frugal.graph.compile import CompileInfo, compile_hclg, compile_hlg, make_grammar_fst
from frugal.lang.lang import Lang
from frugal.fsa.openfst import fst_arcs, iter_paths, linear_fst, read_fst
from frugal.graph.hmm_topo import TWO_STATE_TOPOLOGY

SIL_PROB = 0.3
NOSIL, SIL = -math.log(1 - SIL_PROB), -math.log(SIL_PROB)
LEXICON = "a A B\nb C\nc A B\n"  # c is a homophone of a

UNIGRAMS = {"</s>": (-0.7, 0.0), "<s>": (-99, -0.4), "a": (-0.6, -0.3), "b": (-0.7, -0.2),
            "c": (-0.9, -0.25)}
BIGRAMS = {("<s>", "a"): -0.3, ("<s>", "b"): -0.5, ("a", "b"): -0.2, ("b", "a"): -0.3,
           ("b", "</s>"): -0.2, ("a", "</s>"): -0.5, ("c", "</s>"): -0.3}


def arpa_text():
    lines = ["\\data\\", f"ngram 1={len(UNIGRAMS)}", f"ngram 2={len(BIGRAMS)}", "", "\\1-grams:"]
    lines += [f"{p} {w} {bo}" if bo else f"{p} {w}" for w, (p, bo) in UNIGRAMS.items()]
    lines += ["", "\\2-grams:"] + [f"{p} {h} {w}" for (h, w), p in BIGRAMS.items()]
    return "\n".join(lines + ["", "\\end\\", ""])


def lm_cost(words):
    """-ln P(<s> words </s>) with the backoff rule (all explicit bigrams here are more
    likely than their backoff paths, so this is also G's best path)."""
    seq = ["<s>", *words, "</s>"]
    log10 = 0.0
    for h, w in zip(seq, seq[1:]):
        log10 += BIGRAMS[(h, w)] if (h, w) in BIGRAMS else UNIGRAMS[h][1] + UNIGRAMS[w][0]
    return -log10 * math.log(10)


SENTENCES = [()] + [s for n in (1, 2) for s in itertools.product("abc", repeat=n)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("hclg")
    (d / "lexicon.txt").write_text(LEXICON)
    (d / "lm.arpa").write_text(arpa_text())
    assert frugal_main(["prepare-lang", "--lexicon", str(d / "lexicon.txt"), "--output-dir",
                        str(d / "lang"), "--sil-prob", str(SIL_PROB)]) == 0
    lang = Lang(d / "lang")
    return d, lang, make_grammar_fst(d / "lm.arpa", lang.path / "words.txt")


def best_cost_of_words(graph, lang, words):
    acceptor = linear_fst([lang.words[w] for w in words])
    graph = graph.copy()
    kaldifst.arcsort(graph, sort_type="olabel")  # kaldifst.compose matches on fst1's outputs
    composed = kaldifst.compose(graph, acceptor)
    if composed.num_states == 0:
        return math.inf
    ok, _, osyms, weight = kaldifst.get_linear_symbol_sequence(kaldifst.shortest_path(composed))
    assert ok and [lang.words.symbol(o) for o in osyms] == list(words)
    return weight.value


def outputs_of_frames(graph, lang, frames):
    """{word sequence: best cost} over the paths reading exactly these input labels."""
    acceptor = linear_fst(frames)
    kaldifst.arcsort(acceptor, sort_type="olabel")
    composed = kaldifst.compose(acceptor, graph)
    best = {}
    for ilabels, olabels, cost in iter_paths(composed, max_arcs=len(frames) + 4):
        assert ilabels == list(frames)
        key = tuple(lang.words.symbol(o) for o in olabels)
        best[key] = min(cost, best.get(key, math.inf))
    return best


def check_word_costs(graph, lang):
    for words in SENTENCES:
        # Not taking optional silence is cheaper (sil_prob < 0.5): once at the start, once a word.
        expected = lm_cost(words) + (len(words) + 1) * NOSIL
        assert best_cost_of_words(graph, lang, words) == pytest.approx(expected, abs=1e-3), words


def pdf_table(path):
    table = {}
    for line in path.read_text().splitlines():
        left, phone, cls, pdf = line.split()
        table[(left, phone, int(cls))] = int(pdf)
    return table


def test_hclg_biphone_chain(setup, tmp_path):
    d, lang, _ = setup
    out = tmp_path / "graph" / "HCLG.fst"
    assert frugal_main(["compile-graph", "--lang", str(lang.path), "--arpa", str(d / "lm.arpa"),
                        "--topo", "chain", "--output", str(out)]) == 0
    graph = read_fst(out)
    info = json.loads((tmp_path / "graph" / "HCLG.fst.json").read_text())
    assert info["states"] == graph.num_states and info["arcs"] > 0 and info["steps"][0]["step"] == "G"
    assert info["input_epsilon_arcs"] == sum(1 for a in fst_arcs(graph).arcs if a[2] == 0) > 0
    pdf = pdf_table(tmp_path / "graph" / "pdf_map.txt")
    # Tree-less biphones: (no left context or any phone) x phone x 2 pdf classes.
    num_phones = len(lang.units())
    assert len(pdf) == info["num_pdfs"] == (num_phones + 1) * num_phones * 2
    assert sorted(pdf.values()) == list(range(info["num_pdfs"]))
    check_word_costs(graph, lang)

    def fwd(left, phone):
        return pdf[(left, phone, 0)] + 1

    def loop(left, phone):
        return pdf[(left, phone, 1)] + 1

    # "a" (= "c") in 4 frames: A after nothing (forward, 2 self-loops), B after A.
    frames = [fwd("<eps>", "A"), loop("<eps>", "A"), loop("<eps>", "A"), fwd("A", "B")]
    assert outputs_of_frames(graph, lang, frames) == pytest.approx(
        {("a",): lm_cost("a") + 2 * NOSIL, ("c",): lm_cost("c") + 2 * NOSIL}, abs=1e-3)
    # Optional silence before and after: SIL's left context is none, then B.
    frames = [fwd("<eps>", "SIL"), fwd("SIL", "A"), fwd("A", "B"), loop("A", "B"), fwd("B", "SIL")]
    assert outputs_of_frames(graph, lang, frames) == pytest.approx(
        {("a",): lm_cost("a") + 2 * SIL, ("c",): lm_cost("c") + 2 * SIL}, abs=1e-3)
    # "a b": C's left context is B.
    frames = [fwd("<eps>", "A"), fwd("A", "B"), fwd("B", "C"), loop("B", "C")]
    assert outputs_of_frames(graph, lang, frames) == pytest.approx(
        {("a", "b"): lm_cost("ab") + 3 * NOSIL, ("c", "b"): lm_cost("cb") + 3 * NOSIL}, abs=1e-3)
    # Wrong contexts and a self-loop without its forward frame are rejected.
    assert outputs_of_frames(graph, lang, [fwd("<eps>", "A"), fwd("<eps>", "B")]) == {}
    assert outputs_of_frames(graph, lang, [loop("<eps>", "A"), fwd("A", "B")]) == {}


def test_hclg_two_state_monophone(setup):
    _, lang, G = setup
    graph, pdf_map = compile_hclg(lang, G, context_width=1, topology=TWO_STATE_TOPOLOGY)
    check_word_costs(graph, lang)
    A, B, C = (lang.phones[p] for p in "ABC")

    def state(phone, k):  # entry and self-loop share the state's pdf
        return pdf_map.pdf(0, phone, k) + 1

    frames = [state(A, 0), state(A, 0), state(A, 1), state(B, 0), state(B, 1), state(B, 1)]
    assert set(outputs_of_frames(graph, lang, frames)) == {("a",), ("c",)}
    # Each phone lasts at least 2 frames.
    assert outputs_of_frames(graph, lang, [state(A, 1), state(B, 0), state(B, 1)]) == {}
    assert set(outputs_of_frames(graph, lang, [state(C, 0), state(C, 1)])) == {("b",)}


@pytest.mark.parametrize("compact, remove_epsilons", [(False, False), (True, False), (False, True)])
def test_hlg_ctc(setup, compact, remove_epsilons):
    _, lang, G = setup
    info = CompileInfo()
    graph = compile_hlg(lang, G, compact=compact, remove_epsilons=remove_epsilons, info=info)
    assert info.as_dict()["arcs"] > 0
    eps_arcs = [(i, o) for _, _, i, o, _ in fst_arcs(graph).arcs if i == 0]
    if remove_epsilons:  # only arcs that output a word (a homophone's identity) remain
        assert all(o != 0 for _, o in eps_arcs)
    else:
        assert any(o == 0 for _, o in eps_arcs)  # backoff arcs
    check_word_costs(graph, lang)
    blank = 1
    A, B, C, SIL_ = (lang.phones[p] + 1 for p in ("A", "B", "C", "SIL"))
    frames = [blank, A, A, blank, B] if not compact else [blank, A, blank, blank, B]
    assert outputs_of_frames(graph, lang, frames) == pytest.approx(
        {("a",): lm_cost("a") + 2 * NOSIL, ("c",): lm_cost("c") + 2 * NOSIL}, abs=1e-3)
    frames = [A, B, SIL_, C, C, blank] if not compact else [A, B, SIL_, C, blank, blank]
    assert set(outputs_of_frames(graph, lang, frames)) == {("a", "b"), ("c", "b")}
    assert outputs_of_frames(graph, lang, [A, C]) == {}


def test_compile_graph_input_errors(setup, tmp_path, capsys):
    d, lang, _ = setup
    out = tmp_path / "HLG.fst"
    assert frugal_main(["compile-graph", "--lang", str(tmp_path), "--arpa", str(d / "lm.arpa"),
                        "--topo", "ctc", "--output", str(out)]) == 1
    assert "not a lang directory" in capsys.readouterr().err
    assert frugal_main(["compile-graph", "--lang", str(lang.path), "--arpa", str(tmp_path / "no.arpa"),
                        "--topo", "ctc", "--output", str(out)]) == 1
    assert "no.arpa: no such ARPA file" in capsys.readouterr().err
    assert not out.exists()


def test_compile_graph_takes_the_den_graph_topology(setup, tmp_path, capsys):
    """--den-graph: context and HMM states come from make-den-graph's DEN.json, so the graph
    is the one compiled with those options given by hand; options that disagree are refused."""
    d, lang, _ = setup
    (tmp_path / "den.pt.json").write_text(json.dumps({"context": "mono", "hmm_states": 2}))
    common = ["compile-graph", "--lang", str(lang.path), "--arpa", str(d / "lm.arpa"), "--topo", "chain"]
    assert frugal_main(common + ["--den-graph", str(tmp_path / "den.pt"),
                                 "--output", str(tmp_path / "a/HCLG.fst")]) == 0
    assert frugal_main(common + ["--context", "mono", "--hmm-states", "2",
                                 "--output", str(tmp_path / "b/HCLG.fst")]) == 0
    info = json.loads((tmp_path / "a/HCLG.fst.json").read_text())
    assert (info["context"], info["hmm_states"]) == ("mono", 2)
    assert (tmp_path / "a/HCLG.fst").read_bytes() == (tmp_path / "b/HCLG.fst").read_bytes()
    assert (tmp_path / "a/pdf_map.txt").read_text() == (tmp_path / "b/pdf_map.txt").read_text()
    capsys.readouterr()
    assert frugal_main(common + ["--den-graph", str(tmp_path / "den.pt"), "--hmm-states", "1",
                                 "--output", str(tmp_path / "c/HCLG.fst")]) == 1
    assert "--hmm-states 1: disagrees with den graph" in capsys.readouterr().err
    assert frugal_main(common + ["--den-graph", str(tmp_path / "none.pt"),
                                 "--output", str(tmp_path / "c/HCLG.fst")]) == 1
    assert "none.pt.json" in capsys.readouterr().err
    assert frugal_main(["compile-graph", "--lang", str(lang.path), "--arpa", str(d / "lm.arpa"), "--topo", "ctc",
                        "--den-graph", str(tmp_path / "den.pt"), "--output", str(tmp_path / "c/HLG.fst")]) == 1
    assert "apply to chain graphs only" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_words_outside_words_txt_are_left_out_in_one_line(setup, tmp_path, capfd, caplog):
    """The LM's <unk> (and any word the lexicon lacks) leaves G exactly as kaldilm's skipping
    would, said once; a lexicon word the LM lacks is warned about (it can never be decoded)."""
    d, lang, G = setup
    extra = arpa_text().replace(f"ngram 1={len(UNIGRAMS)}", f"ngram 1={len(UNIGRAMS) + 2}").replace(
        f"ngram 2={len(BIGRAMS)}", f"ngram 2={len(BIGRAMS) + 2}")
    extra = extra.replace("\\1-grams:\n", "\\1-grams:\n-1.5 <unk> -0.1\n-1.7 zebra\n").replace(
        "\\2-grams:\n", "\\2-grams:\n-0.4 <unk> a\n-0.2 a zebra\n")
    (tmp_path / "unk.arpa").write_text(extra)
    capfd.readouterr()
    with caplog.at_level("INFO"):
        G2 = make_grammar_fst(tmp_path / "unk.arpa", lang.path / "words.txt")
    assert "2 word(s) not in" in caplog.text and "<unk> zebra" in caplog.text
    assert "WARNING" not in capfd.readouterr().err  # no kaldilm warning an n-gram
    for words in SENTENCES:
        assert best_cost_of_words(G2, lang, words) == pytest.approx(best_cost_of_words(G, lang, words), abs=1e-5)
    assert (G2.num_states, len(fst_arcs(G2).arcs)) == (G.num_states, len(fst_arcs(G).arcs))
    # A lexicon word the LM never saw.
    (tmp_path / "ab.arpa").write_text(arpa_text().replace("-0.9 c -0.25\n", "").replace("-0.3 c </s>\n", "")
                                      .replace(f"ngram 1={len(UNIGRAMS)}", f"ngram 1={len(UNIGRAMS) - 1}")
                                      .replace(f"ngram 2={len(BIGRAMS)}", f"ngram 2={len(BIGRAMS) - 1}"))
    caplog.clear()
    make_grammar_fst(tmp_path / "ab.arpa", lang.path / "words.txt")
    assert "1 word(s) of" in caplog.text and "can never be decoded, e.g. c" in caplog.text
