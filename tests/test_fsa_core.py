"""Fsa/FsaVec: text form, OpenFst conversion, save/load, properties, dot, devices."""
import math

import kaldifst
import pytest
import torch

from fsa_testing import DEVICES, random_fsa
from frugal.errors import FrugalError
from frugal.fsa import Fsa, FsaVec, from_openfst, load_fsa, to_openfst

TEXT = """\
# src dst label aux score
0 1 2 7 -0.5
0 2 0 0 -1.25
1 2 1 0 0.0
1 1 3 0 -2
2 0.5
1
"""


def _assert_fsa_equal(a: Fsa, b: Fsa) -> None:
    assert torch.equal(a.arcs.cpu(), b.arcs.cpu())
    assert torch.equal(a.scores.cpu(), b.scores.cpu())
    assert torch.equal(a.final_scores.cpu(), b.final_scores.cpu())


def test_text_parses_to_the_written_tensors():
    fsa = Fsa.from_str(TEXT)
    assert fsa.arcs.dtype == torch.int32
    assert fsa.arcs.tolist() == [[0, 1, 2, 7], [0, 2, 0, 0], [1, 2, 1, 0], [1, 1, 3, 0]]
    assert fsa.scores.tolist() == [-0.5, -1.25, 0.0, -2.0]
    assert fsa.final_scores.tolist() == [-math.inf, 0.0, 0.5]


def test_text_round_trip_is_exact():
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        fsa = random_fsa(gen, 6, 15, 5, num_final=3)
        _assert_fsa_equal(Fsa.from_str(fsa.to_str()), fsa)


@pytest.mark.parametrize("text, message", [
    ("0 1 2 3 0.5\n0 1 x 3 0.5\n", "f.txt:2:"),
    ("0 1 2 0.5\n", "f.txt:1: .*got 4 fields"),
    ("0 1 2 3 0.5\n\n-1 0.0\n", "f.txt:3: negative state"),
    ("1 0.0\n1 2.0\n", "f.txt:2: state 1 is given a final score twice"),
    ("0 1 2 3 abc\n", "f.txt:1:"),
    ("0 1 2 3 0.5\n1 nan\n", "f.txt:2: score is NaN"),
    ("0 1 2 3 0.5\n0 1 2 99999999999 0.5\n", "f.txt:2: .*int32"),
])
def test_malformed_text_names_the_line(text, message):
    with pytest.raises(FrugalError, match=message):
        Fsa.from_str(text, name="f.txt")


def test_write_read_text(tmp_path):
    fsa = Fsa.from_str(TEXT)
    fsa.write_text(tmp_path / "g.txt")
    _assert_fsa_equal(Fsa.read_text(tmp_path / "g.txt"), fsa)


def test_read_text_names_the_file(tmp_path):
    path = tmp_path / "g.txt"
    path.write_text("0 1 2 3 0.5\n0 1\n0 1 2\n")
    with pytest.raises(FrugalError, match=f"{path}:3:"):
        Fsa.read_text(path)


def test_openfst_round_trip_and_label_offset():
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        fsa = random_fsa(gen, 6, 15, 5, num_final=3)
        fst = to_openfst(fsa, label_offset=1)
        # CTC blank 0 <-> OpenFst ilabel 1; weights are costs.
        first = next(iter(kaldifst.ArcIterator(fst, int(fsa.src[0]))))
        assert first.ilabel == int(fsa.labels[0]) + 1
        assert math.isclose(first.weight.value, -float(fsa.scores[0]), rel_tol=1e-6)
        # OpenFst keeps arcs per state in insertion order: exact for an arc-sorted FSA.
        _assert_fsa_equal(from_openfst(fst, label_offset=1).arc_sort(), fsa.arc_sort())
        sorted_fsa = fsa.arc_sort()
        _assert_fsa_equal(from_openfst(to_openfst(sorted_fsa, label_offset=1), label_offset=1), sorted_fsa)


def test_from_openfst_against_compiled_text():
    # An OpenFst text FST (costs, ilabel 0 = epsilon, start state 2) compiled by OpenFst itself.
    openfst_text = "2 0 1 5 0.5\n2 1 0 0 1.0\n0 1 3 0 0.25\n1 2 2 6 0\n1 1.5\n0\n"
    fst = kaldifst.compile(openfst_text, keep_state_numbering=True)
    assert fst.start == 2
    fsa = from_openfst(fst, label_offset=1)
    # States 0 and 2 swap so that the start state is 0; epsilon becomes label -1.
    # Arcs come grouped by (new) source state.
    expected = Fsa.from_str("0 2 0 5 -0.5\n0 1 -1 0 -1.0\n1 0 1 6 0\n2 1 2 0 -0.25\n1 -1.5\n2 0\n")
    _assert_fsa_equal(fsa, expected)
    assert not fsa.is_epsilon_free()


def test_save_load_weights_only(tmp_path):
    gen = torch.Generator().manual_seed(2)
    fsa = random_fsa(gen, 5, 12, 4)
    fsa.save(tmp_path / "a.pt")
    raw = torch.load(tmp_path / "a.pt", weights_only=True)
    assert raw["kind"] == "Fsa"
    _assert_fsa_equal(load_fsa(tmp_path / "a.pt"), fsa)

    fsas = [random_fsa(gen, n, 3 * n, 4) for n in (2, 5, 3)]
    vec = FsaVec.from_fsas(fsas)
    vec.save(tmp_path / "v.pt")
    loaded = load_fsa(tmp_path / "v.pt")
    assert isinstance(loaded, FsaVec) and len(loaded) == 3
    for a, b in zip(loaded, fsas):
        _assert_fsa_equal(a, b)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []

    (tmp_path / "bad.pt").write_text("not a tensor file")
    with pytest.raises(FrugalError, match="bad.pt: not a saved Fsa"):
        load_fsa(tmp_path / "bad.pt")


def test_properties():
    fsa = Fsa.from_str(TEXT)
    assert not fsa.is_arc_sorted()  # state 1: label 1 before label 3 is sorted, but 0: 2 before 0 is not
    assert fsa.arc_sort().is_arc_sorted()
    assert fsa.arc_sort().labels.tolist() == [0, 2, 1, 3]
    assert fsa.is_top_sorted()
    assert fsa.is_epsilon_free()
    assert fsa.is_connected()
    assert not Fsa.from_str("0 1 0 0 0\n1 0 0 0 0\n1\n").is_top_sorted()
    # State 3 is unreachable, state 2 reaches no final state.
    fsa = Fsa.from_str("0 1 0 0 0\n0 2 1 0 0\n3 1 0 0 0\n1\n")
    assert fsa.accessible_states().tolist() == [True, True, True, False]
    assert fsa.coaccessible_states().tolist() == [True, True, False, True]
    assert not fsa.is_connected()


def test_connect_matches_openfst():
    gen = torch.Generator().manual_seed(3)
    for _ in range(10):
        fsa = random_fsa(gen, 8, 12, 4, num_final=2, unique_aux=True)
        ours = fsa.connect()
        ref = to_openfst(fsa, label_offset=1)
        kaldifst.connect(ref)
        if ref.num_states == 0:
            assert ours.num_arcs == 0 and ours.num_states == 1 and ours.final_scores.item() == -math.inf
            continue
        ref = from_openfst(ref, label_offset=1)
        assert ours.is_connected() and ours.num_states == ref.num_states
        # Unique aux labels identify the arcs that survive; their endpoints map consistently.
        assert sorted(ours.aux_labels.tolist()) == sorted(ref.aux_labels.tolist())
        assert sorted(ours.final_scores.tolist()) == sorted(ref.final_scores.tolist())


def test_to_dot_lists_states_and_arcs():
    dot = Fsa.from_str(TEXT).to_dot()
    assert dot.startswith('digraph "fsa" {') and dot.rstrip().endswith("}")
    assert dot.count("->") == 4 and dot.count("doublecircle") == 2
    assert '0 -> 1 [label = "2:7/-0.5"];' in dot


@pytest.mark.parametrize("device", DEVICES)
def test_fsavec_indexing_and_device(device):
    gen = torch.Generator().manual_seed(4)
    fsas = [random_fsa(gen, n, 2 * n, 3) for n in (3, 1, 4)]
    vec = FsaVec.from_fsas(fsas).to(device)
    assert vec.device.type == device and len(vec) == 3
    assert vec.arc_fsa_index().tolist() == [0] * 6 + [1] * 2 + [2] * 8
    for a, b in zip(vec, fsas):
        _assert_fsa_equal(a, b)
    _assert_fsa_equal(vec[-1], fsas[-1])
    _assert_fsa_equal(fsas[0].to(device), fsas[0])


def test_invalid_construction():
    with pytest.raises(ValueError, match="int32"):
        Fsa(torch.zeros(1, 4, dtype=torch.int64), torch.zeros(1), torch.zeros(2))
    with pytest.raises(ValueError, match="arc states"):
        Fsa(torch.tensor([[0, 2, 0, 0]], dtype=torch.int32), torch.zeros(1), torch.zeros(2))
    with pytest.raises(ValueError, match="arc states"):
        FsaVec(torch.tensor([[0, 1, 0, 0]], dtype=torch.int32), torch.zeros(1), torch.zeros(2),
               torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]))
