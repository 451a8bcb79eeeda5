"""Lattice algorithms against brute-force path enumeration (float64) on small random lattices."""
import random

import numpy as np
import pytest

from decode_testing import edit_distance, enumerate_paths, random_lattice
from frugal.lattice import determinize
from frugal.lattice.determinize import determinize_lattice
from frugal.lattice.paths import lattice_to_ctm, nbest, oracle_path, word_posteriors, word_sequences

SCALES = [(1.0, 1.0), (0.7, 0.3)]  # (graph/LM scale, acoustic scale)


def lattices(n=12, **kw):
    rng = random.Random(7)
    return [random_lattice(rng, **kw) for _ in range(n)]


def best_by_words(paths, gs, acs):
    """{word sequence: (total, g, a, ilabels)} of the best path of each word sequence."""
    best = {}
    for _, words, ilabels, g, a in paths:
        key = tuple(words)
        cand = (gs * g + acs * a, g, a, ilabels)
        if key not in best or cand[0] < best[key][0]:
            best[key] = cand
    return best


@pytest.mark.parametrize("gs, acs", SCALES)
def test_arc_posteriors_and_best_path_match_enumeration(gs, acs):
    for lat in lattices():
        paths = enumerate_paths(lat)
        totals = np.array([gs * g + acs * a for _, _, _, g, a in paths])
        probs = np.exp(-(totals - totals.min()))
        probs /= probs.sum()
        expected = np.zeros(lat.num_arcs)
        for p, (arcs, *_rest) in zip(probs, paths):
            for k in arcs:
                expected[k] += p
        assert lat.arc_posteriors(gs, acs) == pytest.approx(expected, abs=1e-9)
        best = lat.best_path(gs, acs)
        i = int(np.argmin(totals))
        assert best.arcs == paths[i][0]
        assert best.total_cost(gs, acs) == pytest.approx(totals[i], abs=1e-6)
        # Word posteriors: the summed posterior of arcs carrying words.
        word_mass = sum(w.posterior for w in word_posteriors(lat, gs, acs))
        assert word_mass == pytest.approx(expected[lat.arcs[:, 3] != 0].sum(), abs=1e-9)


@pytest.mark.parametrize("gs, acs", SCALES)
def test_determinize_one_path_per_word_sequence_with_best_weights(gs, acs):
    for lat in lattices():
        det = determinize_lattice(lat, graph_scale=gs, acoustic_scale=acs)
        assert det.is_compact
        det_paths = enumerate_paths(det)
        seqs = [tuple(w) for _, w, *_ in det_paths]
        assert len(seqs) == len(set(seqs))  # exactly one path per word sequence
        expected = best_by_words(enumerate_paths(lat), gs, acs)
        assert set(seqs) == set(expected)
        for _, words, ilabels, g, a in det_paths:
            total, eg, ea, eil = expected[tuple(words)]
            assert (g, a) == pytest.approx((eg, ea), abs=1e-4)
            assert ilabels == eil  # the best path's alignment
        # Determinising a determinised lattice changes nothing in its paths.
        again = enumerate_paths(determinize_lattice(det, graph_scale=gs, acoustic_scale=acs))
        assert sorted((tuple(w), tuple(i)) for _, w, i, *_ in again) == \
            sorted((tuple(w), tuple(i)) for _, w, i, *_ in det_paths)


def test_prune_keeps_exactly_paths_within_beam():
    for lat in lattices():
        paths = enumerate_paths(lat)
        totals = [g + a for *_, g, a in paths]
        beam = 2.0
        kept = {(tuple(i), round(g + a, 4)) for _, _, i, g, a in paths if g + a <= min(totals) + beam}
        pruned = lat.prune(beam)
        got = {(tuple(i), round(g + a, 4)) for _, _, i, g, a in enumerate_paths(pruned)}
        # Every path within the beam survives; any other surviving path only uses arcs
        # that lie on some path within the beam (Kaldi's lattice-prune semantics).
        assert kept <= got
        assert pruned.num_arcs <= lat.num_arcs


def test_nbest_matches_enumeration():
    for lat in lattices():
        expected = sorted(best_by_words(enumerate_paths(lat), 1.0, 0.5).items(), key=lambda kv: kv[1][0])
        got = nbest(lat, 4, 1.0, 0.5)
        assert [tuple(p.words) for p in got] == [k for k, _ in expected[:4]]
        assert [p.total_cost(1.0, 0.5) for p in got] == pytest.approx([v[0] for _, v in expected[:4]], abs=1e-4)


def test_oracle_matches_enumeration_and_beats_best_path():
    rng = random.Random(3)
    for lat in lattices():
        paths = enumerate_paths(lat)
        ref = [rng.randint(1, 4) for _ in range(rng.randint(0, 4))]
        expected = min(edit_distance(ref, w) for _, w, *_ in paths)
        o = oracle_path(lat, ref)
        assert o.errors == expected == edit_distance(ref, o.words)
        assert o.errors <= edit_distance(ref, lat.best_path().words)
        assert tuple(o.words) in {tuple(w) for _, w, *_ in paths}


def test_ctm_words_are_the_best_path_with_confidences():
    for lat in lattices():
        ctm = lattice_to_ctm(lat)
        best = lat.best_path()
        assert [c.word for c in ctm] == best.words
        assert all(0.0 < c.confidence <= 1.0 + 1e-9 for c in ctm)
        starts = [c.start_frame for c in ctm]
        assert starts == sorted(starts)
        if ctm:
            assert ctm[-1].start_frame + ctm[-1].num_frames == pytest.approx(len(best.ilabels))
        for a, b in zip(ctm, ctm[1:]):
            assert a.start_frame + a.num_frames == pytest.approx(b.start_frame)


def test_word_sequences_of_determinised_lattice_equal_originals():
    for lat in lattices(4):
        assert set(word_sequences(determinize_lattice(lat))) == set(map(tuple, word_sequences(lat)))


def _elements_needed(lat, gs, acs):
    """The smallest budget under which determinize_lattice needs no pruning."""
    n = 1
    while True:
        try:
            determinize._determinize(lat, gs, acs, n)
            return n
        except determinize._DeterminizeTooLarge:
            n += 1


def test_determinize_over_budget_prunes_by_beam_ratio_and_warns(caplog):
    """Kaldi's lattice-determinize --max-mem: over the budget, the lattice is pruned to
    DETERMINIZE_BEAM_RATIO of its width until it fits; the result is the exact determinisation
    of that pruned lattice, and each pruning is logged with the lattice's name."""
    gs, acs = 1.0, 0.5
    checked = 0
    for lat in lattices(n=30, num_frames=6):
        need = _elements_needed(lat, gs, acs)
        if need < 4:
            continue
        budget = need - 1
        with caplog.at_level("WARNING", logger="frugal.lattice.determinize"):
            caplog.clear()
            got = determinize_lattice(lat, None, gs, acs, max_elements=budget, name="utt7")
        # The same pruning by hand: shrink the width until the subsets fit the budget.
        pruned, prunings = lat, 0
        while _elements_needed(pruned, gs, acs) > budget:
            width = determinize._path_cost_width(pruned, gs, acs)
            if width <= determinize.DETERMINIZE_DELTA:
                pruned = None
                break
            pruned = pruned.prune(width * determinize.DETERMINIZE_BEAM_RATIO, gs, acs)
            prunings += 1
        if pruned is None:
            continue
        assert got == determinize_lattice(pruned, None, gs, acs, max_elements=10**9)
        messages = [r.getMessage() for r in caplog.records]
        assert len(messages) == prunings >= 1
        assert all(m.startswith("utt7: determinisation exceeds") for m in messages)
        # The best path survives every pruning.
        assert got.best_path(gs, acs).words == lat.best_path(gs, acs).words
        checked += 1
    assert checked >= 5


def test_determinize_over_budget_at_width_zero_keeps_the_best_path(caplog):
    """Paths of equal cost with different words and alignments: no pruning can help, so the
    result is the best path alone (and a warning says so)."""
    from frugal.lattice.lattice import Lattice
    arcs = np.array([(0, 1, 1, 1), (0, 1, 2, 2), (1, 2, 3, 0), (1, 2, 4, 3)])
    weights = np.zeros((4, 2), dtype=np.float32)
    finals = np.full((3, 2), np.inf, dtype=np.float32)
    finals[2] = 0.0
    lat = Lattice(arcs, weights, finals)
    assert len(word_sequences(determinize_lattice(lat))) == 4
    with caplog.at_level("WARNING", logger="frugal.lattice.determinize"):
        det = determinize_lattice(lat, max_elements=1, name="utt3")
    best = lat.best_path()
    assert word_sequences(det) == [tuple(best.words)]
    assert det.best_path().ilabels == best.ilabels
    assert any("utt3: determinisation exceeds 1 elements even at width 0" in r.getMessage()
               for r in caplog.records)


def test_string_trie_matches_tuple_strings():
    """The determiniser's residual strings (trie node ids) against plain tuples: equal
    strings are one id, and common prefix and suffix are those of the tuples."""
    rng = random.Random(3)
    trie = determinize._StringTrie(label_bound=4)

    def build(s):
        sid = trie.EMPTY
        for label in s:
            sid = trie.append(sid, label)
        return sid

    ids = {}
    for _ in range(300):
        s = tuple(rng.randint(1, 3) for _ in range(rng.randint(0, 6)))
        sid = build(s)
        assert ids.setdefault(s, sid) == sid
        assert trie.string(sid) == s
    strings = list(ids)
    for _ in range(300):
        group = rng.sample(strings, rng.randint(1, 4))
        n = 0
        while all(len(s) > n and s[n] == group[0][n] for s in group):
            n += 1
        prefix = trie.common_prefix([ids[s] for s in group])
        assert trie.string(prefix) == group[0][:n]
        for s in group:
            assert trie.suffix(ids[s], prefix) == build(s[n:])
            assert trie.string(trie.suffix(ids[s], prefix)) == s[n:]


def test_determinize_breaks_exact_ties_by_the_smaller_alignment():
    """Paths of one word sequence with equal graph and acoustic costs: the determinised arc
    keeps the lexicographically smallest alignment (ilabels), whichever path comes first."""
    from frugal.lattice.lattice import Lattice
    for order in ([(0, 1, 5, 7), (0, 2, 3, 7)], [(0, 2, 3, 7), (0, 1, 5, 7)]):
        arcs = order + [(1, 3, 2, 0), (2, 3, 4, 0)]
        weights = [(1.0, 2.0), (1.0, 2.0), (0.5, 0.5), (0.5, 0.5)]
        finals = np.full((4, 2), np.inf, dtype=np.float32)
        finals[3] = (0.0, 0.0)
        det = determinize_lattice(Lattice(np.array(arcs), np.array(weights), finals))
        (path,) = [p for p in enumerate_paths(det)]
        assert path[1] == [7] and tuple(path[2]) == (3, 4)
