"""Babel preparation on a tiny language pack in the LDC layout, and its lexicon."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import load_manifest

from frugal.bin.main import main as frugal_main
from frugal.data.corpora.babel import read_babel_lexicon

RATE = 8000
SECONDS = 10.0
# split -> conversation side -> transcript lines (time marks and texts alternating)
SIDES = {
    "training": {
        "BABEL_OP2_404_10019_20141026_210102_inLine": [
            "[0.000]", "<no-speech>", "[1.250]", "gamarjoba (()) <breath> kargad", "[3.500]",
            "<lipsmack> ara <click> <foreign> kargad", "[6.000]"],
        "BABEL_OP2_404_10019_20141026_210102_outLine": [
            "[0.000]", "<sta> gamarjoba", "[2.000]"],
    },
    "dev": {
        "BABEL_OP2_404_20001_20141101_100000_inLine": [
            "[0.500]", "kargad <hes> ara", "[2.750]", "<no-speech>", "[4.000]"],
    },
}
EXPECTED = {  # part -> (start, duration, text) of the speech segments
    "train": {("BABEL_OP2_404_10019_20141026_210102_inLine", 1.25, 2.25, "gamarjoba <UNK> <VNOISE> kargad"),
              ("BABEL_OP2_404_10019_20141026_210102_inLine", 3.5, 2.5, "<VNOISE> ara <NOISE> <UNK> kargad"),
              ("BABEL_OP2_404_10019_20141026_210102_outLine", 0.0, 2.0, "<NOISE> gamarjoba")},
    "dev10h": {("BABEL_OP2_404_20001_20141101_100000_inLine", 0.5, 2.25, "kargad <UNK> ara")},
}
LEXICON = ("gamarjoba\tg a . m a r . dZ o . b a\n"
           "kargad\tk a r _1 . g a d _2\tk a r . g a t\n"
           "ara\ta . r a\n")


def make_pack(root: Path) -> Path:
    pack = root / "IARPA_BABEL_OP2_404_LDC2016S12" / "IARPA_BABEL_OP2_404"
    for split, sides in SIDES.items():
        for name, lines in sides.items():
            audio = pack / "conversational" / split / "audio" / f"{name}.sph"
            audio.parent.mkdir(parents=True, exist_ok=True)
            n = int(SECONDS * RATE)
            sf.write(str(audio), (np.random.default_rng(n).standard_normal(n) * 800).astype(np.int16),
                     RATE, format="NIST", subtype="PCM_16")
            txt = pack / "conversational" / split / "transcription" / f"{name}.txt"
            txt.parent.mkdir(parents=True, exist_ok=True)
            txt.write_text("\n".join(lines) + "\n")
    ref = pack / "conversational" / "reference_materials"
    ref.mkdir(parents=True)
    (ref / "lexicon.txt").write_text(LEXICON)
    return root


def test_prepare_babel(tmp_path):
    root = make_pack(tmp_path / "babel")
    out, lex = tmp_path / "manifests", tmp_path / "local"
    assert frugal_main(["prepare-data", "babel", "--corpus-dir", str(root), "--output-dir", str(out),
                        "--lexicon-dir", str(lex), "--language", "404-georgian"]) == 0
    for part, expected in EXPECTED.items():
        sups = load_manifest(out / f"babel_supervisions_{part}.jsonl.gz")
        got = {(s.recording_id, s.start, round(s.duration, 6), s.text) for s in sups}
        assert got == expected
        cuts = load_manifest(out / f"babel_cuts_{part}.jsonl.gz")
        assert sorted(c.duration for c in cuts) == pytest.approx(sorted(d for _, _, d, _ in expected))
        for r in load_manifest(out / f"babel_recordings_{part}.jsonl.gz"):
            assert r.duration == pytest.approx(SECONDS)
    assert (lex / "lexicon.txt").read_text().splitlines() == sorted([
        "gamarjoba g a m a r dZ o b a", "kargad k_1 a_1 r_1 g_2 a_2 d_2", "kargad k a r g a t",
        "ara a r a", "<UNK> SPN", "<NOISE> NSN", "<VNOISE> VNS", "<SIL> SIL"])


def test_romanized_lexicon_column(tmp_path):
    path = tmp_path / "lexicon.txt"
    path.write_text("გამარჯობა\tgamarjoba\tg a . m a r\n")
    assert read_babel_lexicon(path, romanized=True) == [("გამარჯობა", ["g", "a", "m", "a", "r"])]
    assert read_babel_lexicon(path, romanized=False) == [
        ("გამარჯობა", ["gamarjoba"]), ("გამარჯობა", ["g", "a", "m", "a", "r"])]


def test_wrong_language_and_missing_audio(tmp_path, capsys):
    root = make_pack(tmp_path / "babel")
    args = ["prepare-data", "babel", "--corpus-dir", str(root), "--output-dir", str(tmp_path / "m")]
    assert frugal_main(args + ["--language", "101-cantonese"]) == 1
    assert "--language 101-cantonese" in capsys.readouterr().err
    name = "BABEL_OP2_404_20001_20141101_100000_inLine"
    next(root.rglob(f"{name}.sph")).unlink()
    assert frugal_main(args) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{name}.txt" in err and f"{name}.sph" in err
