"""The synthetic mini corpus: many eSpeak NG voices reading sentences of a small grammar.

A *voice* (one speaker) is one combination of an English accent of espeak (en-us,
en-gb-scotland, en-029, ...), a voice variant (+m3, +f2, +klatt, ...), a speaking rate,
a base pitch and a pitch range. The corpus has four parts: ``train_sup`` (transcribed
training data), ``train_unsup`` (the same training voices, for semi-supervised
learning: its manifests still carry the transcripts, recipes drop them), ``dev`` and
``test``, whose voices share no (accent, variant) pair with the training voices or
with each other; their accent and their variant are each heard in training (new speakers
of known accents and voice types, as in a real corpus's test speakers), so that an
unseen test voice is not also an accent or a vocal tract the model never heard.

Everything follows from ``seed``: voices, sentences, noise, and the audio itself
(:func:`frugal.data.espeak.synthesize` is deterministic), independent of ``nj``.

Output layout under ``output_dir``::

    wav/<speaker>/<utt_id>.wav      16 kHz, 16-bit mono
    transcripts/<part>.txt          <utt_id> <WORDS ...>
    voices.txt                      <speaker> <part> <accent> <variant> <rate> <pitch> <range>
    lm_text.txt                     lm-<n> <WORDS ...>: LM text of the grammar, no audio
    lexicon.txt                     <WORD> <phone> ... (eSpeak en-us mnemonics, no stress)

and lhotse manifests ``mini_{recordings,supervisions,cuts}_<part>.jsonl.gz`` in the
manifest directory.
"""
from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf

from frugal import jobs
from frugal.data import espeak
from frugal.data.jsonl import write_manifest
from frugal.data.mini_text import SentenceGenerator, vocabulary
from frugal.data.resampling import resample
from frugal.errors import BadValue, FrugalError
from frugal.fileio import atomic_path, atomic_write_text

SAMPLING_RATE = 16000
PARTS = ("train_sup", "train_unsup", "dev", "test")
TRAIN_PARTS = ("train_sup", "train_unsup")
# The English accents shipped with espeakng-loader's data (lang/gmw/en*).
ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-us-nyc")
# Voice variants (espeak-ng-data/voices/!v) that sound human; robots, whispers and
# croaks are left out.
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
            "klatt", "klatt2", "klatt3", "klatt4", "Andy", "Annie", "david", "edward",
            "linda", "steph", "john", "paul", "travis", "ian")
LEXICON_ACCENT = "en-us"  # one canonical accent, as a real lexicon would have
RATE_RANGE = (130, 200)  # words per minute
PITCH_RANGE = (25, 75)
PITCH_SPREAD_RANGE = (30, 80)
TELEPHONE_BAND = (300.0, 3400.0)


@dataclass(frozen=True)
class Voice:
    speaker: str
    part: str  # "train", "dev" or "test"
    accent: str
    variant: str
    rate: int
    pitch: int
    pitch_range: int

    @property
    def settings(self) -> espeak.VoiceSettings:
        return espeak.VoiceSettings(f"{self.accent}+{self.variant}", self.rate, self.pitch,
                                    self.pitch_range)

    def line(self) -> str:
        return (f"{self.speaker} {self.part} {self.accent} {self.variant} {self.rate} "
                f"{self.pitch} {self.pitch_range}")


@dataclass(frozen=True)
class Utterance:
    utt_id: str
    part: str
    voice: Voice
    text: str  # uppercase words
    seed: int
    telephone: bool
    snr_db: Optional[float]  # None: no added noise

    @property
    def rel_path(self) -> str:
        return f"wav/{self.voice.speaker}/{self.utt_id}.wav"


def make_voices(num_train: int, num_dev: int, num_test: int, seed: int) -> List[Voice]:
    """Voices for the three speaker pools; dev and test share no (accent, variant) pair
    with training or with each other, but their accent and their variant each occur in
    training."""
    pairs = [(a, v) for a in ACCENTS for v in VARIANTS]
    total = num_train + num_dev + num_test
    if min(num_train, num_dev, num_test) < 1:
        raise BadValue("num_voices", (num_train, num_dev, num_test), "every speaker pool needs at least one voice")
    if total > len(pairs):
        raise BadValue("num_voices", (num_train, num_dev, num_test), f"at most {len(pairs)} voices in all")
    rng = random.Random(f"voices-{seed}")
    rng.shuffle(pairs)
    train = pairs[:num_train]
    variants = {v for _, v in train}
    # Held-out pairs by accent, the accents in turn: dev and test get their accents as evenly
    # as the pairs allow, not by the luck of the shuffle (one accent far from the lexicon's
    # en-us, drawn five times, would make the test set a test of that accent).
    by_accent: Dict[str, List[Tuple[str, str]]] = {}
    for a, _ in train:
        by_accent.setdefault(a, [])
    for a, v in pairs[num_train:]:
        if a in by_accent and v in variants:
            by_accent[a].append((a, v))
    held_out: List[Tuple[str, str]] = []
    while len(held_out) < num_dev + num_test and any(by_accent.values()):
        for a in by_accent:
            if by_accent[a] and len(held_out) < num_dev + num_test:
                held_out.append(by_accent[a].pop(0))
    if len(held_out) < num_dev + num_test:
        raise BadValue("num_voices", (num_train, num_dev, num_test),
                       f"{num_train} training voices leave only {len(held_out)} new combinations of their "
                       f"accents and variants for {num_dev + num_test} dev/test voices (more training voices "
                       f"cover more)")
    pools = ["train"] * num_train + ["dev"] * num_dev + ["test"] * num_test
    voices = []
    for i, ((accent, variant), pool) in enumerate(zip(train + held_out, pools)):
        voices.append(Voice(speaker=f"spk{i + 1:03d}", part=pool, accent=accent,
                            variant=variant, rate=rng.randint(*RATE_RANGE),
                            pitch=rng.randint(*PITCH_RANGE),
                            pitch_range=rng.randint(*PITCH_SPREAD_RANGE)))
    return voices


def plan_utterances(sizes: Dict[str, int], voices: Sequence[Voice], seed: int,
                    snr_range: Optional[Tuple[float, float]] = None,
                    telephone_fraction: float = 0.0) -> List[Utterance]:
    """The corpus's utterances: text, voice and channel of each, all drawn from ``seed``."""
    utts = []
    for part in PARTS:
        pool = "train" if part in TRAIN_PARTS else part
        part_voices = [v for v in voices if v.part == pool]
        rng = random.Random(f"utterances-{seed}-{part}")
        sentences = SentenceGenerator(rng.randrange(2**32))
        first = rng.randrange(len(part_voices))
        for i in range(sizes[part]):
            voice = part_voices[(first + i) % len(part_voices)]  # in turn: balanced speakers
            # Draw every random number whatever the options, so that turning noise or the
            # telephone channel on leaves texts, voices and synthesis seeds as they were.
            seed_i, u_phone, u_snr = rng.randrange(1, 2**31), rng.random(), rng.random()
            utts.append(Utterance(
                utt_id=f"{voice.speaker}-{part}-{i:05d}", part=part, voice=voice,
                text=sentences(), seed=seed_i, telephone=u_phone < telephone_fraction,
                snr_db=None if snr_range is None
                else snr_range[0] + u_snr * (snr_range[1] - snr_range[0])))
    return utts


# --- audio -----------------------------------------------------------------------------

def band_pass_fir(low_hz: float, high_hz: float, sampling_rate: int, num_taps: int = 257) -> np.ndarray:
    """Linear-phase band-pass FIR: difference of two Hamming-windowed ideal low-passes."""
    n = np.arange(num_taps) - (num_taps - 1) / 2

    def low_pass(cutoff: float) -> np.ndarray:
        fc = cutoff / sampling_rate
        return 2 * fc * np.sinc(2 * fc * n)

    return (low_pass(high_hz) - low_pass(low_hz)) * np.hamming(num_taps)


def telephone_channel(samples: np.ndarray, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """300-3400 Hz band-pass, then down to 8 kHz and back, as a narrow-band phone line."""
    taps = band_pass_fir(*TELEPHONE_BAND, sampling_rate)
    filtered = np.convolve(samples, taps, mode="same").astype(np.float32)
    narrow = resample(filtered, sampling_rate, 8000)
    out = resample(narrow, 8000, sampling_rate)
    return out[: len(samples)] if len(out) >= len(samples) else np.pad(out, (0, len(samples) - len(out)))


def add_noise(samples: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise at ``snr_db`` relative to the utterance's mean power."""
    power = float(np.mean(samples.astype(np.float64) ** 2))
    noise = rng.standard_normal(len(samples)) * math.sqrt(power / 10 ** (snr_db / 10))
    return (samples + noise).astype(np.float32)


def render(utt: Utterance) -> np.ndarray:
    """The utterance's audio: float32 samples at 16 kHz."""
    # espeak reads all-capital words as abbreviations ("US" -> "U S"): speak lowercase.
    raw = espeak.synthesize(utt.text.lower(), utt.voice.settings, seed=utt.seed)
    samples = resample(raw.astype(np.float32) / 32768.0, espeak.sampling_rate(), SAMPLING_RATE)
    if utt.telephone:
        samples = telephone_channel(samples)
    if utt.snr_db is not None:
        samples = add_noise(samples, utt.snr_db, np.random.default_rng(utt.seed))
    peak = float(np.max(np.abs(samples))) if len(samples) else 0.0
    if peak > 0.99:  # keep 16-bit PCM from clipping
        samples = samples * (0.99 / peak)
    return samples


def _init_worker() -> None:
    espeak.engine()  # initialise before any synthesis: every fork starts from this state


def _render_batch(args: Tuple[str, List[Utterance]]) -> List[int]:
    out_dir, utts = args
    num_samples = []
    for utt in utts:
        samples = render(utt)
        path = Path(out_dir) / utt.rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), samples, SAMPLING_RATE, subtype="PCM_16", format="WAV")
        num_samples.append(len(samples))
    return num_samples


def render_all(utts: Sequence[Utterance], out_dir: Path, nj: int, batch_size: int = 8) -> List[int]:
    """Write every utterance's wav under ``out_dir``; returns their lengths in samples."""
    batches = [(str(out_dir), list(utts[i:i + batch_size])) for i in range(0, len(utts), batch_size)]
    lengths = jobs.run(_render_batch, batches, nj, desc="synthesising", unit="utt", total=len(utts),
                       size=lambda b: len(b[1]), threads_here=1, initializer=_init_worker)
    return [n for batch in lengths for n in batch]


# --- lexicon and manifests ----------------------------------------------------------------

def _running_speech_form(word: str, accent: str) -> List[str]:
    """How espeak says ``word`` inside a sentence: phonemise it before a carrier word and
    take the carrier's phones off again."""
    carrier = espeak.text_to_phonemes("man", accent)
    phones = espeak.text_to_phonemes(f"{word.lower()} man", accent)
    if phones[len(phones) - len(carrier):] != carrier:
        raise RuntimeError(f"espeak changed the carrier word after '{word}'")
    return phones[: len(phones) - len(carrier)]


def make_lexicon(words: Iterable[str], accent: str = LEXICON_ACCENT) -> Dict[str, List[List[str]]]:
    """Pronunciations from eSpeak's phonemiser, stress marks removed.

    Alone, a one-letter word is read as its letter name ('A' -> eI); a sentence says
    it reduced ('A' -> a#), so such words (except 'I') get that form as a second
    pronunciation, as lexicons list weak forms.
    """
    lexicon = {}
    for word in sorted(set(words)):
        prons = [espeak.text_to_phonemes(word.lower(), accent)]
        if len(word) == 1 and word != "I":
            weak = _running_speech_form(word, accent)
            if weak and weak != prons[0]:
                prons.append(weak)
        if not all(prons):
            raise RuntimeError(f"espeak gave no phonemes for '{word}'")
        lexicon[word] = prons
    return lexicon


def lexicon_text(lexicon: Dict[str, List[List[str]]]) -> str:
    """Kaldi lexicon.txt: one line per pronunciation, ``WORD p1 p2 ...``."""
    return "".join(f"{w} {' '.join(p)}\n" for w, prons in sorted(lexicon.items()) for p in prons)


def write_manifests(utts: Sequence[Utterance], lengths: Sequence[int], corpus_dir: Path,
                    manifest_dir: Path) -> None:
    from lhotse import AudioSource, CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    for part in PARTS:
        recordings, supervisions, cuts = [], [], []
        for utt, n in zip(utts, lengths):
            if utt.part != part:
                continue
            duration = n / SAMPLING_RATE
            recordings.append(Recording(
                id=utt.utt_id, sources=[AudioSource(type="file", channels=[0],
                                                    source=str(corpus_dir / utt.rel_path))],
                sampling_rate=SAMPLING_RATE, num_samples=n, duration=duration))
            supervisions.append(SupervisionSegment(
                id=utt.utt_id, recording_id=utt.utt_id, start=0.0, duration=duration,
                channel=0, text=utt.text, speaker=utt.voice.speaker, language="English",
                custom={"accent": utt.voice.accent, "variant": utt.voice.variant,
                        "telephone": utt.telephone, "snr_db": utt.snr_db}))
            # One cut per utterance, named like it (CutSet.from_manifests would add a suffix).
            cut = recordings[-1].to_cut()
            cut.supervisions = [supervisions[-1]]
            cuts.append(cut)
        write_manifest(RecordingSet.from_recordings(recordings),
                       manifest_dir / f"mini_recordings_{part}.jsonl.gz")
        write_manifest(SupervisionSet.from_segments(supervisions),
                       manifest_dir / f"mini_supervisions_{part}.jsonl.gz")
        write_manifest(CutSet.from_cuts(cuts), manifest_dir / f"mini_cuts_{part}.jsonl.gz")


def lm_text_sentences(num: int, seed: int) -> List[str]:
    """The corpus's LM text: ``num`` sentences of the grammar from their own random stream,
    with no audio: the text a recipe's word LM is trained on besides the transcribed part's
    transcripts, never the untranscribed part's."""
    sentences = SentenceGenerator(random.Random(f"lm-text-{seed}").randrange(2**32))
    return [sentences() for _ in range(num)]


def make_mini_corpus(output_dir: Path, manifest_dir: Path, lexicon_dir: Optional[Path],
                     sizes: Dict[str, int], num_voices: Tuple[int, int, int], seed: int = 0,
                     nj: int = 1, snr_range: Optional[Tuple[float, float]] = None,
                     telephone_fraction: float = 0.0, num_lm_text: int = 0) -> List[Utterance]:
    """Synthesise the corpus; see the module docstring for what is written where.

    The corpus directory is written under a temporary name and renamed when complete;
    then the manifests (each atomic), then the lexicon copy in ``lexicon_dir``.
    """
    if set(sizes) != set(PARTS) or any(n < 0 for n in sizes.values()):
        raise FrugalError(f"sizes: need a non-negative size for each of {', '.join(PARTS)}")
    if not 0.0 <= telephone_fraction <= 1.0:
        raise BadValue("telephone_fraction", telephone_fraction, "must be in [0, 1]")
    if num_lm_text < 0:
        raise BadValue("num_lm_text", num_lm_text, "must be 0 or more")
    if nj < 1:
        raise BadValue("nj", nj, "must be at least 1")
    voices = make_voices(*num_voices, seed=seed)
    utts = plan_utterances(sizes, voices, seed, snr_range, telephone_fraction)
    lexicon = make_lexicon(vocabulary())
    output_dir = Path(output_dir)
    with atomic_path(output_dir, is_dir=True) as tmp:
        logging.info("synthesising %d utterances with %d voices, nj=%d", len(utts), len(voices), nj)
        lengths = render_all(utts, tmp, nj)
        (tmp / "transcripts").mkdir()
        for part in PARTS:
            (tmp / "transcripts" / f"{part}.txt").write_text(
                "".join(f"{u.utt_id} {u.text}\n" for u in utts if u.part == part))
        (tmp / "voices.txt").write_text("".join(v.line() + "\n" for v in voices))
        (tmp / "lexicon.txt").write_text(lexicon_text(lexicon))
        lm_text = "".join(f"lm-{i:05d} {t}\n" for i, t in enumerate(lm_text_sentences(num_lm_text, seed)))
        (tmp / "lm_text.txt").write_text(lm_text)
    write_manifests(utts, lengths, output_dir, Path(manifest_dir))
    if lexicon_dir is not None:
        atomic_write_text(Path(lexicon_dir) / "lm_text.txt", lm_text)
        atomic_write_text(Path(lexicon_dir) / "lexicon.txt", lexicon_text(lexicon))
    hours = sum(lengths) / SAMPLING_RATE / 3600
    logging.info("mini corpus: %d utterances, %.2f hours, in %s", len(utts), hours, output_dir)
    return utts
