"""WSJ preparation (frugal.data.wsj) on a tiny corpus in the LDC disc layout."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lhotse import load_manifest

from frugal.bin.main import main as frugal_main
from frugal.data.corpora.wsj import normalize_wsj_transcript

RATE = 16000


def write_wv1(path: Path, num_samples: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = (np.random.default_rng(num_samples).standard_normal(num_samples) * 1000).astype(np.int16)
    sf.write(str(path), noise, RATE, format="NIST", subtype="PCM_16")


def make_shorten(path: Path, num_samples: int) -> None:
    """A SPHERE file whose header says shorten-compressed (the body is not decodable)."""
    fields = [("sample_count", "-i", str(num_samples)), ("sample_rate", "-i", str(RATE)),
              ("channel_count", "-i", "1"), ("sample_n_bytes", "-i", "2"),
              ("sample_coding", "-s26", "pcm,embedded-shorten-v2.00")]
    header = "NIST_1A\n   1024\n" + "".join(f"{k} {t} {v}\n" for k, t, v in fields) + "end_head\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.encode().ljust(1024, b" ") + b"\x00" * 100)


# utterance id -> (disc, path on disc, samples, raw .dot transcript, expected normalised text)
UTTS = {
    "011c0201": ("11-1.1", "wsj0/si_tr_s/011/011c0201.wv1", 8000,
                 "[loud_breath] The company's *shares* <and> rose %PERCENT",
                 "<NOISE> THE COMPANY'S *SHARES* AND ROSE PERCENT"),
    "011c0202": ("11-1.1", "wsj0/si_tr_s/011/011c0202.wv1", 12000,
                 "Mister Smith [door_slam>] said \\. ~ --DASH [<door_slam] . ok",
                 "MISTER SMITH SAID -DASH OK"),
    "401c0201": ("11-2.1", "wsj0/si_tr_s/401/401c0201.wv1", 4000, "left out", None),
    "46ac0201": ("13-2.1", "wsj1/si_tr_s/46a/46ac0201.wv1", 16000,
                 "[phone_ring/] prices fell [/phone_ring] ,COMMA", "PRICES FELL ,COMMA"),
    "46ac0202": ("13-2.1", "wsj1/si_tr_s/46a/46ac0202.wv1", 9600, "new hardware", "NEW HARDWARE"),
    "440c0201": ("11-14.1", "wsj0/si_et_20/440/440c0201.wv1", 7200, "the index .POINT rose",
                 "THE INDEX POINT ROSE"),
    "440c0202": ("11-14.1", "wsj0/si_et_20/440/440c0202.wv1", 6400, "stocks [lip_smack] gained",
                 "STOCKS <NOISE> GAINED"),
    # Stored upper-cased, as some copies of the discs are; the index names it in lower case.
    "4k0c0301": ("13-16.1", "WSJ1/SI_DT_20/4K0/4K0C0301.WV1", 11200, "a dev sentence", "A DEV SENTENCE"),
}
TRAIN = ["011c0201", "011c0202", "46ac0201", "46ac0202"]
EVAL92 = ["440c0201", "440c0202"]
DEV93 = ["4k0c0301"]


def make_wsj(root: Path) -> Path:
    """Discs split over LDC93S6B/ and LDC94S13B/ as the two LDC packages ship them."""
    package = {"11": root / "LDC93S6B", "13": root / "LDC94S13B"}
    disc_dir = lambda disc: package[disc[:2]] / disc
    for utt, (disc, rel, n, raw, _) in UTTS.items():
        write_wv1(disc_dir(disc) / rel, n)
    # transcripts: one .dot per speaker session, somewhere on the discs
    dots = {}
    for utt, (disc, rel, n, raw, _) in UTTS.items():
        dots.setdefault((disc, utt[:6]), []).append(f"{raw} ({utt})")
    for (disc, key), lines in dots.items():
        dot = disc_dir(disc) / "transcrp" / "dots" / f"{key}.dot"
        dot.parent.mkdir(parents=True, exist_ok=True)
        dot.write_text("\n".join(lines) + "\n")
    idx0 = disc_dir("11-13.1") / "wsj0" / "doc" / "indices"
    (idx0 / "train").mkdir(parents=True)
    (idx0 / "train" / "tr_s_wv1.ndx").write_text(
        ";; training index\n" + "".join(f"{UTTS[u][0].replace('-', '_').replace('.', '_')}:{UTTS[u][1]}\n"
                                       for u in ["011c0201", "011c0202", "401c0201"]))
    (idx0 / "test" / "nvp").mkdir(parents=True)
    (idx0 / "test" / "nvp" / "si_et_20.ndx").write_text(
        ";\n" + "".join(f"11_14_1:wsj0/si_et_20/440/{u}\n" for u in EVAL92))  # no extension
    idx1 = disc_dir("13-34.1") / "wsj1" / "doc" / "indices"
    idx1.mkdir(parents=True)
    (idx1 / "si_tr_s.ndx").write_text("".join(f"13_2_1:{UTTS[u][1]}\n" for u in ["46ac0201", "46ac0202"]))
    (idx1 / "h1_p0.ndx").write_text("13_16_1:wsj1/si_dt_20/4k0/4k0c0301.wv1\n")
    return root


def test_normalisation_follows_kaldi():
    words = "[loud_breath] a\\.b. <the> [<noise] [noise>] [x/] [/x] ~ . --DASH *mis* [rustle]x".split()
    assert normalize_wsj_transcript(words) == ["<NOISE>", "A.B.", "THE", "-DASH", "*MIS*", "<NOISE>"]


def test_prepare_wsj(tmp_path):
    corpus = make_wsj(tmp_path / "corpus")
    out, lex = tmp_path / "manifests", tmp_path / "local"
    assert frugal_main(["prepare-data", "wsj", "--corpus-dir", str(corpus), "--output-dir", str(out),
                        "--lexicon-dir", str(lex)]) == 0
    for part, utts in (("train_si284", TRAIN), ("test_eval92", EVAL92), ("test_dev93", DEV93)):
        sups = load_manifest(out / f"wsj_supervisions_{part}.jsonl.gz")
        recs = load_manifest(out / f"wsj_recordings_{part}.jsonl.gz")
        cuts = load_manifest(out / f"wsj_cuts_{part}.jsonl.gz")
        assert sorted(s.id for s in sups) == utts
        assert len(recs) == len(cuts) == len(utts)
        for s in sups:
            assert s.text == UTTS[s.id][4]
            assert s.speaker == s.id[:3]
            assert s.duration == pytest.approx(UTTS[s.id][2] / RATE)
        for c in cuts:
            assert c.duration == pytest.approx(UTTS[c.supervisions[0].id][2] / RATE)
    # PCM SPHERE: a plain file source that soundfile decodes, samples intact
    cut = load_manifest(out / "wsj_cuts_test_dev93.jsonl.gz")[0]
    assert cut.recording.sources[0].type == "file"
    audio = cut.load_audio()
    disc, rel, n, _, _ = UTTS["4k0c0301"]
    expected, _ = sf.read(str(corpus / "LDC94S13B" / disc / rel), dtype="float32")
    np.testing.assert_allclose(audio[0], expected, atol=1e-6)
    words = (lex / "words.txt").read_text().split()
    assert words == sorted({w for u in TRAIN for w in UTTS[u][4].split()})


def test_shorten_compressed_audio_gets_a_sph2pipe_command(tmp_path):
    corpus = make_wsj(tmp_path / "corpus")
    disc, rel, n, _, _ = UTTS["46ac0201"]
    make_shorten(corpus / "LDC94S13B" / disc / rel, n)
    out = tmp_path / "manifests"
    assert frugal_main(["prepare-data", "wsj", "--corpus-dir", str(corpus), "--output-dir", str(out),
                        "--parts", "train_si284", "--sph2pipe", "/opt/sph2pipe"]) == 0
    recs = {r.id: r for r in load_manifest(out / "wsj_recordings_train_si284.jsonl.gz")}
    source = recs["46ac0201"].sources[0]
    assert source.type == "command"
    assert source.source == f"/opt/sph2pipe -f wav -p {(corpus / 'LDC94S13B' / disc / rel).resolve()}"
    assert recs["46ac0201"].duration == pytest.approx(n / RATE)
    assert recs["011c0201"].sources[0].type == "file"


def test_missing_transcript_names_the_utterance(tmp_path, capsys):
    corpus = make_wsj(tmp_path / "corpus")
    dot = corpus / "LDC94S13B" / "13-2.1" / "transcrp" / "dots" / "46ac02.dot"
    dot.write_text("new hardware (46ac0202)\n")
    out = tmp_path / "manifests"
    assert frugal_main(["prepare-data", "wsj", "--corpus-dir", str(corpus), "--output-dir", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "46ac0201" in err and str(dot) in err
    assert not out.exists() or not list(out.glob("wsj_*train_si284*"))
