"""Switchboard (+ eval2000) preparation on a tiny corpus in the LDC layout."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import load_manifest

from frugal.bin.main import main as frugal_main

RATE = 8000
SECONDS = 12.0


def write_sph(path: Path, seconds: float, channels: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(seconds * RATE)
    samples = (np.random.default_rng(n).standard_normal((n, channels)) * 1000).astype(np.int16)
    sf.write(str(path), samples, RATE, format="NIST", subtype="PCM_16")


# conversation -> side -> [(start, end, text)]
CONVERSATIONS = {
    "2001": {"A": [(0.0, 1.0, "[silence]"), (1.0, 2.5, "hi um yeah"), (3.0, 4.25, "i'm from texas")],
             "B": [(0.5, 2.0, "hello [laughter]"), (4.5, 6.0, "okay")]},
    "2005": {"A": [(0.0, 3.0, "so what do you think")],
             "B": [(3.5, 5.0, "[noise] well"), (5.0, 5.5, "[silence]"), (6.0, 9.5, "i don't know")]},
    "2010": {"A": [(1.0, 2.0, "right")], "B": [(2.0, 3.0, "yes")]},
}
EVAL2000 = {"en_4156": [
    (1.5, 3.25, "A", '%um, <contraction e_form="[they=>they][\'re=>are]">they\'re not that thrilled'),
    (3.5, 5.0, "B", "What do you mean? {breath} oh, (( about )) it"),
    (6.0, 7.0, "A", "{lipsmack}")]}


def make_switchboard(root: Path) -> Path:
    swbd = root / "LDC97S62"
    for conv, sides in CONVERSATIONS.items():
        write_sph(swbd / "swb1_d1" / "data" / f"sw0{conv}.sph", SECONDS, channels=2)
        for side, segments in sides.items():
            trans = swbd / "swb_ms98_transcriptions" / conv[:2] / conv / f"sw{conv}{side}-ms98-a-trans.text"
            trans.parent.mkdir(parents=True, exist_ok=True)
            trans.write_text("".join(f"sw{conv}{side}-ms98-a-{i:04d} {s:.6f} {e:.6f} {t}\n"
                                     for i, (s, e, t) in enumerate(segments, 1)))
    ev = root / "eval2000"
    for name, segments in EVAL2000.items():
        write_sph(ev / "LDC2002S09" / "hub5e_00" / "english" / f"{name}.sph", SECONDS, channels=2)
        txt = ev / "LDC2002T43" / "reference" / "english" / f"{name}.txt"
        txt.parent.mkdir(parents=True, exist_ok=True)
        txt.write_text("#Language: eng\n#File id: 4156\n\n" +
                       "".join(f"{s:.2f} {e:.2f} {side}: {t}\n" for s, e, side, t in segments))
    return root


def speech_segments(conv):
    return [(side, s, e, t) for side, segs in CONVERSATIONS[conv].items() for s, e, t in segs if t != "[silence]"]


def test_prepare_switchboard(tmp_path):
    root = make_switchboard(tmp_path / "corpora")
    out, lex = tmp_path / "manifests", tmp_path / "local"
    assert frugal_main(["prepare-data", "switchboard", "--corpus-dir", str(root / "LDC97S62"),
                        "--eval2000-dir", str(root / "eval2000"), "--output-dir", str(out),
                        "--lexicon-dir", str(lex), "--dev-size", "3"]) == 0
    # dev: whole conversations in name order until >= 3 utterances: sw2001 has 4
    expected = {"dev": ["2001"], "train": ["2005", "2010"]}
    for part, convs in expected.items():
        recs = load_manifest(out / f"switchboard_recordings_{part}.jsonl.gz")
        sups = load_manifest(out / f"switchboard_supervisions_{part}.jsonl.gz")
        cuts = load_manifest(out / f"switchboard_cuts_{part}.jsonl.gz")
        assert sorted(r.id for r in recs) == [f"sw0{c}" for c in convs]
        for r in recs:
            assert r.duration == pytest.approx(SECONDS) and r.num_channels == 2
        want = sorted((f"sw0{c}", side, s, e, t) for c in convs for side, s, e, t in speech_segments(c))
        got = sorted((s.recording_id, "AB"[s.channel], s.start, s.end, s.text) for s in sups)
        assert [g[:2] + (pytest.approx(g[2]), pytest.approx(g[3])) + g[4:] for g in got] == want
        for s in sups:
            assert s.speaker == f"{s.recording_id}{'AB'[s.channel]}"
        # one cut per segment, trimmed to it
        assert len(cuts) == len(sups)
        assert sorted(round(c.duration, 3) for c in cuts) == sorted(round(e - s, 3) for _, _, s, e, _ in want)
        assert all(len(c.supervisions) == 1 and c.supervisions[0].start == 0 for c in cuts)
    ev = load_manifest(out / "switchboard_supervisions_eval2000.jsonl.gz")
    assert sorted((s.start, s.channel, s.text) for s in ev) == [
        (1.5, 0, "%um they're not that thrilled"), (3.5, 1, "what do you mean oh about it")]
    assert len(load_manifest(out / "switchboard_cuts_eval2000.jsonl.gz")) == 2
    train_words = {w for c in ("2005", "2010") for *_, t in speech_segments(c) for w in t.split()}
    assert (lex / "words.txt").read_text().split() == sorted(train_words)


def test_truncated_sphere_file(tmp_path, capsys):
    root = make_switchboard(tmp_path / "corpora")
    sph = root / "LDC97S62" / "swb1_d1" / "data" / "sw02005.sph"
    sph.write_bytes(sph.read_bytes()[:5000])
    assert frugal_main(["prepare-data", "switchboard", "--corpus-dir", str(root / "LDC97S62"),
                        "--output-dir", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(sph) in err and "truncated" in err


def test_audio_without_transcript(tmp_path, capsys):
    root = make_switchboard(tmp_path / "corpora")
    trans = root / "LDC97S62" / "swb_ms98_transcriptions" / "20" / "2005" / "sw2005B-ms98-a-trans.text"
    trans.unlink()
    assert frugal_main(["prepare-data", "switchboard", "--corpus-dir", str(root / "LDC97S62"),
                        "--output-dir", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "sw02005.sph" in err and "sw2005B-ms98-a-trans.text" in err
