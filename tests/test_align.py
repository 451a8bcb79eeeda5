"""Viterbi alignment through numerator graphs, alignment files and show-alignments output."""
import pytest
import torch

from frugal.bin.main import main as frugal_main
from frugal.decode.align import show_alignments
from frugal.decode.align import align, load_alignments, save_alignments
from frugal.errors import FrugalError
from frugal.graph.chain import NumeratorBuilder, NumeratorGraphs
from frugal.graph.den_graph import make_den_graph
from frugal.graph.hmm_topo import CHAIN_TOPOLOGY, PdfMap
from test_chain_graphs import A, B, C, PHONES, SIL, toy_lexicon, toy_phone_lm


def outputs_for(paths, T, num_pdfs):
    """Outputs that favour the given pdf sequences (0 on them, -10 elsewhere)."""
    y = torch.full((len(paths), T, num_pdfs), -10.0)
    for b, path in enumerate(paths):
        y[b, torch.arange(len(path)), torch.tensor(path)] = 0.0
    return y


def test_alignment_is_the_obvious_best_path(tmp_path, capsys):
    pdf_map = PdfMap(PHONES, CHAIN_TOPOLOGY, 1)  # pdfs: SIL 0/1, a 2/3, b 4/5, c 6/7
    den = make_den_graph(toy_phone_lm(), pdf_map, PHONES)
    builder = NumeratorBuilder(toy_lexicon(), pdf_map, den.graph)
    graphs = NumeratorGraphs.from_graphs([builder.build(["X", "Y"]), builder.build(["Y"])])
    path1 = [0, 1, 2, 3, 4, 6, 7]  # SIL SIL a a b c c
    path2 = [2, 3, 3]              # a a a (Y's second pronunciation)
    y = outputs_for([path1, path2], 7, pdf_map.num_pdfs)
    ali = align(y, torch.tensor([7, 3]), graphs, ["utt1", "utt2"])
    assert ali[0].pdfs == path1
    assert ali[0].phones == [SIL, SIL, A, A, B, C, C]
    assert ali[0].phone_starts == [True, False, True, False, True, True, False]
    assert (ali[0].words, ali[0].word_starts) == ([1, 2], [2, 5])
    assert ali[0].phone_segments() == [(SIL, 0, 2), (A, 2, 2), (B, 4, 1), (C, 5, 2)]
    assert (ali[1].pdfs, ali[1].phones, ali[1].words, ali[1].word_starts) == (path2, [A] * 3, [2], [0])
    # Too few frames: no alignment.
    none = align(y[:1, :2], torch.tensor([2]), NumeratorGraphs.from_graphs([builder.build(["X", "Y"])]))
    assert none[0].score == float("-inf") and none[0].pdfs == []

    save_alignments(tmp_path / "ali.1.pt", ali, frame_shift=0.03)
    back, shift = load_alignments(tmp_path / "ali.1.pt")
    assert back == ali and shift == 0.03

    lang = tmp_path / "lang"
    lang.mkdir()
    toy_lexicon().phones.write(lang / "phones.txt")
    toy_lexicon().words.write(lang / "words.txt")
    assert frugal_main(["show-alignments", "--alignments", str(tmp_path / "ali.1.pt"), "--lang", str(lang),
                                 "--words", "--times"]) == 0
    out = capsys.readouterr().out
    assert out == (
        "utt1 [ 0 1 ] [ 2 3 ] [ 4 ] [ 6 7 ]\n"
        "utt1 SIL     a       b     c\n"
        "utt1 X@0.06 Y@0.15\n"
        "utt1 SIL 0.00 0.06\n"
        "utt1 a 0.06 0.12\n"
        "utt1 b 0.12 0.15\n"
        "utt1 c 0.15 0.21\n"
        "\n"
        "utt2 [ 2 3 3 ]\n"
        "utt2 a\n"
        "utt2 Y@0.00\n"
        "utt2 a 0.00 0.09\n"
        "\n")
    assert frugal_main(["show-alignments", "--alignments", str(tmp_path / "ali.1.pt"), "--lang", str(lang)]) == 0
    assert capsys.readouterr().out.splitlines()[:3] == [
        "utt1 [ 0 1 ] [ 2 3 ] [ 4 ] [ 6 7 ]", "utt1 SIL     a       b     c", ""]
    # --pdf-map checks that each pdf belongs to the aligned phone.
    pdf_map.write(tmp_path / "pdf_map.txt", toy_lexicon().phones)
    assert frugal_main(["show-alignments", "--alignments", str(tmp_path / "ali.1.pt"), "--lang", str(lang),
                                 "--pdf-map", str(tmp_path / "pdf_map.txt")]) == 0
    capsys.readouterr()
    bad = ali[0]
    bad.pdfs[0] = 2  # a pdf of "a" where SIL is aligned
    save_alignments(tmp_path / "bad.pt", [bad], frame_shift=0.03)
    with pytest.raises(FrugalError, match="frame 0: pdf 2 is not a pdf of phone SIL"):
        list(show_alignments(["--alignments", str(tmp_path / "bad.pt")][1:], lang, tmp_path / "pdf_map.txt"))
    (tmp_path / "junk.pt").write_text("junk")
    with pytest.raises(FrugalError, match="not an alignment file"):
        load_alignments(tmp_path / "junk.pt")
