"""Import a Kaldi data directory (wav.scp, text, utt2spk, optional segments) as manifests.

Conversion is lhotse's (lhotse.kaldi.load_kaldi_data_dir). A wav.scp entry may be a pipe
(``sox ... |``): such commands are code found in a data file, and frugal never runs them
(nor writes them into a manifest, where feature extraction would run them) unless the user
says so with ``allow_commands``. Durations come from the audio headers (files, which are
checked for truncation) or from running the commands (allowed pipes); a reco2dur file is
not trusted.
"""
from __future__ import annotations

import io
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Optional

import soundfile as sf
from lhotse.audio.backend import info as audio_info
from lhotse.kaldi import load_kaldi_data_dir

from frugal.data.audio import check_audio_file
from frugal.data.manifests import PartSummary, require_dir, write_part
from frugal.errors import FrugalError, where

log = logging.getLogger(__name__)

KALDI_FILES = ("wav.scp", "text", "utt2spk", "segments", "spk2gender", "utt2lang", "reco2dur")


def read_wav_scp(path: Path) -> Dict[str, str]:
    entries: Dict[str, str] = {}
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=1)
        if len(fields) < 2:
            raise FrugalError(f"{where(path, line_no)}: expected '<recording-id> <file or command |>'")
        if fields[0] in entries:
            raise FrugalError(f"{where(path, line_no)}: recording {fields[0]} listed twice")
        entries[fields[0]] = fields[1].strip()
    if not entries:
        raise FrugalError(f"{path}: empty wav.scp")
    return entries


def _duration_and_rate(entry: str, origin: str, allow_commands: bool):
    if entry.endswith("|"):
        if not allow_commands:
            raise FrugalError(f"{origin}: wav.scp entry is a command ('{entry}'): frugal does not run "
                              f"commands found in data files; use --allow-commands if you trust it")
        result = subprocess.run(entry[:-1], shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if result.returncode != 0:
            raise FrugalError(f"{origin}: command failed (exit {result.returncode}): "
                              f"{result.stderr.decode(errors='replace').strip().splitlines()[-1:]}")
        try:
            with sf.SoundFile(io.BytesIO(result.stdout)) as audio:
                return audio.frames / audio.samplerate, audio.samplerate
        except RuntimeError as e:
            raise FrugalError(f"{origin}: command output is not audio: {e}")
    check_audio_file(entry)
    info = audio_info(entry)
    return info.duration, info.samplerate


def import_kaldi_dir(
    kaldi_dir,
    output_dir,
    corpus: str,
    part: str,
    sampling_rate: Optional[int] = None,
    allow_commands: bool = False,
    trim_to_supervisions: Optional[bool] = None,
) -> PartSummary:
    """Write ``<corpus>_{recordings,supervisions,cuts}_<part>.jsonl.gz`` from a Kaldi data dir.

    Cuts are trimmed to the segments when a segments file exists (unless told otherwise).
    """
    kaldi_dir = require_dir(kaldi_dir, "Kaldi data directory")
    for name in ("wav.scp", "text", "utt2spk"):
        if not (kaldi_dir / name).is_file():
            raise FrugalError(f"{kaldi_dir / name}: missing (a Kaldi data dir needs wav.scp, text, utt2spk)")
    wav_scp = read_wav_scp(kaldi_dir / "wav.scp")
    segmented = (kaldi_dir / "segments").is_file()
    recording_ids = set(wav_scp)
    # The utterances that have audio: those of segments, or (unsegmented) of utt2spk.
    utterance_file = kaldi_dir / ("segments" if segmented else "utt2spk")
    listed_at = [(n, line.split()[0]) for n, line in enumerate(utterance_file.read_text().splitlines(), 1)
                 if line.strip()]
    listed = [utt for _, utt in listed_at]
    for line_no, line in enumerate((kaldi_dir / "segments").read_text().splitlines() if segmented else [], 1):
        fields = line.split()
        if fields and (len(fields) != 4 or fields[1] not in recording_ids):
            raise FrugalError(f"{where(kaldi_dir / 'segments', line_no)}: utterance {fields[0]}: "
                              + ("expected '<utt> <recording> <start> <end>'" if len(fields) != 4
                                 else f"recording {fields[1]} is not in wav.scp"))
    utterances = set(listed)
    transcribed = set()
    for line_no, line in enumerate((kaldi_dir / "text").read_text().splitlines(), 1):
        utt = line.split(maxsplit=1)[0] if line.strip() else None
        if utt is not None and utt not in utterances:
            raise FrugalError(f"{where(kaldi_dir / 'text', line_no)}: utterance {utt} has no audio "
                              f"(not in {'segments' if segmented else 'wav.scp/utt2spk'})")
        transcribed.add(utt)
    if not transcribed - {None}:
        raise FrugalError(f"{kaldi_dir / 'text'}: empty (no transcripts)")
    for line_no, utt in listed_at:
        if utt not in transcribed:  # lhotse would stop on a KeyError
            raise FrugalError(f"{where(utterance_file, line_no)}: utterance {utt} has no line in "
                              f"{kaldi_dir / 'text'}")
    if not segmented:
        for utt in listed:
            if utt not in recording_ids:
                raise FrugalError(f"{kaldi_dir / 'utt2spk'}: utterance {utt} has no wav.scp entry")

    durations, rates = {}, set()
    for line_no, (rec_id, entry) in enumerate(wav_scp.items(), 1):
        durations[rec_id], rate = _duration_and_rate(entry, f"{where(kaldi_dir / 'wav.scp', line_no)}: recording {rec_id}", allow_commands)
        rates.add(rate)
    if sampling_rate is None:
        if len(rates) != 1:
            raise FrugalError(f"{kaldi_dir / 'wav.scp'}: recordings have several sampling rates {sorted(rates)}")
        sampling_rate = rates.pop()

    with tempfile.TemporaryDirectory() as scratch:
        # A copy with our reco2dur, so that lhotse neither runs commands nor decodes audio.
        for name in KALDI_FILES:
            if (kaldi_dir / name).is_file() and name != "reco2dur":
                shutil.copy(kaldi_dir / name, Path(scratch) / name)
        (Path(scratch) / "reco2dur").write_text("".join(f"{r} {d}\n" for r, d in durations.items()))
        recordings, supervisions, _ = load_kaldi_data_dir(scratch, sampling_rate=sampling_rate)
    if supervisions is None:
        raise FrugalError(f"{kaldi_dir}: no utterances found")
    trim = segmented if trim_to_supervisions is None else trim_to_supervisions
    return write_part(output_dir, corpus, part, recordings, supervisions, trim_to_supervisions=trim)
