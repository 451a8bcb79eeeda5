"""Log-mel filterbank features with kaldi-native-fbank, stored by lhotse as lilcom archives.

Kaldi's fbank options throughout (25 ms Povey window, 10 ms shift, pre-emphasis 0.97,
DC removal, power spectrum, 20 Hz low cut-off), on waveforms scaled to the 16-bit range as
Kaldi reads wav files. ``dither`` (Kaldi's --dither; default 0 here, 1 in Kaldi) adds that
many sample units of Gaussian noise to the waveform, so that digitally silent stretches
(faded-in recordings, zero padding) get the log-mel values of a quiet noise floor instead of
the far lower ones of exact zeros, which a model trained on noisy silence has never seen.
Kaldi draws fresh noise per frame on every run; here it is drawn once per waveform from a
seed computed from its samples, so that the features stay reproducible. ``snip_edges``
is false, as in icefall: a cut of N samples gets round(N / 160) frames (frames centred
on multiples of 10 ms, edges reflected), which is the count lhotse requires of a
features manifest for the cut's duration; Kaldi's default 1 + (N - 400) // 160 would
fail lhotse's validation.

Augmentation as in the thesis recipes: 3-way speed perturbation (0.9, 1.0, 1.1: copies
of each cut with ids suffixed ``_sp0.9``/``_sp1.1``) and volume perturbation by a random
factor in [0.125, 2] (Kaldi's perturb_data_dir_volume.sh range), drawn per cut from the
seed and the cut id. ``raw`` mode stores 16 kHz waveforms instead of features, for
wav2vec 2.0-style models.
"""
from __future__ import annotations

import logging
import random
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

import numpy as np
import soundfile as sf
from lhotse import CutSet, LilcomChunkyWriter, Recording
from lhotse.audio import AudioSource
from lhotse.audio.utils import AudioLoadingError
from lhotse.features.base import FeatureExtractor, Features, register_extractor
from lhotse.utils import fastcopy

from frugal.data.audio import require_one_sampling_rate
from frugal.data.jsonl import write_manifest
from frugal.data.resampling import resample
from frugal import jobs
from frugal.data.cuts import load_cuts
from frugal.errors import BadValue, FrugalError, first_line
from frugal.fileio import atomic_path

SPEED_FACTORS = (0.9, 1.1)
VOLUME_RANGE = (0.125, 2.0)
RAW_SAMPLING_RATE = 16000
TELEPHONE_MEL_BINS = 40  # Kaldi's telephone-band (8 kHz) recipes: 40 bins


@dataclass
class KaldiFbankConfig:
    """Computed at the audio's own rate (16 kHz, or 8 kHz for telephone corpora)."""

    num_mel_bins: int = 80
    frame_shift: float = 0.010
    frame_length: float = 0.025
    low_freq: float = 20.0
    high_freq: float = 0.0  # <= 0: relative to the Nyquist frequency, as in Kaldi
    int16_scale: bool = True  # multiply [-1, 1] samples by 32768, as Kaldi's wav reader
    dither: float = 0.0  # Gaussian noise of this standard deviation, in the units the fbank sees


@register_extractor
class KaldiNativeFbank(FeatureExtractor):
    """lhotse feature extractor computing Kaldi fbank with kaldi-native-fbank."""

    name = "frugal-kaldi-native-fbank"
    config_type = KaldiFbankConfig

    def fbank_options(self, sampling_rate: int):
        import kaldi_native_fbank as knf

        c = self.config
        opts = knf.FbankOptions()
        opts.frame_opts.samp_freq = float(sampling_rate)
        opts.frame_opts.frame_shift_ms = c.frame_shift * 1000.0
        opts.frame_opts.frame_length_ms = c.frame_length * 1000.0
        opts.frame_opts.dither = 0.0
        opts.frame_opts.snip_edges = False  # see the module docstring
        opts.mel_opts.num_bins = c.num_mel_bins
        opts.mel_opts.low_freq = c.low_freq
        opts.mel_opts.high_freq = c.high_freq
        return opts

    def extract(self, samples: np.ndarray, sampling_rate: int) -> np.ndarray:
        import kaldi_native_fbank as knf

        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if self.config.int16_scale:
            samples = samples * 32768.0
        if self.config.dither > 0.0:
            samples = dithered(samples, self.config.dither)
        fbank = knf.OnlineFbank(self.fbank_options(sampling_rate))
        fbank.accept_waveform(float(sampling_rate), samples)
        fbank.input_finished()
        n = fbank.num_frames_ready
        if n == 0:
            return np.zeros((0, self.config.num_mel_bins), dtype=np.float32)
        return np.stack([fbank.get_frame(i) for i in range(n)]).astype(np.float32)

    @property
    def frame_shift(self) -> float:
        return self.config.frame_shift

    def feature_dim(self, sampling_rate: int) -> int:
        return self.config.num_mel_bins


def dithered(samples: np.ndarray, dither: float) -> np.ndarray:
    """``samples`` + ``dither`` x N(0, 1) noise seeded by the samples' own bytes (reproducible)."""
    rng = np.random.default_rng(zlib.crc32(samples.tobytes()))
    return (samples + dither * rng.standard_normal(samples.shape)).astype(np.float32)


def perturb(cuts: CutSet, speed: bool, volume: bool, seed: int = 0) -> CutSet:
    """The thesis's training-data augmentation; see the module docstring."""
    if speed:
        cuts = cuts + CutSet.from_cuts(c.perturb_speed(f) for f in SPEED_FACTORS for c in cuts)
    if volume:
        def with_volume(cut):
            rng = random.Random(f"{seed}-{cut.id}")  # str seeds are hashed stably
            return cut.perturb_volume(rng.uniform(*VOLUME_RANGE), affix_id=False)
        cuts = CutSet.from_cuts(with_volume(c) for c in cuts)
    return cuts


@contextmanager
def _audio_of(cut):
    """An unreadable or changed audio file is named in one line, not in lhotse's traceback."""
    try:
        yield
    except (AudioLoadingError, OSError, sf.LibsndfileError) as e:
        sources = ", ".join(s.source for s in cut.recording.sources)
        reason = first_line(e).split(" (offset=")[0]  # lhotse's message repeats the whole recording
        raise FrugalError(f"cut {cut.id}: cannot load audio {sources} (changed since the manifest was "
                          f"made?): {reason}") from None


def _fbank_batch(args: Tuple[int, Path, List, KaldiFbankConfig, int]) -> List:
    index, storage_dir, cuts, config, rate = args
    extractor = KaldiNativeFbank(config)
    out = []
    with LilcomChunkyWriter(storage_dir / f"feats-{index:05d}") as writer:
        for cut in cuts:
            with _audio_of(cut):
                if rate and cut.sampling_rate != rate:
                    out.append(_resampled_features(cut, extractor, writer, rate))
                else:
                    out.append(cut.compute_and_store_features(extractor, writer))
    return out


def _resampled_features(cut, extractor: "KaldiNativeFbank", writer, rate: int):
    """The cut's features computed from its waveform resampled to ``rate`` (the recording is kept)."""
    samples = resample(cut.load_audio()[:1], cut.sampling_rate, rate)[0]
    feats = extractor.extract(samples, rate)
    key = writer.write(cut.id, feats)
    return fastcopy(cut, features=Features(
        type=extractor.name, num_frames=feats.shape[0], num_features=feats.shape[1],
        frame_shift=extractor.frame_shift, sampling_rate=rate, start=cut.start, duration=cut.duration,
        storage_type=writer.name, storage_path=str(writer.storage_path), storage_key=key,
        recording_id=cut.recording_id, channels=cut.channel))


def _raw_batch(args: Tuple[int, Path, List, None, int]) -> List:
    _, storage_dir, cuts, _, _ = args
    out = []
    for cut in cuts:
        with _audio_of(cut):
            samples = resample(cut.load_audio()[:1], cut.sampling_rate, RAW_SAMPLING_RATE)[0]
        path = storage_dir / f"{cut.id}.flac"
        sf.write(str(path), samples, RAW_SAMPLING_RATE, format="FLAC", subtype="PCM_16")
        rec = Recording(id=cut.id, sources=[AudioSource(type="file", channels=[0], source=str(path))],
                        sampling_rate=RAW_SAMPLING_RATE, num_samples=len(samples),
                        duration=len(samples) / RAW_SAMPLING_RATE)
        new = rec.to_cut()
        new.supervisions = [fastcopy(s, recording_id=rec.id) for s in cut.supervisions]
        out.append(new)
    return out


def _relocate(cut, tmp_dir: Path, final_dir: Path):
    """Point a cut's storage from the temporary directory to the final one."""
    def moved(p: str) -> str:
        return str(final_dir / Path(p).relative_to(tmp_dir))

    if cut.has_features:
        return fastcopy(cut, features=fastcopy(cut.features, storage_path=moved(cut.features.storage_path)))
    rec = cut.recording
    src = rec.sources[0]
    rec = fastcopy(rec, sources=[fastcopy(src, source=moved(src.source))])
    return fastcopy(cut, recording=rec)


def compute_features(cuts_in: Path, cuts_out: Path, storage_dir: Path,
                     num_mel_bins: int = 80, nj: int = 1, speed_perturb: bool = False,
                     volume_perturb: bool = False, raw: bool = False,
                     seed: int = 0, batch_size: int = 50, dither: float = 0.0,
                     resample_to: int = 0) -> CutSet:
    """Features (or 16 kHz raw audio) for every cut of ``cuts_in``.

    Cuts of several sampling rates are refused unless ``resample_to`` (a rate in Hz) asks for
    every waveform at that rate first. More than 40 mel bins below 16 kHz is warned about.
    ``storage_dir`` is filled under a temporary name and renamed; the cuts manifest is
    written last, so it exists only when all the features it points at do.
    """
    cuts_in, cuts_out, storage_dir = Path(cuts_in), Path(cuts_out), Path(storage_dir)
    if nj < 1:
        raise BadValue("nj", nj, "must be at least 1")
    if num_mel_bins < 1:
        raise BadValue("num_mel_bins", num_mel_bins, "must be positive")
    if dither < 0:
        raise BadValue("dither", dither, "must be >= 0")
    cuts = load_cuts(cuts_in)
    for cut in cuts:
        for source in cut.recording.sources:
            if source.type == "file" and not Path(source.source).is_file():
                raise FrugalError(f"{cuts_in}: cut {cut.id}: no such audio file {source.source}")
    if resample_to < 0:
        raise BadValue("resample_to", resample_to, "must be a sampling rate in Hz (0: none)")
    rate = resample_to or require_one_sampling_rate(cuts, str(cuts_in))
    if not raw and rate < 16000 and num_mel_bins > TELEPHONE_MEL_BINS:
        logging.warning("%s: %d mel bins at %d Hz: the lowest are narrower than two FFT bins; telephone-band "
                        "recipes take %d (--num-mel-bins), or resample (--resample-to 16000)", cuts_in,
                        num_mel_bins, rate, TELEPHONE_MEL_BINS)
    cuts = perturb(cuts, speed_perturb, volume_perturb, seed)
    cut_list = list(cuts)
    config = KaldiFbankConfig(num_mel_bins=num_mel_bins, dither=dither)
    with atomic_path(storage_dir, is_dir=True) as tmp:
        tasks = [(i // batch_size, tmp, cut_list[i:i + batch_size], None if raw else config, resample_to)
                 for i in range(0, len(cut_list), batch_size)]
        try:
            batches = jobs.run(_raw_batch if raw else _fbank_batch, tasks, nj, desc="raw audio" if raw else "fbank",
                               unit="cut", total=len(cut_list), size=lambda task: len(task[2]))
        except FrugalError as e:
            raise FrugalError(f"{cuts_in}: {e}") from None
        done = [_relocate(c, tmp, storage_dir) for batch in batches for c in batch]
    out = CutSet.from_cuts(done)
    write_manifest(out, cuts_out)
    logging.info("%s: %d cuts, features in %s", cuts_out, len(out), storage_dir)
    return out
