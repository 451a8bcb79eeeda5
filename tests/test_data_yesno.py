"""yesno preparation from the real corpus (../shared/data/yesno): 30/30 split, transcripts."""
import soundfile as sf
from lhotse import load_manifest

from frugal.bin.main import main as frugal_main


def test_prepare_yesno(yesno_dir, tmp_path):
    out, lex = tmp_path / "manifests", tmp_path / "local"
    assert frugal_main(["prepare-data", "yesno", "--corpus-dir", str(yesno_dir), "--output-dir", str(out),
                        "--lexicon-dir", str(lex)]) == 0
    waves = sorted(p.name for p in yesno_dir.glob("*.wav"))
    assert len(waves) == 60
    # lhotse's (icefall's) split: sorted names, alternately train and test
    split = {"train": waves[0::2], "test": waves[1::2]}
    for part, names in split.items():
        sups = load_manifest(out / f"yesno_supervisions_{part}.jsonl.gz")
        cuts = load_manifest(out / f"yesno_cuts_{part}.jsonl.gz")
        assert len(load_manifest(out / f"yesno_recordings_{part}.jsonl.gz")) == 30 == len(cuts)
        assert sorted(s.recording_id + ".wav" for s in sups) == names
        for s in sups:
            digits = s.recording_id.split("_")
            assert s.text.split() == ["YES" if d == "1" else "NO" for d in digits]
            assert abs(s.duration - sf.info(str(yesno_dir / f"{s.recording_id}.wav")).duration) < 1e-6
    assert sorted((lex / "lexicon.txt").read_text().splitlines()) == ["<SIL> SIL", "NO N", "YES Y"]


def test_bad_yesno_file_name(tmp_path, capsys):
    corpus = tmp_path / "yesno"
    corpus.mkdir()
    (corpus / "0_1_2.wav").write_bytes(b"")
    assert frugal_main(["prepare-data", "yesno", "--corpus-dir", str(corpus), "--output-dir",
                        str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "0_1_2.wav" in err
