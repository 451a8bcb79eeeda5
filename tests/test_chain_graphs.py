"""Denominator and flat-start numerator graphs against brute-force enumeration on a toy lexicon."""
import itertools
import math
from collections import defaultdict

import pytest
import torch

from frugal.graph.chain import ChainLexicon, NumeratorBuilder, expand_to_pdfs, phone_lm_graph
from frugal.graph.den_graph import ChainDenGraph, make_den_graph, phone_lm_training_sequences
from frugal.graph.hmm_topo import CHAIN_TOPOLOGY, TWO_STATE_TOPOLOGY, PdfMap
from frugal.lang.symbols import SymbolTable
from frugal.lm.phone_lm import estimate_phone_lm

SIL, A, B, C = 1, 2, 3, 4
PHONES = [SIL, A, B, C]
SIL_PROB = 0.3
# X = "a b"; Y = "c" (prob 1) or "a" (prob 0.5)
PRONS = {1: [((A, B), 1.0)], 2: [((C,), 1.0), ((A,), 0.5)]}


def toy_lexicon(sil_prob=SIL_PROB):
    words = SymbolTable([("<eps>", 0), ("X", 1), ("Y", 2)])
    phones = SymbolTable([("<eps>", 0), ("SIL", SIL), ("a", A), ("b", B), ("c", C)])
    return ChainLexicon(PRONS, SIL, sil_prob, {SIL}, words, phones, None)


def fsa_paths(src, dst, labels, log_w, finals, T, start=0):
    """Brute force: {label sequence: total probability} over paths of exactly T arcs ending
    in a state of ``finals`` (state -> final log weight)."""
    out_arcs = defaultdict(list)
    for s, d, l, w in zip(src, dst, labels, log_w):
        out_arcs[s].append((d, l, w))
    totals = defaultdict(float)

    def walk(s, seq, w):
        if len(seq) == T:
            if s in finals:
                totals[tuple(seq)] += math.exp(w + finals[s])
            return
        for d, l, aw in out_arcs[s]:
            walk(d, seq + [l], w + aw)

    walk(start, [], 0.0)
    return dict(totals)


def compositions(T, n):
    """All tuples of n positive integers summing to T."""
    for cuts in itertools.combinations(range(1, T), n - 1):
        bounds = (0,) + cuts + (T,)
        yield tuple(bounds[i + 1] - bounds[i] for i in range(n))


def pdf_sequences(phones, T, pdf_map):
    """Every pdf sequence of T frames for a phone sequence (each HMM state >= 1 frame)."""
    topo = pdf_map.topology
    K = topo.num_states
    if len(phones) * K > T:
        return
    for durs in compositions(T, len(phones) * K):
        seq = []
        for i, ph in enumerate(phones):
            left = phones[i - 1] if i > 0 else 0
            for k in range(K):
                d = durs[i * K + k]
                seq.append(pdf_map.pdf(left, ph, topo.forward_class(k)))
                seq += [pdf_map.pdf(left, ph, topo.self_loop_class(k))] * (d - 1)
        yield tuple(seq)


def expected_numerator(T, pdf_map):
    """Transcript X Y by hand: [SIL] a b [SIL] (c | a:0.5) [SIL] with silence prob 0.3."""
    p = SIL_PROB
    expected = defaultdict(float)
    for s1, s2, s3 in itertools.product([0, 1], repeat=3):
        for y_phones, y_prob in [((C,), 1.0), ((A,), 0.5)]:
            phones = [SIL] * s1 + [A, B] + [SIL] * s2 + list(y_phones) + [SIL] * s3
            prob = y_prob
            for s in (s1, s2, s3):
                prob *= p if s else 1 - p
            for seq in pdf_sequences(phones, T, pdf_map):
                expected[seq] += prob
    return dict(expected)


def assert_same_distribution(got, expected, rel=1e-5):
    got = {k: v for k, v in got.items() if v > 1e-12}
    expected = {k: v for k, v in expected.items() if v > 1e-12}
    assert set(got) == set(expected)
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, rel=rel), k


@pytest.mark.parametrize("context_width,topology", [(2, CHAIN_TOPOLOGY), (1, CHAIN_TOPOLOGY),
                                                     (2, TWO_STATE_TOPOLOGY)])
@pytest.mark.parametrize("T", [4, 6])
def test_unnormalised_numerator_matches_enumeration(context_width, topology, T):
    pdf_map = PdfMap(PHONES, topology, context_width)
    num = NumeratorBuilder(toy_lexicon(), pdf_map).build(["X", "Y"])
    f = num.fsa
    finals = {s: w for s, w in enumerate(f.final_scores.tolist()) if w > -math.inf}
    got = fsa_paths(f.src.tolist(), f.dst.tolist(), f.labels.tolist(), f.scores.double().tolist(), finals, T)
    assert_same_distribution(got, expected_numerator(T, pdf_map))
    # Word ids sit on the first arc of each word; phones and phone starts match the pdfs.
    words = [w for w in f.aux_labels.tolist() if w]
    assert set(words) == {1, 2}
    owner = {pdf_map.pdf(left, ph, c): (ph, c) for left in [0] + PHONES for ph in PHONES
             for c in range(topology.num_pdf_classes)}
    for pdf, ph, start in zip(f.labels.tolist(), num.arc_phones.tolist(), num.arc_phone_starts.tolist()):
        assert owner[pdf][0] == ph
        is_entry_pdf = owner[pdf][1] == topology.forward_class(0)
        # (with shared entry/self-loop pdfs an entry pdf may also be a self-loop)
        assert start == is_entry_pdf if topology.separate_self_loop_pdf else (not start or is_entry_pdf)


def toy_phone_lm():
    seqs = [[A, B, C], [SIL, A, B, SIL, A], [A, B, SIL, C, SIL], [C, A]]
    return estimate_phone_lm([(1.0, seqs)], ngram_order=3, no_prune_ngram_order=3, num_extra_states=100)


def den_arcs(den: ChainDenGraph):
    g = den.graph
    return (g.arc_src.tolist(), g.arc_dst.tolist(), g.arc_pdf.tolist(), g.arc_weight.log().tolist())


@pytest.mark.parametrize("context_width", [2, 1])
def test_den_graph_matches_phone_lm_enumeration(context_width):
    lm = toy_phone_lm()
    pdf_map = PdfMap(PHONES, CHAIN_TOPOLOGY, context_width)
    den = make_den_graph(lm, pdf_map, PHONES)
    T = 5
    all_final = {s: 0.0 for s in range(den.graph.num_states)}
    got = fsa_paths(*den_arcs(den), all_final, T, start=den.start)
    # By hand: a path is a phone sequence with durations; phone LM probabilities, self-loops
    # 0.5, exits 0.5 (none after the last, unfinished phone: every state is final).
    expected = defaultdict(float)
    for n in range(1, T + 1):
        for phones in itertools.product(PHONES, repeat=n):
            lm_prob = math.exp(sum(lm.log_prob(phones[:i], ph) for i, ph in enumerate(phones)))
            if lm_prob == 0:
                continue
            for durs in compositions(T, n):
                w = lm_prob * 0.5 ** (T - n) * 0.5 ** (n - 1)
                seq = []
                for i, (ph, d) in enumerate(zip(phones, durs)):
                    left = phones[i - 1] if i > 0 else 0
                    seq += [pdf_map.pdf(left, ph, 0)] + [pdf_map.pdf(left, ph, 1)] * (d - 1)
                expected[tuple(seq)] += w
    assert_same_distribution(got, dict(expected))


def test_den_graph_is_stochastic_and_sized_like_the_lm():
    lm = toy_phone_lm()
    pdf_map = PdfMap(PHONES, CHAIN_TOPOLOGY, 2)
    g = expand_to_pdfs(phone_lm_graph(lm), pdf_map, transition_probs=True)
    mass = torch.zeros(g.num_states, dtype=torch.float64)
    mass.index_add_(0, torch.tensor(g.src), torch.tensor(g.log_weight, dtype=torch.float64).exp())
    for s, w in g.finals.items():
        mass[s] += math.exp(w)
    assert torch.allclose(mass, torch.ones_like(mass), atol=1e-12)
    # The LM histories determine phone and left context: one HMM state per LM state.
    assert g.num_states == lm.num_states
    den = make_den_graph(lm, pdf_map, PHONES)
    assert float(den.graph.initial_probs.sum()) == pytest.approx(1.0)
    assert bool((den.graph.final_probs == 1).all())


def den_forward(den: ChainDenGraph, pdfs):
    """Kaldi's normalisation FST by hand: initial probs, arcs, every state final with 1."""
    g = den.graph
    alpha = g.initial_probs.clone()
    for x in pdfs:
        sel = g.arc_pdf == x
        nxt = torch.zeros_like(alpha)
        nxt.index_add_(0, g.arc_dst[sel], alpha[g.arc_src[sel]] * g.arc_weight[sel])
        alpha = nxt
    return float(alpha.sum())


@pytest.mark.parametrize("context_width", [2, 1])
def test_normalised_numerator_is_numerator_times_den_weight(context_width):
    lm = toy_phone_lm()
    pdf_map = PdfMap(PHONES, CHAIN_TOPOLOGY, context_width)
    den = make_den_graph(lm, pdf_map, PHONES)
    T = 6
    num = NumeratorBuilder(toy_lexicon(), pdf_map, den.graph).build(["X", "Y"])
    f = num.fsa
    assert f.is_connected()
    finals = {s: w for s, w in enumerate(f.final_scores.tolist()) if w > -math.inf}
    got = fsa_paths(f.src.tolist(), f.dst.tolist(), f.labels.tolist(), f.scores.double().tolist(), finals, T)
    expected = {seq: w * den_forward(den, seq) for seq, w in expected_numerator(T, pdf_map).items()}
    assert any(v == 0 for v in expected.values())  # the phone LM removes some paths
    assert_same_distribution(got, expected, rel=1e-4)


def test_phone_lm_sequences_use_best_pron_and_seeded_silence():
    lex = toy_lexicon()
    prons = {"X": [((A, B), 1.0)], "Y": [((A,), 0.5), ((C,), 1.0)]}
    seqs = phone_lm_training_sequences([["X", "Y"]] * 200, prons, SIL, 0.8, 0.2, seed=3)
    assert seqs == phone_lm_training_sequences([["X", "Y"]] * 200, prons, SIL, 0.8, 0.2, seed=3)
    for s in seqs:
        core = [p for p in s if p != SIL]
        assert core == [A, B, C]
    starts = sum(s[0] == SIL for s in seqs) / len(seqs)
    between = sum(s[s.index(B) + 1] == SIL for s in seqs) / len(seqs)
    assert 0.7 < starts < 0.9 and 0.1 < between < 0.3
    assert lex.word_ids(["Y"]) == [2]


def test_den_graph_save_load_roundtrip(tmp_path):
    lm = toy_phone_lm()
    den = make_den_graph(lm, PdfMap(PHONES, TWO_STATE_TOPOLOGY, 2), PHONES)
    den.save(tmp_path / "den.pt")
    back = ChainDenGraph.load(tmp_path / "den.pt")
    assert back.num_pdfs == den.num_pdfs and back.pdf_map.topology == TWO_STATE_TOPOLOGY
    for name in ("arc_src", "arc_dst", "arc_pdf"):
        assert torch.equal(getattr(back.graph, name), getattr(den.graph, name))
    assert torch.allclose(back.graph.arc_weight, den.graph.arc_weight)
    assert torch.allclose(back.graph.initial_probs, den.graph.initial_probs)


def test_make_den_graph_cli_and_lang_dir_numerators(tmp_path, capsys):
    import json

    from cuts_testing import write_text_cuts
    from frugal.bin.main import main as frugal_main
    from frugal.graph.prepare_lang import phone_set_for_lexicon, write_lang_dir
    from frugal.lang.lexicon import Lexicon, Pron

    lexicon = Lexicon([Pron("X", ("a", "b")), Pron("Y", ("c",)), Pron("Y", ("a",), 0.5),
                       Pron("<unk>", ("SPN",))])
    write_lang_dir(tmp_path / "lang", lexicon, phone_set_for_lexicon(lexicon, "SIL", ["SPN"]), "<unk>", 0.3)
    cuts = write_text_cuts(tmp_path / "cuts.jsonl.gz", {text: text.split() for text in ["X Y", "Y X Y", "X ZZZ"]})
    out = tmp_path / "exp" / "den.pt"
    out.parent.mkdir()
    assert frugal_main(["make-den-graph", "--lang", str(tmp_path / "lang"), "--cuts", f"{cuts}:1.5", str(cuts),
                     "--output", str(out), "--context", "mono"]) == 0
    info = json.loads((tmp_path / "exp" / "den.pt.json").read_text())
    den = ChainDenGraph.load(out)
    assert info["den_states"] == den.graph.num_states and info["num_pdfs"] == den.num_pdfs == 5 * 2
    assert (tmp_path / "exp" / "phone_lm.fst").is_file()
    assert len((tmp_path / "exp" / "pdf_map.txt").read_text().splitlines()) == 10

    lex = ChainLexicon.from_lang_dir(tmp_path / "lang")
    assert abs(lex.sil_prob - 0.3) < 1e-6 and lex.oov == "<unk>"
    builder = NumeratorBuilder(lex, den.pdf_map, den.graph)
    assert builder.build(["X", "Y"]).fsa.num_arcs > 0
    assert lex.word_ids(["ZZZ"]) == [lex.words["<unk>"]]
    assert frugal_main(["make-den-graph", "--lang", str(tmp_path / "lang"), "--cuts", str(tmp_path / "nope.jsonl"),
                        "--output", str(out)]) == 1
    assert "nope.jsonl: cut manifest not found" in capsys.readouterr().err
