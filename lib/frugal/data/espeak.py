"""eSpeak NG through ctypes: speech synthesis and grapheme-to-phoneme conversion.

The library and its data come from the pip package espeakng-loader. The C API
(speak_lib.h) keeps one engine per process, so this module keeps one too: the first
call initialises it in AUDIO_OUTPUT_SYNCHRONOUS mode, where espeak_Synth returns only
after the synthesis callback has received all samples.

Determinism: espeak seeds its noise generator from the clock and, worse, carries
wave-generator state (pitch flutter phase, resonator memories) from one utterance to the
next, so the same call gives different samples depending on what was said before.
:func:`synthesize` therefore forks the process for every utterance: the child speaks
from the engine state the parent had right after initialisation, with a fixed random
seed, and sends the samples back through a pipe. The same text, voice and parameters
then give the same samples in any process and in any order (about 1 ms of overhead).
"""
from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_CHARS_UTF8 = 1
POS_CHARACTER = 1
ESPEAK_RATE, ESPEAK_PITCH, ESPEAK_RANGE = 1, 3, 4
EE_OK = 0

# Stress and syllable marks that espeak puts in front of a phoneme mnemonic; they are
# prosody, not phones, and are removed from lexicon pronunciations.
STRESS_MARKS = "',%="
# Tokens between separators that are boundary marks, not phones (';' splits a vowel
# sequence, as in RADIO 'r eI d I2 ; oU').
NON_PHONES = {";"}

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Engine:
    """The process's one initialised espeak engine."""

    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [
            ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int
        ]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self.sampling_rate = lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0
        )
        if self.sampling_rate <= 0:
            raise RuntimeError("espeak_Initialize failed")
        self.lib = lib
        self._chunks: List[bytes] = []
        # The callback object must outlive the engine: ctypes does not keep it alive.
        self._callback = _SynthCallback(self._collect)
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, num_samples, events) -> int:
        if wav and num_samples > 0:
            self._chunks.append(ctypes.string_at(wav, 2 * num_samples))
        return 0  # continue synthesis

    def set_voice(self, name: str) -> None:
        if self.lib.espeak_SetVoiceByName(name.encode()) != EE_OK:
            raise ValueError(f"espeak has no voice '{name}'")


_engine: Optional[_Engine] = None


def engine() -> _Engine:
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


def sampling_rate() -> int:
    """The rate of the samples :func:`synthesize` returns (22050 Hz for eSpeak NG)."""
    return engine().sampling_rate


@dataclass(frozen=True)
class VoiceSettings:
    """One eSpeak voice: language/accent, voice variant and prosody parameters.

    name: an espeak voice name, e.g. ``en-us`` or ``en-gb-scotland+f3``;
    rate: words per minute (80..450); pitch: base pitch 0..100 (50 normal);
    pitch_range: 0..100 (0 monotone, 50 normal).
    """

    name: str
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50


def _speak(eng: _Engine, text: str, voice: VoiceSettings, seed: int) -> bytes:
    eng.set_voice(voice.name)
    for param, value in ((ESPEAK_RATE, voice.rate), (ESPEAK_PITCH, voice.pitch),
                         (ESPEAK_RANGE, voice.pitch_range)):
        if eng.lib.espeak_SetParameter(param, value, 0) != EE_OK:
            raise RuntimeError(f"espeak_SetParameter({param}, {value}) failed")
    eng.lib.espeak_ng_SetRandSeed(seed)
    data = text.encode()
    eng._chunks = []
    rc = eng.lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8,
                              None, None)
    if rc != EE_OK:
        raise RuntimeError(f"espeak_Synth failed with status {rc}")
    return b"".join(eng._chunks)


def _read_exactly(fd: int, n: int) -> bytes:
    parts = []
    while n > 0:
        part = os.read(fd, min(n, 1 << 20))
        if not part:
            raise RuntimeError("espeak child process ended early")
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


def synthesize(text: str, voice: VoiceSettings, seed: int = 1) -> np.ndarray:
    """Speak ``text`` with ``voice``; int16 samples at :func:`sampling_rate`.

    Runs in a forked child so that the result depends only on the arguments (see the
    module docstring). ``seed`` seeds espeak's noise generator (breath, fricatives).
    """
    eng = engine()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: speak, send length-prefixed samples, exit without cleanup
        status = 1
        try:
            os.close(read_fd)
            samples = _speak(eng, text, voice, seed)
            payload = struct.pack("<q", len(samples)) + samples
            view = memoryview(payload)
            while view:
                view = view[os.write(write_fd, view):]
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    try:
        (size,) = struct.unpack("<q", _read_exactly(read_fd, 8))
        samples = _read_exactly(read_fd, size)
    except RuntimeError:
        samples = None  # the child failed; its exit status says so below
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    if status != 0 or samples is None:
        raise RuntimeError(f"espeak synthesis failed for {voice} and text {text!r}")
    return np.frombuffer(samples, dtype=np.int16).copy()


def text_to_phonemes(text: str, voice: str = "en-us", keep_stress: bool = False) -> List[str]:
    """eSpeak's phoneme mnemonics for ``text`` with ``voice``'s accent, one token a phone.

    Uses espeak_TextToPhonemes with '_' as the separator between phonemes (bits 8-23 of
    phonememode), clause by clause. Stress marks are removed unless ``keep_stress``.
    """
    eng = engine()
    eng.set_voice(voice)
    buf = ctypes.create_string_buffer(text.encode())
    ptr = ctypes.c_char_p(ctypes.addressof(buf))
    phones: List[str] = []
    separator = ord("_") << 8
    while ptr.value:
        out = eng.lib.espeak_TextToPhonemes(ctypes.byref(ptr), ESPEAK_CHARS_UTF8, separator)
        for word in (out or b"").decode().split():
            for phone in word.split("_"):
                if not keep_stress:
                    phone = phone.lstrip(STRESS_MARKS)
                if phone and phone not in NON_PHONES:
                    phones.append(phone)
    return phones
