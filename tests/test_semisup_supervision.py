"""Numerators from supervision lattices and best-path frame weights, against flat-start
numerators (NumeratorBuilder) and brute-force enumeration on the toy lexicon of
test_chain_graphs."""
import math
import random

import numpy as np
import pytest
import torch

from decode_testing import enumerate_paths, random_lattice
from frugal.lattice.lattice import Lattice
from frugal.lattice.determinize import determinize_lattice
from frugal.graph.chain import NumeratorBuilder, NumeratorGraphs
from frugal.graph.den_graph import make_den_graph
from frugal.graph.hmm_topo import CHAIN_TOPOLOGY, PdfMap
from frugal.losses.lfmmi import lfmmi_loss
from frugal.lattice.numerator import LatticeNumeratorBuilder
from frugal.lattice.paths import best_path_frame_weights
from test_chain_graphs import PHONES, assert_same_distribution, fsa_paths, toy_lexicon, toy_phone_lm

X, Y = 1, 2


def word_lattice(paths):
    """A compact lattice from (word ids, graph cost, acoustic cost) paths sharing the start
    state; each word's alignment is two frames."""
    arcs, weights, aligns, finals = [], [], [], [(math.inf, math.inf)]
    for words, g, a in paths:
        cur = 0
        for i, w in enumerate(words):
            finals.append((math.inf, math.inf))
            arcs.append((cur, len(finals) - 1, w, w))
            weights.append((g if i == 0 else 0.0, a if i == 0 else 0.0))
            aligns.append((5, 6))
            cur = len(finals) - 1
        finals[cur] = (0.0, 0.0)
    return Lattice(np.array(arcs), np.array(weights), np.array(finals), aligns, {})


def distribution(num, T):
    f = num.fsa
    finals = {s: w for s, w in enumerate(f.final_scores.tolist()) if w > -math.inf}
    return fsa_paths(f.src.tolist(), f.dst.tolist(), f.labels.tolist(), f.scores.double().tolist(), finals, T)


@pytest.fixture(scope="module")
def graphs():
    pdf_map = PdfMap(PHONES, CHAIN_TOPOLOGY, 2)
    den = make_den_graph(toy_phone_lm(), pdf_map, PHONES)
    return pdf_map, den


@pytest.mark.parametrize("normalised", [False, True])
@pytest.mark.parametrize("T", [4, 6])
def test_one_path_lattice_gives_the_transcript_numerator(graphs, normalised, T):
    pdf_map, den = graphs
    flat = NumeratorBuilder(toy_lexicon(), pdf_map, den.graph if normalised else None)
    lat = word_lattice([([X, Y], 3.7, 55.0)])
    got = distribution(LatticeNumeratorBuilder(flat).build(lat), T)
    assert_same_distribution(got, distribution(flat.build(["X", "Y"]), T), rel=1e-4)


@pytest.mark.parametrize("scale", [0.5, 1.0])
def test_lattice_lm_scale_weighs_word_sequences(graphs, scale):
    pdf_map, _ = graphs
    flat = NumeratorBuilder(toy_lexicon(), pdf_map)
    g1, g2 = 2.0, 5.0
    lat = word_lattice([([X, Y], g1, 40.0), ([Y], g2, 10.0)])
    T = 6
    got = distribution(LatticeNumeratorBuilder(flat, lattice_lm_scale=scale).build(lat), T)
    # The lowest graph cost path gets weight 1, the other exp(-scale * (g2 - g1)).
    expected = dict(distribution(flat.build(["X", "Y"]), T))
    for seq, w in distribution(flat.build(["Y"]), T).items():
        expected[seq] = expected.get(seq, 0.0) + math.exp(-scale * (g2 - g1)) * w
    assert_same_distribution(got, expected, rel=1e-4)
    # Acoustic costs are dropped ...
    other = word_lattice([([X, Y], g1, 0.0), ([Y], g2, 99.0)])
    assert_same_distribution(distribution(LatticeNumeratorBuilder(flat, scale).build(other), T), expected, rel=1e-4)
    # ... but prune: with a beam of 10, [Y] (cost 104 against 42) is gone.
    pruned = LatticeNumeratorBuilder(flat, scale, prune_beam=10.0).build(other)
    assert_same_distribution(distribution(pruned, T), distribution(flat.build(["X", "Y"]), T), rel=1e-4)


def test_lattice_numerators_train_like_flat_start_ones(graphs):
    pdf_map, den = graphs
    flat = NumeratorBuilder(toy_lexicon(), pdf_map, den.graph)
    from_lats = LatticeNumeratorBuilder(flat).build_batch([word_lattice([([X, Y], 1.0, 9.0)]),
                                                          word_lattice([([X], 4.0, 2.0)])])
    reference = NumeratorGraphs.from_graphs([flat.build(["X", "Y"]), flat.build(["X"])])
    out = torch.randn(2, 12, pdf_map.num_pdfs, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([12, 10])
    a = lfmmi_loss(out, lengths, from_lats.fsas, den.graph)
    b = lfmmi_loss(out, lengths, reference.fsas, den.graph)
    assert a["skipped"] == b["skipped"] == 0 and torch.isfinite(a["loss"])
    assert float(a["loss"].detach()) == pytest.approx(float(b["loss"].detach()), rel=1e-5)


def test_frame_weights_by_hand():
    # Two paths over 3 frames: labels 1 2 3 (word X, cost 0) and 1 4 3 (word Y, cost ln 3).
    arcs = [(0, 1, 1, X), (1, 2, 2, 0), (2, 5, 3, 0), (0, 3, 1, Y), (3, 4, 4, 0), (4, 5, 3, 0)]
    weights = [(0.0, 0.0)] * 3 + [(math.log(3), 0.0)] + [(0.0, 0.0)] * 2
    finals = np.full((6, 2), np.inf)
    finals[5] = 0
    lat = Lattice(np.array(arcs), np.array(weights), finals)
    for version in (lat, determinize_lattice(lat)):
        w = best_path_frame_weights(version)
        assert w.dtype == np.float32
        assert w.tolist() == pytest.approx([1.0, 0.75, 1.0])


@pytest.mark.parametrize("seed", range(5))
def test_frame_weights_match_enumeration(seed):
    lat = random_lattice(random.Random(seed), num_frames=5, num_ilabels=3)
    for version in (lat, determinize_lattice(lat)):
        paths = enumerate_paths(version)
        scores = np.array([-(g + a) for *_, g, a in paths])
        post = np.exp(scores - np.logaddexp.reduce(scores))
        best = paths[int(np.argmax(scores))][2]
        expected = [sum(p for p, path in zip(post, paths) if path[2][t] == best[t]) for t in range(len(best))]
        assert best_path_frame_weights(version).tolist() == pytest.approx(expected, abs=1e-5)


def test_decoded_lattices_end_to_end(tmp_path):
    """HCLG decodings of noisy scores (standing in for dropout samples) -> combined supervision
    -> numerator on the lang directory's lexicon: the numerator accepts the pdf sequence of
    every input's best path (the alignment through HCLG's L, with its silences and
    pronunciations), and the frame weights cover every frame."""
    from decode_testing import make_lang, structured_scores
    from frugal.decode.decoder import Decoder, DecoderConfig
    from frugal.decode.graph import DecodingGraph
    from frugal.graph.chain import ChainLexicon
    from frugal.graph.compile import compile_hclg
    from frugal.losses.lfmmi import numerator_log_likelihood
    from frugal.semisup.lattices import combine_lattices

    lang, G = make_lang(tmp_path, seed=3, num_words=12, num_bigrams=30)
    hclg, pdf_map = compile_hclg(lang, G)
    decoder = Decoder(DecodingGraph.from_openfst(hclg), DecoderConfig(beam=12.0, lattice_beam=5.0))
    T = 24
    base = structured_scores(pdf_map.num_pdfs, [T], seed=1)
    noisy = [torch.log_softmax(base + 0.8 * torch.randn(base.shape, generator=torch.Generator().manual_seed(s)), -1)
             for s in range(4)]
    results = [decoder.decode(x, torch.tensor([T]), lattice=True)[0] for x in [base] + noisy]
    sup = combine_lattices([r.lattice for r in results], beam=5.0)
    assert sup.is_compact
    builder = LatticeNumeratorBuilder(NumeratorBuilder(ChainLexicon.from_lang_dir(lang.path), pdf_map))
    num = builder.build_batch([sup])
    for r in results:
        pdfs = torch.tensor(r.ilabels) - 1
        assert len(pdfs) == T
        one_hot = torch.full((1, T, pdf_map.num_pdfs), -1000.0)
        one_hot[0, torch.arange(T), pdfs] = 0.0
        assert float(numerator_log_likelihood(num.fsas, one_hot, torch.tensor([T]))) > -100.0
    w = best_path_frame_weights(sup)
    assert w.shape == (T,) and bool(((w > 0) & (w <= 1)).all())
