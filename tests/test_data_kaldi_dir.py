"""frugal import-kaldi-dir: Kaldi data directories to lhotse manifests; pipes refused."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import load_manifest

from frugal.bin.main import main as frugal_main

RATE = 16000


def write_wav(path: Path, n: int) -> None:
    sf.write(str(path), (np.random.default_rng(n).standard_normal(n) * 1000).astype(np.int16), RATE,
             subtype="PCM_16")


def make_segmented(d: Path) -> Path:
    d.mkdir(parents=True)
    write_wav(d / "rec1.wav", 5 * RATE)
    write_wav(d / "rec2.wav", 3 * RATE)
    (d / "wav.scp").write_text(f"rec1 {d / 'rec1.wav'}\nrec2 {d / 'rec2.wav'}\n")
    (d / "segments").write_text("spkA-rec1-000 rec1 0.50 2.00\nspkB-rec1-001 rec1 2.50 4.75\n"
                                "spkA-rec2-000 rec2 0.00 3.00\n")
    (d / "text").write_text("spkA-rec1-000 HELLO THERE\nspkB-rec1-001 GOOD MORNING\nspkA-rec2-000 BYE\n")
    (d / "utt2spk").write_text("spkA-rec1-000 spkA\nspkB-rec1-001 spkB\nspkA-rec2-000 spkA\n")
    return d


def run(d, out, *extra):
    return frugal_main(["import-kaldi-dir", "--kaldi-dir", str(d), "--corpus", "mine", "--part", "dev",
                        "--output-dir", str(out), *extra])


def test_segmented_dir(tmp_path):
    d = make_segmented(tmp_path / "data" / "dev")
    out = tmp_path / "manifests"
    assert run(d, out) == 0
    recs = {r.id: r for r in load_manifest(out / "mine_recordings_dev.jsonl.gz")}
    assert recs["rec1"].duration == pytest.approx(5.0) and recs["rec2"].duration == pytest.approx(3.0)
    sups = {s.id: s for s in load_manifest(out / "mine_supervisions_dev.jsonl.gz")}
    assert (sups["spkB-rec1-001"].start, sups["spkB-rec1-001"].duration) == (2.5, pytest.approx(2.25))
    assert sups["spkB-rec1-001"].text == "GOOD MORNING" and sups["spkB-rec1-001"].speaker == "spkB"
    cuts = load_manifest(out / "mine_cuts_dev.jsonl.gz")
    assert sorted(round(c.duration, 3) for c in cuts) == [1.5, 2.25, 3.0]
    assert sorted(c.id for c in cuts) == ["spkA-rec1-000", "spkA-rec2-000", "spkB-rec1-001"]  # Kaldi's ids


def test_unsegmented_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    write_wav(d / "u1.wav", 8000)
    (d / "wav.scp").write_text(f"u1 {d / 'u1.wav'}\n")
    (d / "text").write_text("u1 ONE WORD\n")
    (d / "utt2spk").write_text("u1 s1\n")
    assert run(d, tmp_path / "m") == 0
    [cut] = load_manifest(tmp_path / "m" / "mine_cuts_dev.jsonl.gz")
    assert cut.duration == pytest.approx(0.5) and cut.supervisions[0].text == "ONE WORD"
    assert cut.id == "u1"  # the utterance id, not lhotse's u1-0


def test_pipes_need_allow_commands(tmp_path, capsys):
    d = make_segmented(tmp_path / "data")
    marker = tmp_path / "ran"
    # a command with a visible side effect: it must not run without --allow-commands
    (d / "wav.scp").write_text(f"rec1 touch {marker}; cat {d / 'rec1.wav'} |\nrec2 {d / 'rec2.wav'}\n")
    assert run(d, tmp_path / "m") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "wav.scp:1" in err and "--allow-commands" in err
    assert not marker.exists() and not (tmp_path / "m").exists()
    assert run(d, tmp_path / "m", "--allow-commands") == 0
    assert marker.exists()
    recs = {r.id: r for r in load_manifest(tmp_path / "m" / "mine_recordings_dev.jsonl.gz")}
    assert recs["rec1"].sources[0].type == "command" and recs["rec1"].duration == pytest.approx(5.0)
    assert recs["rec1"].load_audio().shape == (1, 5 * RATE)


def test_text_without_audio(tmp_path, capsys):
    d = make_segmented(tmp_path / "data")
    with (d / "text").open("a") as f:
        f.write("spkC-rec3-000 LOST\n")
    assert run(d, tmp_path / "m") == 1
    err = capsys.readouterr().err.strip()
    assert f"{d / 'text'}:4" in err and "spkC-rec3-000" in err
