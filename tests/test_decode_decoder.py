"""The beam-search decoder against OpenFst shortest paths and Kaldi's decoders (kaldi-decoder)."""

import math

import kaldi_decoder
import numpy as np
import pytest
import torch

from decode_testing import make_hclg, make_hlg, reference_best, structured_scores
from frugal.decode.decoder import Decoder, DecoderConfig
from frugal.decode.graph import DecodingGraph
from frugal.decode.search_compiled import search_compiled
from frugal.decode.search_sparse import search_sparse
from frugal.lattice.lattice import Lattice
from frugal.lattice.determinize import determinize_lattice
from frugal.lattice.paths import nbest
from frugal.errors import FrugalError
from frugal.fsa import Fsa
from frugal.fsa.openfst import from_openfst


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # torch's intra-op threads only slow these small ops down on a busy machine.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def hlg(tmp_path_factory):
    lang, fst = make_hlg(tmp_path_factory.mktemp("hlg"), seed=1, num_words=20, num_bigrams=40)
    return fst


@pytest.fixture(scope="module")
def hlg_large(tmp_path_factory):
    lang, fst = make_hlg(tmp_path_factory.mktemp("hlg_large"), seed=2, num_words=150, num_bigrams=500)
    return fst


@pytest.fixture(scope="module")
def hclg(tmp_path_factory):
    lang, fst, num_pdfs = make_hclg(tmp_path_factory.mktemp("hclg"), seed=3, num_words=15, num_bigrams=30)
    return fst, num_pdfs


def wide_decoder(fst, acoustic_scale):
    cfg = DecoderConfig(beam=1e4, max_active=10**8, lattice_beam=4.0, acoustic_scale=acoustic_scale)
    return Decoder(DecodingGraph.from_openfst(fst), cfg)


@pytest.mark.parametrize("acoustic_scale", [1.0, 0.6])
@pytest.mark.parametrize("kind", ["hlg", "hclg"])
def test_wide_beam_is_the_exact_shortest_path(kind, acoustic_scale, hlg, hclg):
    if kind == "hlg":
        fst, num_columns = hlg, DecodingGraph.from_openfst(hlg).max_label + 1
    else:
        fst, num_columns = hclg
    lengths = [17, 9, 1, 23, 12]
    scores = structured_scores(num_columns, lengths, seed=5)
    results = wide_decoder(fst, acoustic_scale).decode(scores, torch.tensor(lengths), lattice=True)
    compared = 0
    for u, (r, T) in enumerate(zip(results, lengths)):
        words, cost = reference_best(fst, scores[u, :T].numpy(), acoustic_scale)
        if words is None:  # no path reads this many frames
            assert not r.reached_final
            continue
        compared += 1
        assert r.reached_final
        assert r.words == words, u
        assert r.total_cost(acoustic_scale) == pytest.approx(cost, abs=1e-3)
        assert len(r.ilabels) == T
        # The acoustic cost is the frames' -log-likelihoods along the alignment.
        assert r.acoustic_cost == pytest.approx(-sum(float(scores[u, t, i - 1]) for t, i in enumerate(r.ilabels)), abs=1e-3)
        # The lattice's best path is the 1-best, and so is its determinisation's.
        for lat in (r.lattice, determinize_lattice(r.lattice, acoustic_scale=acoustic_scale)):
            best = lat.best_path(1.0, acoustic_scale)
            assert best.words == r.words
            assert best.total_cost(1.0, acoustic_scale) == pytest.approx(cost, abs=1e-3)
            assert best.ilabels == r.ilabels
    assert compared >= 4


def kaldi_best(decoder, loglik, acoustic_scale):
    decoder.decode(kaldi_decoder.DecodableCtc(np.ascontiguousarray(acoustic_scale * loglik)))
    ok, lat = decoder.get_best_path()
    return Lattice.from_kaldifst(lat).best_path() if ok else None


def test_agrees_with_kaldi_faster_decoder(hlg_large):
    graph = DecodingGraph.from_openfst(hlg_large)
    lengths = [40] * 32 + [25] * 8
    ac = 0.8
    scores = structured_scores(graph.max_label + 1, lengths, seed=9)
    cfg = DecoderConfig(beam=10.0, max_active=300, lattice_beam=5.0, acoustic_scale=ac)
    ours = Decoder(graph, cfg).decode(scores, torch.tensor(lengths))
    kaldi = kaldi_decoder.FasterDecoder(hlg_large, kaldi_decoder.FasterDecoderOptions(beam=10.0, max_active=300))
    same = 0
    for u, T in enumerate(lengths):
        ref = kaldi_best(kaldi, scores[u, :T].numpy(), ac)
        same += ref is not None and ref.words == ours[u].words
    assert same >= 0.99 * len(lengths)


def test_lattices_agree_with_kaldi_lattice_simple_decoder(hlg_large):
    graph = DecodingGraph.from_openfst(hlg_large)
    lengths = [30] * 4
    beam, lattice_beam = 12.0, 5.0
    scores = structured_scores(graph.max_label + 1, lengths, seed=13)
    ours = Decoder(graph, DecoderConfig(beam=beam, max_active=10**6, lattice_beam=lattice_beam)).decode(
        scores, torch.tensor(lengths), lattice=True)
    kaldi = kaldi_decoder.LatticeSimpleDecoder(
        hlg_large, kaldi_decoder.LatticeSimpleDecoderConfig(beam=beam, lattice_beam=lattice_beam))
    for u, T in enumerate(lengths):
        kaldi.decode(kaldi_decoder.DecodableCtc(scores[u, :T].numpy()))
        ok, raw = kaldi.get_raw_lattice()
        assert ok
        theirs = Lattice.from_kaldifst(raw)
        # Word sequences well inside the lattice beam, with their best costs.
        def inside(lat):
            paths = nbest(lat, 50)
            best = paths[0].total_cost()
            return {tuple(p.words): p.total_cost() for p in paths if p.total_cost() < best + lattice_beam - 1.0}
        a, b = inside(ours[u].lattice), inside(theirs)
        assert set(a) == set(b)
        for words in a:
            assert a[words] == pytest.approx(b[words], abs=1e-3)


def test_graph_reading_more_columns_than_the_model_has(hlg):
    graph = DecodingGraph.from_openfst(hlg)
    scores = torch.zeros(1, 5, graph.max_label)  # one column short
    with pytest.raises(FrugalError, match=f"columns up to {graph.max_label} .* only {graph.max_label} outputs"):
        Decoder(graph).decode(scores, torch.tensor([5]))


def test_epsilon_cycle_is_rejected():
    fsa = Fsa.from_str("0 1 -1 0 0\n1 0 -1 0 0\n0 0 0 1 -1\n1\n")
    with pytest.raises(FrugalError, match="cycle of non-emitting"):
        DecodingGraph(fsa)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu(hlg_large):
    graph = DecodingGraph.from_openfst(hlg_large)
    lengths = [30, 20, 25]
    scores = structured_scores(graph.max_label + 1, lengths, seed=4)
    cfg = DecoderConfig(beam=10.0, max_active=2000, lattice_beam=4.0)
    cpu = Decoder(graph, cfg).decode(scores, torch.tensor(lengths), lattice=True)
    gpu = Decoder(graph.to("cuda"), cfg).decode(scores.cuda(), torch.tensor(lengths), lattice=True)
    for a, b in zip(cpu, gpu):
        assert a.words == b.words
        assert a.total_cost(1.0) == pytest.approx(b.total_cost(1.0), abs=1e-3)
        assert a.lattice.num_arcs == b.lattice.num_arcs


def test_determinised_lattices_from_the_decoder(hlg):
    graph = DecodingGraph.from_openfst(hlg)
    lengths = [20, 15]
    scores = structured_scores(graph.max_label + 1, lengths, seed=21)
    cfg = DecoderConfig(beam=10.0, lattice_beam=5.0, acoustic_scale=0.7)
    for r in Decoder(graph, cfg).decode(scores, torch.tensor(lengths), lattice=True, determinize=True):
        lat = r.lattice
        assert lat.is_compact
        seqs = [tuple(p.words) for p in nbest(lat, 1000, 1.0, 0.7)]
        assert len(seqs) == len(set(seqs)) and len(seqs) > 1
        best = lat.best_path(1.0, 0.7)
        assert best.words == r.words and best.ilabels == r.ilabels
        assert best.total_cost(1.0, 0.7) == pytest.approx(r.total_cost(0.7), abs=1e-3)


def _graph(hlg, positive_eps: bool) -> DecodingGraph:
    """The graph of ``hlg``; with positive_eps every other non-emitting arc gains 2.0."""
    fsa = from_openfst(hlg, label_offset=1)
    if positive_eps:
        eps = torch.nonzero(fsa.labels == -1).squeeze(1)
        fsa.scores[eps[::2]] += 2.0
    return DecodingGraph(fsa)


@pytest.mark.parametrize("positive_eps", [False, True])
@pytest.mark.parametrize("acoustic_scale", [1.0, 0.5])
def test_dense_and_sparse_searches_agree(hlg_large, acoustic_scale, positive_eps):
    # The three searches (dense, sparse, compiled) prune alike, so their 1-best and lattices are the same, whether
    # utterances are decoded in a batch or one at a time; the max-active limit is low
    # enough to cut most frames. With positive_eps, some non-emitting arcs gain score (an
    # ARPA backoff weight can be positive), so a token can score more than the token it
    # comes from, and the dense search takes its general path.
    graph = _graph(hlg_large, positive_eps)
    assert graph.arcs.eps_scores_negative != positive_eps
    lengths = [30, 12, 25, 1, 30]
    scores = structured_scores(graph.max_label + 1, lengths, seed=17)
    out = {}
    for search in ("dense", "sparse", "compiled"):
        cfg = DecoderConfig(beam=9.0, max_active=150, lattice_beam=4.0, acoustic_scale=acoustic_scale, search=search)
        decoder = Decoder(graph, cfg)
        out[search] = decoder.decode(scores, torch.tensor(lengths), lattice=True)
        out[search + " one by one"] = [decoder.decode(scores[u:u + 1, :n], torch.tensor([n]), lattice=True)[0]
                                       for u, n in enumerate(lengths)]
        out[search + " 1-best"] = decoder.decode(scores, torch.tensor(lengths))
        out[search + " 1-best one by one"] = [decoder.decode(scores[u:u + 1, :n], torch.tensor([n]))[0]
                                              for u, n in enumerate(lengths)]
    ref = out.pop("dense")
    for run in out.values():
        for a, b in zip(ref, run):
            assert (a.words, a.ilabels, a.reached_final) == (b.words, b.ilabels, b.reached_final)
            assert a.total_cost(acoustic_scale) == pytest.approx(b.total_cost(acoustic_scale), abs=1e-4)
            assert (a.graph_cost, a.acoustic_cost) == pytest.approx((b.graph_cost, b.acoustic_cost), abs=1e-3)
            if b.lattice is None:
                continue
            assert (a.lattice.num_states, a.lattice.num_arcs) == (b.lattice.num_states, b.lattice.num_arcs)
            key = lambda lat: sorted(zip(lat.arcs[:, 2].tolist(), lat.arcs[:, 3].tolist(), lat.weights.round(4).tolist()))
            assert key(a.lattice) == key(b.lattice)


def test_timed_search_times_both_searches_and_changes_no_result(hlg_large, monkeypatch):
    # The first call runs the guess of the size rule, the second the other search, later
    # calls the one that was faster per utterance-frame; results are those of either search.
    graph = DecodingGraph.from_openfst(hlg_large)
    size = graph.num_states + graph.arcs.num_eps
    lengths = torch.tensor([40, 12, 25, 30])
    scores = structured_scores(graph.max_label + 1, lengths.tolist(), seed=19, peak=6.0)
    cfg = dict(beam=6.0, lattice_beam=2.0, search="timed")
    assert Decoder(graph, DecoderConfig()).kind == "compiled"  # auto, on CPU
    auto = Decoder(graph, DecoderConfig(**cfg, max_active=size))  # size rule: dense
    small = Decoder(graph, DecoderConfig(**cfg, max_active=size // 13))  # size rule: sparse
    assert auto.dense and not small.dense
    auto.decode(scores[:, :20], torch.tensor([20, 12, 20, 20]))  # a warm-up: too short to time
    assert auto.search_frames == {"dense": 0, "sparse": 0, "compiled": 0} and auto.dense
    runs = [auto.decode(scores, lengths, lattice=True)]
    assert auto.search_frames == {"dense": 107, "sparse": 0, "compiled": 0} and not auto.dense
    runs.append(auto.decode(scores, lengths, lattice=True))
    assert auto.search_frames == {"dense": 107, "sparse": 107, "compiled": 0}
    per_frame = {k: auto.search_seconds[k] / 107 for k in ("dense", "sparse")}
    assert auto.dense == (per_frame["dense"] <= per_frame["sparse"])
    # Pretend the sparse search was the faster one, then the dense one.
    auto.search_seconds = {"dense": 2.0, "sparse": 1.0, "compiled": 0.0}
    assert not auto.dense
    runs.append(auto.decode(scores, lengths, lattice=True))
    auto.search_seconds = {"dense": 1.0, "sparse": 9.0, "compiled": 0.0}
    assert auto.dense

    def arcs(lat):  # the raw lattices' arcs come in another order from the two searches
        return sorted(zip(lat.arcs[:, 2].tolist(), lat.arcs[:, 3].tolist(), lat.weights.tolist()))
    ref = Decoder(graph, DecoderConfig(**dict(cfg, search="dense"), max_active=size)).decode(scores, lengths, lattice=True)
    for out in runs:  # dense and sparse agree to the bit
        for a, b in zip(out, ref):
            assert (a.words, a.ilabels) == (b.words, b.ilabels) and a.total_cost(1.0) == b.total_cost(1.0)
            assert arcs(a.lattice) == arcs(b.lattice)


def test_unknown_search_is_rejected(hlg):
    with pytest.raises(FrugalError, match="search must be"):
        Decoder(DecodingGraph.from_openfst(hlg), DecoderConfig(search="fast"))


@pytest.mark.parametrize("positive_eps", [False, True])
@pytest.mark.parametrize("max_active", [40, 100000])
def test_compiled_search_computes_what_the_sparse_search_computes(hlg_large, positive_eps, max_active):
    # Every output array, to the bit: tokens (keys, scores, frames, best links), links (all
    # columns), each utterance's final tokens; batched, with lattices and 1-best only.
    graph = _graph(hlg_large, positive_eps)
    lengths = torch.tensor([30, 12, 25, 1, 30, 7])
    scores = structured_scores(graph.max_label + 1, lengths.tolist(), seed=23)
    for acoustic_scale in (1.0, 0.3):
        cfg = DecoderConfig(beam=8.0, max_active=max_active, acoustic_scale=acoustic_scale)
        for lattice in (False, True):
            a = search_compiled(graph, cfg, scores, lengths, lattice)
            b = search_sparse(graph, cfg, scores, lengths, lattice)
            for name in ("tok_keys", "tok_scores", "tok_frames", "tok_best"):
                assert torch.equal(torch.cat(getattr(a, name)), torch.cat(getattr(b, name))), name
            assert a.links.names == b.links.names
            for name in b.links.names:
                assert torch.equal(torch.cat(getattr(a.links, name)), torch.cat(getattr(b.links, name))), name
            for fa, fb in zip(a.finals, b.finals):
                assert (fa is None) == (fb is None)
                if fa is not None:
                    assert all(torch.equal(x, y) for x, y in zip(fa, fb))
            utt_frame = torch.cat(a.tok_keys) // graph.num_states * 1000 + torch.cat(a.tok_frames)
            most = int(torch.bincount(utt_frame).max())
            # the limit cut frames (ties at the cutoff stay, orphans go), or none
            assert 30 <= most <= 44 if max_active == 40 else most > 44, most


def test_compiled_search_refuses_a_gpu_graph(hlg):
    graph = DecodingGraph.from_openfst(hlg)
    graph.device = torch.device("cuda")  # (only the check is exercised)
    with pytest.raises(FrugalError, match="compiled search runs on CPU"):
        Decoder(graph, DecoderConfig(search="compiled"))


def test_compiled_lattice_pruning_equals_the_tensor_pruning(hlg_large):
    # build_lattices prunes on CPU with a compiled loop, on a GPU with layered tensor ops:
    # the same links and final tokens kept, the same best scores.
    from frugal.decode.lattice_builder import _prune, _prune_tensors
    graph = DecodingGraph.from_openfst(hlg_large)
    lengths = torch.tensor([30, 12, 25, 1, 30])
    scores = structured_scores(graph.max_label + 1, lengths.tolist(), seed=29)
    out = search_sparse(graph, DecoderConfig(beam=9.0, max_active=150), scores, lengths, True)
    links = {n: torch.cat(getattr(out.links, n)) for n in out.links.names}
    keys, alpha, frames = torch.cat(out.tok_keys), torch.cat(out.tok_scores), torch.cat(out.tok_frames)
    S = graph.num_states
    utt, states = keys // S, keys % S
    layer = frames * (graph.max_eps_rank + 1) + graph.eps_rank[states]
    is_start = (frames == 0) & (states == 0)
    final_score = torch.full_like(alpha, -math.inf)
    for u, f in enumerate(out.finals):
        if f is not None:
            final_score[f[0]] = graph.final_scores[f[1]]
    labels = [links[n] for n in ("ilabel", "olabel", "graph", "loglik")]
    for ac, beam in ((1.0, 4.0), (0.3, 0.5)):
        a = _prune(links["src"].numpy(), links["dst"].numpy(), labels[2].numpy(), labels[3].numpy(), ac,
                   alpha.numpy(), final_score.numpy(), layer.numpy(), utt.numpy(), is_start.numpy(), 5, beam)
        b = _prune_tensors(links["src"], links["dst"], labels, ac, alpha, final_score, layer, utt, is_start, 5, beam)
        for x, y in zip(a, b):
            assert torch.equal(torch.from_numpy(x), y)
        assert 0 < int(b[0].sum()) < b[0].numel()  # the beam cut some links
