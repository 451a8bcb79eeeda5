"""Lattice files: Kaldi text form and binary form, round trips, cut-short files, kaldifst."""
import random

import numpy as np
import pytest

from decode_testing import enumerate_paths, random_lattice
from frugal.lattice.lattice import Lattice
from frugal.lattice.io import read_lattices, write_lattices
from frugal.lattice.determinize import determinize_lattice
from frugal.errors import FrugalError

# As Kaldi's lattice-copy prints them (key followed by a space, tabs, blank line after each).
KALDI_TEXT = """utt1 
0\t1\t12\t5\t3.25,41.5
0\t2\t12\t0\t4.5,40.25
1\t3\t13\t0\t0,38.5
2\t3\t14\t7\t1.125,39
3\t1.5,0

utt2 
0\t1\t5\t3.25,80.5,12_13_13
1\t2\t7\t0.5,10,14
1\t2,0,15_15
2\t0,0,

"""


def sample_lattices():
    rng = random.Random(11)
    lats = {f"u{i}": random_lattice(rng) for i in range(4)}
    # Floats that need all of float32's digits, and tiny / large magnitudes.
    lats["u0"].weights[:3] = np.array([[0.1, 1e-7], [123456.79, -2.5e-3], [1 / 3, 2 / 3]], dtype=np.float32)
    lats["d1"] = determinize_lattice(lats["u1"])
    lats["empty"] = Lattice(np.zeros((0, 4)), np.zeros((0, 2)), np.full((1, 2), np.inf))
    return lats


@pytest.mark.parametrize("name", ["lats.txt", "lats.pt"])
def test_round_trip_is_lossless(tmp_path, name):
    lats = sample_lattices()
    write_lattices(tmp_path / name, lats)
    back = read_lattices(tmp_path / name)
    assert list(back) == list(lats)
    for key in lats:
        assert back[key] == lats[key], key
        assert back[key].is_compact == lats[key].is_compact


def test_reads_kaldi_text(tmp_path):
    path = tmp_path / "kaldi.txt"
    path.write_text(KALDI_TEXT)
    lats = read_lattices(path)
    a, b = lats["utt1"], lats["utt2"]
    assert not a.is_compact and b.is_compact
    assert a.arcs.tolist() == [[0, 1, 12, 5], [0, 2, 12, 0], [1, 3, 13, 0], [2, 3, 14, 7]]
    assert a.weights.tolist() == [[3.25, 41.5], [4.5, 40.25], [0, 38.5], [1.125, 39]]
    assert a.finals.tolist()[3] == [1.5, 0] and not a.is_final()[:3].any()
    assert b.arcs.tolist() == [[0, 1, 5, 5], [1, 2, 7, 7]]
    assert b.alignments == [(12, 13, 13), (14,)]
    assert b.final_alignments == {1: (15, 15)}
    paths = {tuple(w): (g, a_, tuple(i)) for _, w, i, g, a_ in enumerate_paths(b)}
    assert paths == {(5,): (5.25, 80.5, (12, 13, 13, 15, 15)), (5, 7): (3.75, 90.5, (12, 13, 13, 14))}
    # Written back in Kaldi's form (apart from the key's trailing space).
    write_lattices(tmp_path / "back.txt", lats)
    assert (tmp_path / "back.txt").read_text() == KALDI_TEXT.replace(" \n", "\n")


def test_cut_short_text_names_file_and_line(tmp_path):
    path = tmp_path / "lats.txt"
    write_lattices(path, sample_lattices())
    lines = path.read_text().split("\n")
    last = max(i for i in range(len(lines) - 3) if lines[i - 1].strip())  # inside the last lattices
    for cut in (3, 10, last):
        short = tmp_path / f"short{cut}.txt"
        text = "\n".join(lines[:cut])
        short.write_text(text[:-2] if cut == 10 else text)  # also cut inside a line
        with pytest.raises(FrugalError, match=rf"{short}:{cut}: .*(cut short|expected)"):
            read_lattices(short)
    bad = tmp_path / "bad.txt"
    bad.write_text("u1\n0\t1\t2\t3\t1.5\n\n")
    with pytest.raises(FrugalError, match=rf"{bad}:2: weight '1.5'"):
        read_lattices(bad)


def test_cut_short_binary_names_file(tmp_path):
    path = tmp_path / "lats.pt"
    write_lattices(path, sample_lattices())
    data = path.read_bytes()
    short = tmp_path / "short.pt"
    short.write_bytes(data[: len(data) // 2])
    with pytest.raises(FrugalError, match=rf"{short}: not a complete frugal binary lattice file"):
        read_lattices(short)
    with pytest.raises(FrugalError, match="no such lattice file"):
        read_lattices(tmp_path / "missing.pt")


def test_kaldifst_conversion():
    for key, lat in sample_lattices().items():
        if lat.is_compact or lat.num_arcs == 0:
            continue
        fst = lat.to_kaldifst()
        assert Lattice.from_kaldifst(fst) == lat
        # Against OpenFst's own printing (6 significant digits).
        printed = [line.split() for line in fst.to_str(show_weight_one=True).splitlines()]
        arcs = [[int(x) for x in f[:4]] + [float(w) for w in f[4].split(",")] for f in printed if len(f) == 5]
        assert np.array(arcs)[:, :4].tolist() == lat.arcs.tolist()
        assert np.array(arcs)[:, 4:] == pytest.approx(lat.weights, rel=1e-5, abs=1e-6)
