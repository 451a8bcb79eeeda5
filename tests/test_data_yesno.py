"""yesno preparation from the real corpus (../shared/data/yesno): splits, transcripts."""
import pytest
import soundfile as sf
from lhotse import load_manifest

from frugal.bin.main import main as frugal_main


@pytest.mark.parametrize("split_name", ["kaldi", "icefall", None])
def test_prepare_yesno(yesno_dir, tmp_path, split_name):
    out, lex = tmp_path / "manifests", tmp_path / "local"
    option = ["--split", split_name] if split_name else []
    assert frugal_main(["prepare-data", "yesno", "--corpus-dir", str(yesno_dir), "--output-dir", str(out),
                        "--lexicon-dir", str(lex), *option]) == 0
    waves = sorted(p.name for p in yesno_dir.glob("*.wav"))
    assert len(waves) == 60
    if split_name == "kaldi":  # Kaldi's: the 31 files that begin with NO train (232 test words)
        split = {"train": [w for w in waves if w.startswith("0")], "test": [w for w in waves if w.startswith("1")]}
        assert len(split["train"]) == 31
    else:  # lhotse's (icefall's, the default): sorted names, alternately train and test
        split = {"train": waves[0::2], "test": waves[1::2]}
    for part, names in split.items():
        sups = load_manifest(out / f"yesno_supervisions_{part}.jsonl.gz")
        cuts = load_manifest(out / f"yesno_cuts_{part}.jsonl.gz")
        assert len(load_manifest(out / f"yesno_recordings_{part}.jsonl.gz")) == len(names) == len(cuts)
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


def test_wav_cut_short_then_fixed(yesno_dir, tmp_path, capsys):
    import shutil
    corpus = tmp_path / "yesno"
    corpus.mkdir()
    for wav in yesno_dir.glob("*.wav"):
        shutil.copy(wav, corpus / wav.name)
    victim = corpus / "1_0_1_1_1_0_1_0.wav"
    good = victim.read_bytes()
    victim.write_bytes(good[: len(good) - 1000])
    out = tmp_path / "manifests"
    args = ["prepare-data", "yesno", "--corpus-dir", str(corpus), "--output-dir", str(out)]
    assert frugal_main(args) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(victim) in err and "truncated" in err
    assert not out.exists() or not list(out.iterdir())
    victim.write_bytes(good)
    assert frugal_main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"yesno_{kind}_{part}.jsonl.gz" for kind in ("recordings", "supervisions", "cuts")
        for part in ("train", "test"))


def test_one_recording_holds_fewer_words_than_its_name(yesno_dir, repo_dir):
    # The single error of the yesno recipe (README, Results): 0_1_0_1_0_0_0_0.wav has 7 bursts of
    # speech energy for the 8 words of its name; every other file has one a word (one file a
    # noise burst more). Counted by the recipe's local script, on the real corpus.
    import subprocess
    import sys
    r = subprocess.run([sys.executable, str(repo_dir / "egs/yesno/local/count_word_bursts.py"),
                        "--corpus-dir", str(yesno_dir)], capture_output=True, text=True, check=True)
    lines = r.stdout.splitlines()
    assert lines[-1] == "60 recordings, 2 whose bursts and words differ in number", r.stdout
    assert lines[0].startswith("0_1_0_1_0_0_0_0.wav: 8 words, 7 bursts starting at 0.86 ")
    assert lines[1].startswith("1_1_0_1_1_1_1_0.wav: 8 words, 9 bursts")
