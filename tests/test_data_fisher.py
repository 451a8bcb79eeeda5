"""Fisher English preparation on a tiny corpus in the LDC layout: speaker-disjoint parts
of the requested sizes, deterministic for a seed."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import load_manifest

from frugal.bin.main import main as frugal_main

RATE = 8000
CALL_SECONDS = 30.0
NUM_CALLS = 12
PARTS = ["dev", "test", "train_sup", "train_unsup"]


def call_segments(call: int):
    """(start, end, side, text) of a call: side A speaks 2 s turns, side B 3 s turns."""
    segs = []
    for k in range(3):
        segs.append((k * 6.0, k * 6.0 + 2.0, "A", f"call {call} a turn {k}"))
        segs.append((k * 6.0 + 2.5, k * 6.0 + 5.5, "B", f"call {call} b turn {k}"))
    return segs


def speakers_of(call: int):
    # Speakers 0..17; some take part in two calls (as in Fisher), A sides 0..11, B sides 12..17.
    return {"A": f"pin{call:03d}", "B": f"pin{12 + call % 6:03d}"}


def make_fisher(root: Path) -> Path:
    rows = ["CALL_ID,DATE,TOPIC,SIG,SQ,APIN,ASX.DL,APHNUM,APHSET,APHTYP,BPIN,BSX.DL,BPHNUM,BPHSET,BPHTYP"]
    for call in range(1, NUM_CALLS + 1):
        name = f"fe_03_{call:05d}"
        sph = root / "LDC2004S13" / "fe_03_p1_sph1" / "audio" / "000" / f"{name}.sph"
        sph.parent.mkdir(parents=True, exist_ok=True)
        n = int(CALL_SECONDS * RATE)
        sf.write(str(sph), (np.random.default_rng(call).standard_normal((n, 2)) * 500).astype(np.int16),
                 RATE, format="NIST", subtype="PCM_16")
        txt = root / "LDC2004T19" / "data" / "trans" / "000" / f"{name}.txt"
        txt.parent.mkdir(parents=True, exist_ok=True)
        txt.write_text(f"# {name}.sph\n# made for frugal's tests\n\n" +
                       "".join(f"{s:.2f} {e:.2f} {side}: {t}\n\n" for s, e, side, t in call_segments(call)))
        spk = speakers_of(call)
        rows.append(f"{call:05d},20031220,ENG01,9,9,{spk['A']},f.a,x,x,x,{spk['B']},m.a,x,x,x")
    doc = root / "LDC2004T19" / "doc"
    doc.mkdir(parents=True, exist_ok=True)
    (doc / "fe_03_p1_calldata.tbl").write_text("\n".join(rows) + "\n")
    return root


def speaker_hours():
    hours = {}
    for call in range(1, NUM_CALLS + 1):
        for s, e, side, _ in call_segments(call):
            spk = speakers_of(call)[side]
            hours[spk] = hours.get(spk, 0.0) + (e - s) / 3600
    return hours


def prepare(root, out, seed, lex=None):
    extra = ["--lexicon-dir", str(lex)] if lex else []
    return frugal_main(["prepare-data", "fisher", "--corpus-dir", str(root), "--output-dir", str(out),
                        "--audio-dirs", "LDC2004S13", "--transcript-dirs", "LDC2004T19",
                        "--dev-hours", "0.004", "--test-hours", "0.004", "--sup-hours", "0.01",
                        "--unsup-hours", "1", "--seed", str(seed), *extra])


def read_split(out):
    return {part: load_manifest(out / f"fisher_supervisions_{part}.jsonl.gz") for part in PARTS}


def test_prepare_fisher(tmp_path):
    root = make_fisher(tmp_path / "fisher")
    out, lex = tmp_path / "manifests", tmp_path / "local"
    assert prepare(root, out, seed=3, lex=lex) == 0
    sups = read_split(out)
    hours = speaker_hours()
    speakers = {part: {s.speaker for s in sups[part]} for part in PARTS}
    # disjoint, and together every speaker (unsup asks for more than is left)
    for i, a in enumerate(PARTS):
        for b in PARTS[i + 1:]:
            assert not speakers[a] & speakers[b], (a, b)
    assert set().union(*speakers.values()) == set(hours)
    # each part holds every utterance of its speakers, and about the hours asked for: at
    # least those, and less than those plus one speaker
    asked = {"dev": 0.004, "test": 0.004, "train_sup": 0.01}
    for part, h in asked.items():
        got = sum(s.duration for s in sups[part]) / 3600
        assert got == pytest.approx(sum(hours[spk] for spk in speakers[part]))
        assert h <= got < h + max(hours.values())
    # segments and text
    all_sups = {s.id: s for part in PARTS for s in sups[part]}
    assert len(all_sups) == NUM_CALLS * 6
    s = [s for s in all_sups.values() if s.recording_id == "fe_03_00007" and s.channel == 1][0]
    assert s.speaker == speakers_of(7)["B"] and s.text.startswith("call 7 b turn")
    cuts = load_manifest(out / "fisher_cuts_train_sup.jsonl.gz")
    assert len(cuts) == len(sups["train_sup"])
    assert sorted(c.duration for c in cuts) == pytest.approx(sorted(s.duration for s in sups["train_sup"]))
    assert (lex / "words.txt").read_text().split() == sorted({w for s in sups["train_sup"] for w in s.text.split()})


def test_split_is_deterministic_by_seed(tmp_path):
    root = make_fisher(tmp_path / "fisher")
    splits = []
    for seed, out in ((3, "a"), (3, "b"), (4, "c")):
        assert prepare(root, tmp_path / out, seed=seed) == 0
        splits.append({p: sorted(s.id for s in v) for p, v in read_split(tmp_path / out).items()})
    assert splits[0] == splits[1]
    assert splits[0] != splits[2]


def test_transcript_without_audio(tmp_path, capsys):
    root = make_fisher(tmp_path / "fisher")
    sph = root / "LDC2004S13" / "fe_03_p1_sph1" / "audio" / "000" / "fe_03_00004.sph"
    sph.unlink()
    assert prepare(root, tmp_path / "m", seed=0) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fe_03_00004.txt" in err and "fe_03_00004.sph" in err
