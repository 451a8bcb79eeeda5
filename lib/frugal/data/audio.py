"""Audio headers for corpus preparation: NIST SPHERE parsing and checks of audio files.

Corpus preparation reads only headers (never decodes whole conversations): durations come
from the header's sample counts, and a file whose header promises more samples than the
file holds is reported as truncated before any manifest is written.

SPHERE files come in two kinds: plain PCM (soundfile reads them) and compressed or u-law
ones (``sample_coding`` containing ``shorten`` or ``ulaw``) that need the external
``sph2pipe`` (tools/install_sph2pipe.sh), as in Kaldi and lhotse.
"""
from __future__ import annotations

import contextlib
import shlex
import struct
from pathlib import Path
from typing import Dict, Iterator, Optional, Union

import numpy as np
import soundfile as sf
from lhotse import AudioSource, Recording
from lhotse.audio import backend as lhotse_backend

from frugal.errors import FrugalError

SPHERE_MAGIC = b"NIST_1A"


def read_sphere_header(path: Union[str, Path]) -> Dict[str, Union[int, float, str]]:
    """The fields of a NIST SPHERE header, plus ``header_bytes`` (the header's size)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            start = f.read(16)
            if not start.startswith(SPHERE_MAGIC):
                raise FrugalError(f"{path}: not a NIST SPHERE file (no NIST_1A header)")
            try:
                header_bytes = int(start[8:16].decode("ascii").strip())
            except ValueError:
                raise FrugalError(f"{path}: bad SPHERE header size field {start[8:16]!r}")
            text = start + f.read(header_bytes - 16)
    except OSError as e:
        raise FrugalError(f"{path}: cannot read: {e.strerror}")
    if len(text) < header_bytes:
        raise FrugalError(f"{path}: truncated SPHERE header")
    fields: Dict[str, Union[int, float, str]] = {"header_bytes": header_bytes}
    for line in text.decode("latin-1").splitlines()[2:]:
        parts = line.split(None, 2)
        if not parts or parts[0] == "end_head":
            break
        if len(parts) < 3:
            continue
        key, kind, value = parts
        if kind == "-i":
            fields[key] = int(value)
        elif kind == "-r":
            fields[key] = float(value)
        else:  # -sN: a string of N characters
            fields[key] = value
    else:
        raise FrugalError(f"{path}: SPHERE header has no end_head")
    for key in ("sample_rate", "sample_count"):
        if key not in fields:
            raise FrugalError(f"{path}: SPHERE header lacks {key}")
    return fields


def sphere_needs_sph2pipe(header: Dict) -> bool:
    """True for shorten-compressed or u-law SPHERE files, which soundfile cannot read."""
    coding = str(header.get("sample_coding", "pcm")).lower()
    return "shorten" in coding or "ulaw" in coding or "mu-law" in coding or "wavpack" in coding


def check_sphere(path: Union[str, Path], header: Optional[Dict] = None) -> Dict:
    """Raise FrugalError when a PCM SPHERE file holds fewer samples than its header says."""
    header = header or read_sphere_header(path)
    if not sphere_needs_sph2pipe(header):
        expected = header["header_bytes"] + (
            header["sample_count"] * header.get("channel_count", 1) * header.get("sample_n_bytes", 2)
        )
        size = Path(path).stat().st_size
        if size < expected:
            raise FrugalError(
                f"{path}: truncated audio file: the SPHERE header promises "
                f"{header['sample_count']} samples ({expected} bytes) but the file has {size} bytes"
            )
    return header


def sph2pipe_command(path: Union[str, Path], sph2pipe: str = "sph2pipe") -> str:
    """The shell command that decodes a SPHERE file to WAV on stdout (lhotse command source)."""
    return f"{shlex.quote(sph2pipe)} -f wav -p {shlex.quote(str(Path(path).resolve()))}"


def sphere_recording(
    path: Union[str, Path], recording_id: Optional[str] = None, sph2pipe: str = "sph2pipe"
) -> Recording:
    """A lhotse Recording of a SPHERE file from its header alone.

    PCM files get a plain file source; compressed (shorten) or u-law files a command source
    through sph2pipe, like Kaldi's ``sph2pipe -f wav -p FILE |`` wav.scp entries. (lhotse
    reads any ``*.sph`` file through sph2pipe whatever its source type.)
    """
    path = Path(path).resolve()
    header = check_sphere(path)
    channels = list(range(int(header.get("channel_count", 1))))
    if sphere_needs_sph2pipe(header):
        source = AudioSource(type="command", channels=channels, source=sph2pipe_command(path, sph2pipe))
    else:
        source = AudioSource(type="file", channels=channels, source=str(path))
    rate = int(header["sample_rate"])
    num_samples = int(header["sample_count"])
    return Recording(
        id=recording_id or path.stem,
        sources=[source],
        sampling_rate=rate,
        num_samples=num_samples,
        duration=num_samples / rate,
    )


def _check_riff_wav(path: Path) -> None:
    """A RIFF/WAVE file is truncated when its data chunk claims more bytes than follow it."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[8:12] != b"WAVE":
            raise FrugalError(f"{path}: not a RIFF/WAVE file")
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                raise FrugalError(f"{path}: truncated audio file: no data chunk")
            name, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if name == b"data":
                if f.tell() + length > size:
                    raise FrugalError(
                        f"{path}: truncated audio file: the header promises {length} bytes "
                        f"of samples but only {size - f.tell()} follow it"
                    )
                return
            f.seek(length + (length & 1), 1)


def check_audio_file(path: Union[str, Path]) -> None:
    """Raise a FrugalError naming ``path`` when it is missing, unreadable or truncated.

    Only headers and the last frame are read, so this is cheap even for long recordings.
    """
    path = Path(path)
    if not path.is_file():
        raise FrugalError(f"{path}: no such audio file")
    with open(path, "rb") as f:
        magic = f.read(12)
    if magic.startswith(SPHERE_MAGIC):
        check_sphere(path)
        return
    if magic.startswith(b"RIFF"):
        _check_riff_wav(path)
    try:
        with sf.SoundFile(str(path)) as audio:
            if audio.frames <= 0:
                raise FrugalError(f"{path}: audio file has no samples")
            # Seeking to the last frame makes compressed formats (FLAC) decode their
            # end: a cut-short file fails here although its header looks fine.
            audio.seek(audio.frames - 1)
            if len(audio.read(1)) != 1:
                raise FrugalError(f"{path}: truncated audio file")
    except (RuntimeError, sf.LibsndfileError) as e:
        raise FrugalError(f"{path}: unreadable or truncated audio file: {e}")


def check_recording_files(recordings) -> None:
    """check_audio_file for every file source of a RecordingSet (command sources are skipped)."""
    for recording in recordings:
        for source in recording.sources:
            if source.type == "file":
                check_audio_file(source.source)


def require_one_sampling_rate(items, name: str) -> int:
    """The one sampling rate of recordings or cuts (anything with ``id``, ``sampling_rate``
    and ``recording``/``sources``); a part with several would give features of different
    bands, silently, as lhotse only warns."""
    by_rate: Dict[int, list] = {}
    for item in items:
        by_rate.setdefault(item.sampling_rate, []).append(item)
    if len(by_rate) > 1:
        rarest = min(by_rate.values(), key=len)[0]
        recording = getattr(rarest, "recording", rarest)
        source = recording.sources[0].source if getattr(recording, "sources", None) else rarest.id
        counts = ", ".join(f"{len(v)} at {r} Hz" for r, v in sorted(by_rate.items()))
        raise FrugalError(f"{name}: recordings have several sampling rates ({counts}), e.g. {rarest.id} "
                          f"({source}) at {rarest.sampling_rate} Hz: resample them to one rate first")
    return next(iter(by_rate), 0)


class SphereHeaderBackend(lhotse_backend.AudioBackend):
    """A lhotse audio backend for ``*.sph`` files that takes their info from the header.

    lhotse's default decodes a whole SPHERE file through sph2pipe just to learn its length;
    this backend reads the header instead (and checks truncation), reads PCM files with
    soundfile, and falls back to lhotse's sph2pipe reader for compressed ones.
    """

    def handles_special_case(self, path_or_fd) -> bool:
        return isinstance(path_or_fd, (str, Path)) and str(path_or_fd).lower().endswith(".sph")

    def is_applicable(self, path_or_fd) -> bool:
        return self.handles_special_case(path_or_fd)

    def supports_info(self) -> bool:
        return True

    def info(self, path_or_fd, force_opus_sampling_rate=None):
        header = check_sphere(path_or_fd)
        rate, frames = int(header["sample_rate"]), int(header["sample_count"])
        return lhotse_backend.LibsndfileCompatibleAudioInfo(
            channels=int(header.get("channel_count", 1)),
            frames=frames,
            samplerate=rate,
            duration=frames / rate,
        )

    def read_audio(self, path_or_fd, offset=0.0, duration=None, force_opus_sampling_rate=None):
        header = read_sphere_header(path_or_fd)
        if sphere_needs_sph2pipe(header):
            return lhotse_backend.read_sph(path_or_fd, offset=offset, duration=duration)
        rate = int(header["sample_rate"])
        start = int(round(offset * rate))
        stop = None if duration is None else start + int(round(duration * rate))
        samples, rate = sf.read(str(path_or_fd), start=start, stop=stop, dtype="float32", always_2d=True)
        return np.ascontiguousarray(samples.T), rate


def sphere_backend() -> "lhotse_backend.CompositeAudioBackend":
    """lhotse's default backends with SphereHeaderBackend in place of its sph2pipe one."""
    default = lhotse_backend.get_default_audio_backend()
    others = [b for b in default.backends if not isinstance(b, lhotse_backend.Sph2pipeSubprocessBackend)]
    return lhotse_backend.CompositeAudioBackend([SphereHeaderBackend()] + others)


@contextlib.contextmanager
def sphere_headers_for_lhotse() -> Iterator[None]:
    """Within this block lhotse's Recording.from_file reads SPHERE headers, not the audio."""
    previous = lhotse_backend.get_current_audio_backend()
    lhotse_backend.set_current_audio_backend(sphere_backend())
    try:
        yield
    finally:
        lhotse_backend.set_current_audio_backend(previous)
