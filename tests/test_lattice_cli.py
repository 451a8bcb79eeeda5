"""`frugal lattice` sub-commands on lattices decoded from a toy HLG."""
import os
import random
import subprocess
import sys

import pytest
import torch

from decode_testing import arpa_sentence_cost, enumerate_paths, make_lang, random_lexicon_and_arpa, structured_scores
from frugal.bin.main import main as frugal_main
from frugal.decode.decoder import Decoder, DecoderConfig
from frugal.decode.graph import DecodingGraph
from frugal.lattice.io import read_lattices, write_lattices
from frugal.lattice.determinize import determinize_lattice
from frugal.graph.compile import compile_hlg
from frugal.lang.symbols import SymbolTable


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("latcli")
    lang, G = make_lang(d, seed=4, num_words=12, num_bigrams=30)
    graph = DecodingGraph.from_openfst(compile_hlg(lang, G))
    lengths = [20, 14, 25]
    scores = structured_scores(graph.max_label + 1, lengths, seed=2)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    res = Decoder(graph, DecoderConfig(beam=12, lattice_beam=4)).decode(scores, torch.tensor(lengths), lattice=True)
    torch.set_num_threads(n)
    lats = {f"utt{u}": r.lattice for u, r in enumerate(res)}
    write_lattices(d / "lat.txt", lats)
    # A second LM on the same words, for rescoring.
    _, arpa2 = random_lexicon_and_arpa(random.Random(99), 12, 25)
    (d / "lm2.arpa").write_text(arpa2)
    return d, lats, SymbolTable.read(lang.path / "words.txt")


def run(capsys, *argv):
    code = frugal_main(["lattice", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_show_copy_and_scale(setup, tmp_path, capsys):
    d, lats, _ = setup
    code, out, _ = run(capsys, "show", d / "lat.txt", "--utt", "utt1")
    assert code == 0 and out == (d / "lat.txt").read_text().split("\n\n")[1].lstrip("\n") + "\n\n"
    assert run(capsys, "copy", d / "lat.txt", tmp_path / "lat.pt")[0] == 0
    assert read_lattices(tmp_path / "lat.pt") == lats
    assert run(capsys, "scale", tmp_path / "lat.pt", tmp_path / "scaled.txt", "--acoustic-scale", 0.5,
               "--lm-scale", 2)[0] == 0
    scaled = read_lattices(tmp_path / "scaled.txt")["utt0"]
    assert scaled.weights[:, 0] == pytest.approx(2 * lats["utt0"].weights[:, 0])
    assert scaled.weights[:, 1] == pytest.approx(0.5 * lats["utt0"].weights[:, 1])


def test_best_path_nbest_posteriors_ctm(setup, capsys):
    d, lats, words = setup
    code, out, _ = run(capsys, "best-path", d / "lat.txt", "--words", d / "lang" / "words.txt", "--with-costs")
    assert code == 0
    for line, (key, lat) in zip(out.splitlines(), lats.items()):
        best = lat.best_path()
        f = line.split()
        assert f[0] == key and f[3:] == [words.symbol(w) for w in best.words]
        assert float(f[1]) == pytest.approx(best.graph_cost, abs=1e-3)
        assert float(f[2]) == pytest.approx(best.acoustic_cost, abs=1e-3)
    code, out, _ = run(capsys, "nbest", d / "lat.txt", 3, "--utt", "utt0")
    lines = out.splitlines()
    assert code == 0 and [l.split()[0] for l in lines] == ["utt0-1", "utt0-2", "utt0-3"][:len(lines)]
    totals = [float(l.split()[1]) for l in lines]
    assert totals == sorted(totals) and len({tuple(l.split()[4:]) for l in lines}) == len(lines)
    code, out, _ = run(capsys, "posteriors", d / "lat.txt", "--utt", "utt2")
    assert code == 0 and all(0 < float(l.split()[3]) <= 1 + 1e-6 for l in out.splitlines())
    code, out, _ = run(capsys, "to-ctm", d / "lat.txt", "--frame-shift", 0.04, "--words", d / "lang" / "words.txt")
    assert code == 0
    ctm = [l.split() for l in out.splitlines()]
    assert [f[4] for f in ctm if f[0] == "utt0"] == [words.symbol(w) for w in lats["utt0"].best_path().words]
    assert all(f[1] == "1" and 0 < float(f[5]) <= 1 for f in ctm)
    for a, b in zip(ctm, ctm[1:]):
        if a[0] == b[0]:  # words of an utterance follow each other without overlap
            assert float(a[3]) > 0 and float(a[2]) + float(a[3]) == pytest.approx(float(b[2]), abs=1e-3)


def test_oracle(setup, tmp_path, capsys):
    d, lats, words = setup
    refs = {}
    for key, lat in lats.items():
        ws = [words.symbol(w) for w in lat.best_path().words]
        refs[key] = ws[1:] + ["OOVWORD"]  # one deletion, one word no lattice can have
    (tmp_path / "text").write_text("".join(f"{k} {' '.join(v)}\n" for k, v in refs.items()))
    code, out, err = run(capsys, "oracle", d / "lat.txt", "--ref", tmp_path / "text", "--words",
                         d / "lang" / "words.txt")
    assert code == 0
    num_words = sum(len(v) for v in refs.values())
    errors = int(err.split("[")[1].split("/")[0])
    assert errors <= 2 * len(refs)  # at worst the 1-best's errors
    assert errors >= len(refs)      # OOVWORD is always an error
    assert f"/ {num_words} ]" in err and len(out.splitlines()) == len(refs)
    (tmp_path / "text2").write_text("other a b\n")
    code, _, err = run(capsys, "oracle", d / "lat.txt", "--ref", tmp_path / "text2", "--words",
                       d / "lang" / "words.txt")
    assert code == 1 and "no reference for utterance 'utt0'" in err


def test_lm_rescore_replaces_lm_costs(setup, tmp_path, capsys):
    d, lats, words = setup
    det = {k: determinize_lattice(lat) for k, lat in lats.items()}
    write_lattices(tmp_path / "det.txt", det)
    assert run(capsys, "lm-rescore", tmp_path / "det.txt", tmp_path / "same.txt", "--words",
               d / "lang" / "words.txt", "--old-lm", d / "lm.arpa", "--new-lm", d / "lm.arpa")[0] == 0
    assert run(capsys, "lm-rescore", tmp_path / "det.txt", tmp_path / "new.txt", "--words",
               d / "lang" / "words.txt", "--old-lm", d / "lm.arpa", "--new-lm", d / "lm2.arpa")[0] == 0
    same, new = read_lattices(tmp_path / "same.txt"), read_lattices(tmp_path / "new.txt")
    arpa1, arpa2 = (d / "lm.arpa").read_text(), (d / "lm2.arpa").read_text()
    for key, lat in det.items():
        before = {tuple(w): (g, a) for _, w, _, g, a in enumerate_paths(lat)}
        for rescored, arpa in ((same[key], arpa1), (new[key], arpa2)):
            after = {tuple(w): (g, a) for _, w, _, g, a in enumerate_paths(rescored)}
            assert set(after) == set(before)
            for ws, (g, a) in before.items():
                symbols = [words.symbol(w) for w in ws]
                expected = g - arpa_sentence_cost(arpa1, symbols) + arpa_sentence_cost(arpa, symbols)
                assert after[ws] == pytest.approx((expected, a), abs=2e-3)


def test_draw_and_errors(setup, tmp_path, capsys):
    d, _, _ = setup
    assert run(capsys, "draw", d / "lat.txt", "--utt", "utt0", "--output", tmp_path / "l.dot")[0] == 0
    assert (tmp_path / "l.dot").read_text().startswith("digraph")
    code, _, err = run(capsys, "draw", d / "lat.txt", "--utt", "utt0", "--output", tmp_path / "l.svg")
    assert (code == 0 and (tmp_path / "l.svg").exists()) or "'dot' is not installed" in err
    code, _, err = run(capsys, "best-path", tmp_path / "missing.txt")
    assert code == 1 and "missing.txt: no such lattice file" in err
    code, _, err = run(capsys, "show", d / "lat.txt", "--utt", "nope")
    assert code == 1 and "no lattice for utterance 'nope'" in err


def test_output_into_a_closed_pipe_stops_quietly(setup):
    """`frugal lattice show ... | head -1`: the reader has gone; no traceback, the shell's 141."""
    d, _, _ = setup
    read_end, write_end = os.pipe()
    os.close(read_end)  # before the tool writes, so that its first write fails whatever the pipe holds
    proc = subprocess.Popen([sys.executable, "-m", "frugal.bin.main", "lattice", "show", str(d / "lat.txt")],
                            stdout=write_end, stderr=subprocess.PIPE, text=True)
    os.close(write_end)
    _, err = proc.communicate()
    assert proc.returncode == 141 and err == "", err
