"""compute-fbank: Kaldi fbank via kaldi-native-fbank, lilcom storage, perturbation, raw mode."""
from pathlib import Path

import kaldi_native_fbank as knf
import numpy as np
import pytest
import soundfile as sf
from lhotse import CutSet, Recording, SupervisionSegment

from frugal.bin.main import main as frugal_main
from frugal.data.features import compute_features
from frugal.errors import FrugalError

LILCOM_TOL = 2.0 ** -5  # tick of LilcomChunkyWriter's default compression (2^-5)


def synthetic_audio(rng: np.random.Generator, num_samples: int, sr: int) -> np.ndarray:
    """Harmonic tone with a gliding pitch plus noise: a non-flat spectrum that varies in time."""
    t = np.arange(num_samples) / sr
    f0 = 120 + 60 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 12)) * 0.1
    return (x + 0.01 * rng.standard_normal(num_samples)).astype(np.float32)


def write_cuts(tmp: Path, lengths, sr: int = 16000) -> Path:
    rng = np.random.default_rng(0)
    cuts = []
    for i, n in enumerate(lengths):
        path = tmp / "wav" / f"utt{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), synthetic_audio(rng, n, sr), sr, subtype="PCM_16")
        rec = Recording.from_file(path, recording_id=f"utt{i}")
        cut = rec.to_cut()
        cut.supervisions = [SupervisionSegment(f"utt{i}", f"utt{i}", 0.0, rec.duration, text="HI")]
        cuts.append(cut)
    out = tmp / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(out)
    return out


def kaldi_fbank(path: Path, num_bins: int = 80) -> np.ndarray:
    """Reference: kaldi-native-fbank on the int16 samples, as Kaldi's compute-fbank-feats."""
    samples, sr = sf.read(str(path), dtype="int16")
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.snip_edges = False
    opts.frame_opts.samp_freq = sr
    opts.mel_opts.num_bins = num_bins
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(sr, samples.astype(np.float32).tolist())
    fbank.input_finished()
    return np.array([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])


def volume_factor(cut) -> float:
    transform = cut.recording.transforms[-1]
    assert type(transform).__name__ == "Volume"
    return transform.factor


LENGTHS = [16000, 24321, 8007, 40000, 12345]


@pytest.fixture(scope="module")
def cuts_in(tmp_path_factory):
    return write_cuts(tmp_path_factory.mktemp("feats"), LENGTHS)


def test_fbank_matches_kaldi_native_fbank(cuts_in, tmp_path):
    out = compute_features(cuts_in, tmp_path / "c.jsonl.gz", tmp_path / "feats", nj=1, batch_size=2)
    cuts = CutSet.from_file(tmp_path / "c.jsonl.gz")
    assert len(cuts) == len(LENGTHS) == len(out)
    for cut, n in zip(cuts, LENGTHS):
        feats = cut.load_features()
        ref = kaldi_fbank(Path(cut.recording.sources[0].source))
        # snip_edges=false: round(N / 160) frames, lhotse's count for the cut's duration
        assert feats.shape == ref.shape == ((n + 80) // 160, 80) == (cut.num_frames, 80)
        np.testing.assert_allclose(feats, ref, atol=LILCOM_TOL, rtol=0)
    storage = tmp_path / "feats"
    assert storage.is_dir() and not list(tmp_path.glob(".tmp.*"))
    assert all(Path(c.features.storage_path).parent == storage for c in cuts)


def test_40_bins_through_the_cli(cuts_in, tmp_path):
    assert frugal_main(["compute-fbank", "--cuts-in", str(cuts_in), "--cuts-out", str(tmp_path / "c.jsonl.gz"),
                               "--storage-dir", str(tmp_path / "f"), "--num-mel-bins", "40"]) == 0
    for cut, n in zip(CutSet.from_file(tmp_path / "c.jsonl.gz"), LENGTHS):
        feats = cut.load_features()
        ref = kaldi_fbank(Path(cut.recording.sources[0].source), num_bins=40)
        assert feats.shape == ref.shape == ((n + 80) // 160, 40)
        np.testing.assert_allclose(feats, ref, atol=LILCOM_TOL, rtol=0)


def test_nj2_equals_nj1(cuts_in, tmp_path):
    one = compute_features(cuts_in, tmp_path / "1.jsonl.gz", tmp_path / "f1", nj=1, batch_size=2)
    two = compute_features(cuts_in, tmp_path / "2.jsonl.gz", tmp_path / "f2", nj=2, batch_size=2)
    assert [c.id for c in one] == [c.id for c in two]
    for a, b in zip(one, two):
        assert np.array_equal(a.load_features(), b.load_features())


def test_speed_and_volume_perturbation(cuts_in, tmp_path):
    plain = {c.id: c for c in compute_features(cuts_in, tmp_path / "p.jsonl.gz", tmp_path / "fp")}
    cuts = compute_features(cuts_in, tmp_path / "s.jsonl.gz", tmp_path / "fs", nj=2,
                            speed_perturb=True, batch_size=3)
    by_id = {c.id: c for c in cuts}
    assert len(by_id) == 3 * len(LENGTHS)
    for i, n in enumerate(LENGTHS):
        base = by_id[f"utt{i}"]
        assert np.array_equal(base.load_features(), plain[f"utt{i}"].load_features())
        for factor in (0.9, 1.1):
            sp = by_id[f"utt{i}_sp{factor}"]
            # sox speed: the audio is factor times shorter (to the sample)
            assert abs(sp.duration - n / 16000 / factor) <= 1.5 / 16000
            audio = sp.load_audio()
            assert abs(audio.shape[1] - n / factor) <= 1.5
            assert abs(sp.load_features().shape[0] - n / factor / 160) <= 1
            assert sp.supervisions[0].duration == pytest.approx(sp.duration)
    # Volume: log-mel energies shift by 2 log(factor) (power spectrum), factor in [0.125, 2].
    vol = compute_features(cuts_in, tmp_path / "v.jsonl.gz", tmp_path / "fv", volume_perturb=True,
                           seed=5)
    factors = []
    for cut in vol:
        factor = volume_factor(cut)
        factors.append(factor)
        assert 0.125 <= factor <= 2.0
        diff = cut.load_features() - plain[cut.id].load_features()
        assert abs(np.median(diff) - 2 * np.log(factor)) < 0.05
    assert len(set(factors)) == len(factors)
    again = compute_features(cuts_in, tmp_path / "v2.jsonl.gz", tmp_path / "fv2",
                             volume_perturb=True, seed=5)
    assert [volume_factor(c) for c in again] == factors


def test_raw_mode_resamples_to_16k(tmp_path):
    cuts_8k = write_cuts(tmp_path / "in", [8000, 4001], sr=8000)
    cuts = compute_features(cuts_8k, tmp_path / "raw.jsonl.gz", tmp_path / "raw", raw=True)
    for cut, n in zip(cuts, [8000, 4001]):
        assert cut.sampling_rate == 16000 and not cut.has_features
        audio = cut.load_audio()
        assert audio.shape == (1, 2 * n)
        assert Path(cut.recording.sources[0].source).parent == tmp_path / "raw"
        # Band-limited interpolation: the 8 kHz samples come back at the even positions.
        original, _ = sf.read(str(tmp_path / "in" / "wav" / f"{cut.id}.wav"), dtype="float32")
        inner = slice(50, n - 50)
        np.testing.assert_allclose(audio[0, ::2][inner], original[inner], atol=2e-3)


def test_failure_leaves_no_outputs(tmp_path):
    cuts_path = write_cuts(tmp_path / "in", [16000])
    wav = tmp_path / "in" / "wav" / "utt0.wav"
    good = wav.read_bytes()
    wav.write_bytes(good[:20])  # a broken file: fails while features are being computed
    with pytest.raises(Exception):
        compute_features(cuts_path, tmp_path / "c.jsonl.gz", tmp_path / "f")
    assert not (tmp_path / "c.jsonl.gz").exists() and not (tmp_path / "f").exists()
    assert not list(tmp_path.glob(".tmp.*"))
    wav.unlink()  # a missing file: a one-line error before anything is written
    with pytest.raises(FrugalError, match="utt0"):
        compute_features(cuts_path, tmp_path / "c.jsonl.gz", tmp_path / "f")
    with pytest.raises(FrugalError):
        compute_features(tmp_path / "missing.jsonl.gz", tmp_path / "c.jsonl.gz", tmp_path / "f")


def kaldi_dithered_silence(num_samples: int, sr: int, dither: float, num_bins: int = 80) -> np.ndarray:
    """Reference: kaldi-native-fbank's own dither (fresh noise per frame) on digital silence."""
    opts = knf.FbankOptions()
    opts.frame_opts.dither = dither
    opts.frame_opts.snip_edges = False
    opts.frame_opts.samp_freq = sr
    opts.mel_opts.num_bins = num_bins
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(sr, [0.0] * num_samples)
    fbank.input_finished()
    return np.array([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])


def test_dither_is_kaldis_and_reproducible(cuts_in, tmp_path):
    # Digital silence (a faded-in recording): without dither every log-mel value sits at the
    # log floor; with dither 1 it matches the level of Kaldi's own dither, bin by bin.
    silent = tmp_path / "in" / "silent.wav"
    silent.parent.mkdir(parents=True)
    sf.write(str(silent), np.zeros(160000, dtype=np.int16), 16000, subtype="PCM_16")
    rec = Recording.from_file(silent, recording_id="silent")
    cuts_path = tmp_path / "silent.jsonl.gz"
    CutSet.from_cuts([rec.to_cut()]).to_file(cuts_path)
    plain = compute_features(cuts_path, tmp_path / "a.jsonl.gz", tmp_path / "fa")[0].load_features()
    dithered = compute_features(cuts_path, tmp_path / "b.jsonl.gz", tmp_path / "fb", dither=1.0)[0].load_features()
    kaldi = kaldi_dithered_silence(160000, 16000, 1.0)
    assert plain.max() < kaldi.min() - 5  # exact zeros: far below any dithered frame
    # (two runs of Kaldi's own dither differ by up to 0.16 in some bin of 80 over 1000 frames)
    np.testing.assert_allclose(dithered.mean(axis=0), kaldi.mean(axis=0), atol=0.3)
    assert abs(dithered.mean() - kaldi.mean()) < 0.03
    assert abs(dithered.std() - kaldi.std()) < 0.1

    # Seeded by the samples: the same features on every run and with any nj.
    again = compute_features(cuts_path, tmp_path / "c.jsonl.gz", tmp_path / "fc", dither=1.0, nj=2)
    assert np.array_equal(again[0].load_features(), dithered)
    # On speech-level audio the noise of one sample unit changes the features by little.
    speech = {c.id: c.load_features() for c in compute_features(cuts_in, tmp_path / "s.jsonl.gz", tmp_path / "fs")}
    for cut in compute_features(cuts_in, tmp_path / "d.jsonl.gz", tmp_path / "fd", dither=1.0):
        diff = np.abs(cut.load_features() - speech[cut.id])
        assert 0 < diff.max() and np.median(diff) < LILCOM_TOL
    with pytest.raises(FrugalError, match="dither -1"):
        compute_features(cuts_path, tmp_path / "e.jsonl.gz", tmp_path / "fe", dither=-1.0)


def tones(num_samples: int, sr: int) -> np.ndarray:
    """synthetic_audio without its noise: all energy below 2 kHz, the same signal at any rate."""
    t = np.arange(num_samples) / sr
    phase = 2 * np.pi * np.cumsum(120 + 60 * np.sin(2 * np.pi * 0.7 * t)) / sr
    return (sum(np.sin(k * phase) / k for k in range(1, 12)) * 0.1).astype(np.float32)


def test_mixed_rates_refused_or_resampled(tmp_path, caplog):
    cuts = []
    for sr in (16000, 8000):
        path = tmp_path / f"tones{sr}.wav"
        sf.write(str(path), tones(sr, sr), sr, subtype="PCM_16")
        cut = Recording.from_file(path, recording_id=f"tones{sr}").to_cut()
        cut.supervisions = [SupervisionSegment(cut.id, cut.id, 0.0, 1.0, text="HI")]
        cuts.append(cut)
    CutSet.from_cuts(cuts).to_file(tmp_path / "mixed.jsonl.gz")
    with pytest.raises(FrugalError, match=r"several sampling rates \(1 at 8000 Hz, 1 at 16000 Hz\), "
                                          r"e.g. (tones\d+) \(.*\1.wav\) at \d+ Hz: resample"):
        compute_features(tmp_path / "mixed.jsonl.gz", tmp_path / "o.jsonl.gz", tmp_path / "f")
    out = {c.id: c for c in compute_features(tmp_path / "mixed.jsonl.gz", tmp_path / "o.jsonl.gz", tmp_path / "f",
                                             resample_to=16000)}
    a, b = out["tones16000"].load_features(), out["tones8000"].load_features()
    assert a.shape == b.shape == (100, 80) and out["tones8000"].features.sampling_rate == 16000
    # The same band-limited signal: the 8 kHz copy, resampled, has the 16 kHz one's energies
    # in the bins of its harmonics, below 2 kHz (mel bin 40 of 80 is centred near 1.8 kHz).
    low = slice(0, 40)
    assert np.abs(a[5:-5, low] - b[5:-5, low]).mean() < 0.1
    # 80 bins at 8 kHz: said once, with the option to change.
    CutSet.from_cuts([cuts[1]]).to_file(tmp_path / "8k.jsonl.gz")
    caplog.clear()
    compute_features(tmp_path / "8k.jsonl.gz", tmp_path / "o8.jsonl.gz", tmp_path / "f8")
    assert "80 mel bins at 8000 Hz" in caplog.text and "--num-mel-bins" in caplog.text
    caplog.clear()
    compute_features(tmp_path / "8k.jsonl.gz", tmp_path / "o8.jsonl.gz", tmp_path / "f8", num_mel_bins=40)
    assert "mel bins at" not in caplog.text
