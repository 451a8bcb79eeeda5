"""CTC topologies: the frame sequences H o (token sequence) accepts are exactly CTC's alignments."""
import itertools

import kaldifst
import pytest

from frugal.graph.ctc_topo import ctc_topo
from frugal.fsa.openfst import fst_arcs, iter_paths, linear_fst

TOKENS = [1, 2, 3]


def ctc_alignments(target, num_frames, compact):
    """Brute force over all frame labelings (0 = blank).

    Standard CTC: merge repeated labels, then drop blanks. Compact: a token lasts one
    frame, so only blanks are dropped."""
    out = set()
    for frames in itertools.product([0] + TOKENS, repeat=num_frames):
        if compact:
            collapsed = [x for x in frames if x]
        else:
            collapsed = [x for k, x in enumerate(frames) if x and (k == 0 or frames[k - 1] != x)]
        if collapsed == list(target):
            out.add(frames)
    return out


def graph_alignments(H, target, num_frames):
    tokens = linear_fst(target)
    kaldifst.arcsort(tokens, sort_type="ilabel")
    HT = kaldifst.compose(H, tokens)
    out = set()
    for ilabels, olabels, cost in iter_paths(HT, max_arcs=num_frames):
        assert olabels == list(target) and cost == 0.0
        if len(ilabels) == num_frames:
            frames = tuple(i - 1 for i in ilabels)  # input labels are token id + 1
            assert frames not in out, "two paths for one alignment"
            out.add(frames)
    return out


@pytest.mark.parametrize("compact", [False, True])
def test_topology_is_epsilon_free_and_sized(compact):
    H = ctc_topo(TOKENS, compact=compact)
    arcs = fst_arcs(H)
    assert all(i != 0 for _, _, i, _, _ in arcs.arcs)
    n = len(TOKENS) + 1
    assert len(arcs.arcs) == (n if compact else n * n)
    assert len(arcs.finals) == (1 if compact else n)


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("target, num_frames", [
    ((1,), 4), ((1, 2), 5), ((2, 2), 5), ((1, 1, 2), 6), ((3, 1, 3), 5), ((2, 2), 2), ((), 3),
])
def test_alignments_match_brute_force(compact, target, num_frames):
    H = ctc_topo(TOKENS, compact=compact)
    expected = ctc_alignments(target, num_frames, compact)
    assert graph_alignments(H, target, num_frames) == expected
    if not compact and target == (2, 2) and num_frames == 2:
        assert expected == set()  # a repeated token needs a blank between its frames
