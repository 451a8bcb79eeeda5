"""LibriSpeech preparation on a tiny corpus in LibriSpeech's layout, and bad-input handling
of frugal prepare-data (missing directory, truncated audio, transcript without audio,
unknown option, re-run after a fix)."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import load_manifest

from frugal.bin.main import main as frugal_main

RATE = 16000
PARTS = ["train-clean-100", "dev-clean", "dev-other", "test-clean", "test-other"]
# part -> {utterance id: (samples, text)}
UTTS = {
    "train-clean-100": {"19-198-0000": (16000, "NORTHANGER ABBEY"),
                        "19-198-0001": (24000, "THIS LITTLE WORK"),
                        "26-495-0000": (8000, "CHAPTER ONE")},
    "dev-clean": {"84-121123-0000": (12000, "GO DO YOU HEAR")},
    "dev-other": {"116-288045-0000": (9000, "AS I APPROACHED THE CITY")},
    "test-clean": {"1089-134686-0000": (20000, "HE HOPED THERE WOULD BE STEW")},
    "test-other": {"1688-142285-0000": (10000, "THERE'S IRON THEY SAY")},
}


def make_librispeech(root: Path) -> Path:
    for part, utts in UTTS.items():
        chapters = {}
        for utt, (n, text) in utts.items():
            spk, chapter, _ = utt.split("-")
            d = root / part / spk / chapter
            d.mkdir(parents=True, exist_ok=True)
            samples = (np.random.default_rng(n).standard_normal(n) * 2000).astype(np.int16)
            sf.write(str(d / f"{utt}.flac"), samples, RATE, format="FLAC", subtype="PCM_16")
            chapters.setdefault(d / f"{spk}-{chapter}.trans.txt", []).append(f"{utt} {text}")
        for trans, lines in chapters.items():
            trans.write_text("\n".join(lines) + "\n")
    (root / "librispeech-lexicon.txt").write_text("ABBEY\tAE1 B IY0\nCHAPTER\tCH AE1 P T ER0\n")
    return root


def prepare(corpus, out, *extra):
    return frugal_main(["prepare-data", "librispeech", "--corpus-dir", str(corpus),
                        "--output-dir", str(out), *extra])


def test_prepare_librispeech(tmp_path):
    corpus = make_librispeech(tmp_path / "LibriSpeech")
    out, lex = tmp_path / "manifests", tmp_path / "local"
    assert prepare(corpus, out, "--lexicon-dir", str(lex)) == 0
    for part in PARTS:
        sups = {s.id: s for s in load_manifest(out / f"librispeech_supervisions_{part}.jsonl.gz")}
        cuts = load_manifest(out / f"librispeech_cuts_{part}.jsonl.gz")
        assert len(load_manifest(out / f"librispeech_recordings_{part}.jsonl.gz")) == len(UTTS[part])
        assert sorted(sups) == sorted(UTTS[part]) and len(cuts) == len(UTTS[part])
        for utt, (n, text) in UTTS[part].items():
            assert sups[utt].text == text
            assert sups[utt].speaker == utt.split("-")[0]
            assert sups[utt].duration == pytest.approx(n / RATE)
        assert sum(c.duration for c in cuts) == pytest.approx(sum(n for n, _ in UTTS[part].values()) / RATE)
    assert (lex / "lexicon.txt").read_text() == "ABBEY AE1 B IY0\nCHAPTER CH AE1 P T ER0\n"
    assert (lex / "words.txt").read_text().split() == sorted(
        {w for _, t in UTTS["train-clean-100"].values() for w in t.split()})


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("frugal prepare-data: error: ")
    return err[0]


def test_missing_corpus_dir(tmp_path, capsys):
    assert prepare(tmp_path / "nowhere", tmp_path / "m") == 1
    assert str(tmp_path / "nowhere") in one_line_error(capsys)


def test_truncated_audio_then_fixed(tmp_path, capsys):
    corpus = make_librispeech(tmp_path / "LibriSpeech")
    out = tmp_path / "manifests"
    flac = corpus / "dev-clean" / "84" / "121123" / "84-121123-0000.flac"
    good = flac.read_bytes()
    flac.write_bytes(good[: len(good) // 2])
    assert prepare(corpus, out, "--parts", "dev-clean") == 1
    err = one_line_error(capsys)
    assert str(flac) in err and "truncated" in err
    assert not list(out.glob("*")) if out.exists() else True  # nothing half-written
    flac.write_bytes(good)
    assert prepare(corpus, out, "--parts", "dev-clean") == 0
    assert len(load_manifest(out / "librispeech_cuts_dev-clean.jsonl.gz")) == 1
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]


def test_transcript_without_audio(tmp_path, capsys):
    corpus = make_librispeech(tmp_path / "LibriSpeech")
    trans = corpus / "train-clean-100" / "19" / "198" / "19-198.trans.txt"
    with trans.open("a") as f:
        f.write("19-198-0002 A MISSING ONE\n")
    assert prepare(corpus, tmp_path / "m", "--parts", "train-clean-100") == 1
    err = one_line_error(capsys)
    assert f"{trans}:3" in err and "19-198-0002" in err and "19-198-0002.flac" in err


def test_unknown_option(tmp_path, capsys):
    assert prepare(tmp_path, tmp_path / "m", "--no-such-option") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unrecognized arguments: --no-such-option" in err


def test_unknown_corpus(tmp_path, capsys):
    assert frugal_main(["prepare-data", "timit", "--corpus-dir", str(tmp_path)]) == 2
    assert "invalid choice: 'timit'" in capsys.readouterr().err
