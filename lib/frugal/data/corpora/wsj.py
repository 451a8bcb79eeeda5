"""Wall Street Journal (WSJ0 LDC93S6B + WSJ1 LDC94S13B) in Kaldi's partitions.

lhotse has no WSJ recipe; this one follows Kaldi's egs/wsj/s5/local/wsj_data_prep.sh:

- the corpus directory holds the discs, named like ``11-1.1`` or ``13-34.1`` (directly or
  one level down, e.g. ``LDC93S6B/11-1.1``);
- index files (``.ndx``) list each part's utterances as ``11_1_1:wsj0/si_tr_s/011/011c0201.wv1``
  (disc ``11_1_1`` is directory ``11-1.1``; lines starting with ``;`` are comments):
    train_si84   11-13.1/wsj0/doc/indices/train/tr_s_wv1.ndx
    train_si284  that one plus 13-34.1/wsj1/doc/indices/si_tr_s.ndx
    test_eval92  11-13.1/wsj0/doc/indices/test/nvp/si_et_20.ndx (333 utterances, no extension: .wv1)
    test_dev93   13-34.1/wsj1/doc/indices/h1_p0.ndx (503 utterances)
    test_eval92_5k, test_dev93_5k: the 5k-vocabulary sets si_et_05.ndx and h2_p0.ndx
  Speaker 401 of wsj0's si_tr_s is left out of training, as Kaldi does;
- transcripts come from the ``.dot`` files anywhere on the discs: ``<spk><c|o><session>.dot``
  (the first 6 characters of the utterance id) with lines ``text (uttid)``, normalised as
  Kaldi's normalize_transcript.pl does (see normalize_wsj_transcript);
- utterance ids are the lower-cased file names, speakers their first 3 characters;
- audio is SPHERE (.wv1), usually shorten-compressed: see frugal.data.audio.sphere_recording.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from lhotse import RecordingSet, SupervisionSegment, SupervisionSet
from tqdm import tqdm

from frugal.data.audio import sphere_recording
from frugal.data.manifests import PartSummary, require_dir, write_part, write_words
from frugal.data.corpora import Corpus, Option
from frugal.errors import BadValue, FrugalError, where

log = logging.getLogger(__name__)

CORPUS = "wsj"
DISC_NAME = re.compile(r"^\d\d-\d+\.\d$")
NOISE_WORD = "<NOISE>"

# part -> (index files as (disc, path on the disc), extension to add when an entry has none)
PART_INDICES: Dict[str, Tuple[List[Tuple[str, str]], str]] = {
    "train_si84": ([("11-13.1", "wsj0/doc/indices/train/tr_s_wv1.ndx")], ".wv1"),
    "train_si284": ([("13-34.1", "wsj1/doc/indices/si_tr_s.ndx"),
                     ("11-13.1", "wsj0/doc/indices/train/tr_s_wv1.ndx")], ".wv1"),
    "test_eval92": ([("11-13.1", "wsj0/doc/indices/test/nvp/si_et_20.ndx")], ".wv1"),
    "test_dev93": ([("13-34.1", "wsj1/doc/indices/h1_p0.ndx")], ".wv1"),
    "test_eval92_5k": ([("11-13.1", "wsj0/doc/indices/test/nvp/si_et_05.ndx")], ".wv1"),
    "test_dev93_5k": ([("13-34.1", "wsj1/doc/indices/h2_p0.ndx")], ".wv1"),
}
DEFAULT_PARTS = ("train_si284", "test_dev93", "test_eval92")
# wsj0 speaker 401 is left out of training (as in Kaldi).
EXCLUDED_FROM_TRAINING = "11-2.1/wsj0/si_tr_s/401/"


def normalize_wsj_transcript(words: Sequence[str], noise_word: str = NOISE_WORD) -> List[str]:
    """Kaldi's WSJ transcript normalisation (normalize_transcript.pl), word by word.

    Upper-case; drop backslashes (quoting); ``%PERCENT``/``.POINT`` -> PERCENT/POINT;
    noises spanning a word (``[<door_slam]``, ``[door_slam>]``, ``[phone_ring/]``,
    ``[/phone_ring]``), ``~`` (truncation) and ``.`` (pause) are dropped; other bracketed
    noises (``[loud_breath]``) become the noise word; ``<word>`` (verbally deleted but
    spoken) becomes ``word``; ``--DASH`` becomes ``-DASH`` (CMUdict's spelling). Other words,
    including mispronunciations ``*word*`` and verbalised punctuation (``,COMMA``), are kept
    as they are, as in Kaldi (the lexicon decides what is out of vocabulary).
    """
    out = []
    for w in words:
        w = w.upper().replace("\\", "")
        if w == "%PERCENT":
            w = "PERCENT"
        elif w == ".POINT":
            w = "POINT"
        if (re.fullmatch(r"\[<\w+\]", w) or re.fullmatch(r"\[\w+>\]", w)
                or re.search(r"\[\w+/\]$", w) or re.search(r"\[/\w+\]$", w)
                or w in ("~", ".")):
            continue
        if re.search(r"\[\w+\]", w):
            out.append(noise_word)
        elif re.fullmatch(r"<([\w']+)>", w):
            out.append(w[1:-1])
        elif w == "--DASH":
            out.append("-DASH")
        else:
            out.append(w)
    return out


def find_discs(corpus_dir: Path) -> Dict[str, Path]:
    """Disc name (``11-1.1``) -> directory, found in corpus_dir or one level below."""
    discs: Dict[str, Path] = {}
    for candidate in [corpus_dir, *sorted(p for p in corpus_dir.iterdir() if p.is_dir())]:
        for d in sorted(candidate.iterdir()):
            if d.is_dir() and DISC_NAME.match(d.name):
                discs.setdefault(d.name, d)
    if not discs:
        raise FrugalError(f"{corpus_dir}: no WSJ disc directories (named like 11-1.1 or 13-34.1) found")
    return discs


def _resolve(base: Path, relative: str) -> Optional[Path]:
    """base/relative, matching each component case-insensitively (discs copied with upcasing)."""
    path = base
    for part in Path(relative).parts:
        exact = path / part
        if exact.exists():
            path = exact
            continue
        matches = [p for p in path.iterdir() if p.name.lower() == part.lower()] if path.is_dir() else []
        if not matches:
            return None
        path = matches[0]
    return path


def read_index(ndx: Path, discs: Dict[str, Path], extension: str) -> List[Tuple[str, Path, str]]:
    """The entries of an .ndx file as (utterance id, audio path, 'ndx:line')."""
    entries = []
    for line_no, line in enumerate(ndx.read_text(encoding="latin-1").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        m = re.fullmatch(r"(\d+)_(\d+)_(\d+):\s*(\S+)", line)
        if not m:
            raise FrugalError(f"{where(ndx, line_no)}: not an index entry 'DD_D_D:path': {line!r}")
        disc = f"{m.group(1)}-{m.group(2)}.{m.group(3)}"
        relative = m.group(4).lstrip("/")
        if not Path(relative).suffix:
            relative += extension
        utt_id = Path(relative).stem.lower()
        if disc not in discs:
            raise FrugalError(f"{where(ndx, line_no)}: utterance {utt_id}: disc {disc} not found")
        audio = _resolve(discs[disc], relative)
        if audio is None or not audio.is_file():
            raise FrugalError(
                f"{where(ndx, line_no)}: utterance {utt_id}: audio file {discs[disc] / relative} not found")
        entries.append((utt_id, audio, where(ndx, line_no)))
    return entries


def read_dot_files(discs: Dict[str, Path]) -> Dict[str, Path]:
    """Transcript file key (first 6 characters of an utterance id) -> .dot file."""
    dots: Dict[str, Path] = {}
    for disc in discs.values():
        for path in disc.rglob("*"):
            if path.suffix.lower() == ".dot":
                dots.setdefault(path.stem.lower(), path)
    return dots


class _Transcripts:
    """Transcripts by utterance id, reading each .dot file once, when first needed."""

    def __init__(self, dots: Dict[str, Path]):
        self.dots = dots
        self.cache: Dict[str, Dict[str, str]] = {}

    def get(self, utt_id: str, origin: str) -> str:
        key = utt_id[:6]
        if key not in self.dots:
            raise FrugalError(f"{origin}: utterance {utt_id}: no transcript file {key}.dot on the discs")
        if key not in self.cache:
            table = {}
            dot = self.dots[key]
            for line_no, line in enumerate(dot.read_text(encoding="latin-1").splitlines(), 1):
                if not line.strip():
                    continue
                m = re.fullmatch(r"(.*)\((\w+)\)\s*", line)
                if not m:
                    raise FrugalError(f"{where(dot, line_no)}: not a transcript line 'text (uttid)'")
                table[m.group(2).lower()] = m.group(1)
            self.cache[key] = table
        if utt_id not in self.cache[key]:
            raise FrugalError(f"{origin}: utterance {utt_id}: not transcribed in {self.dots[key]}")
        return self.cache[key][utt_id]


def prepare_wsj(
    corpus_dir,
    output_dir,
    lexicon_dir=None,
    parts: Sequence[str] = DEFAULT_PARTS,
    noise_word: str = NOISE_WORD,
    sph2pipe: str = "sph2pipe",
) -> Dict[str, PartSummary]:
    """Write WSJ manifests for the given parts, and words.txt of the training parts."""
    corpus_dir = require_dir(corpus_dir, "the WSJ discs")
    discs = find_discs(corpus_dir)
    transcripts = _Transcripts(read_dot_files(discs))
    summaries, training = {}, []
    for part in parts:
        if part not in PART_INDICES:
            raise BadValue("parts", part, f"unknown WSJ part (known: {', '.join(PART_INDICES)})")
        indices, extension = PART_INDICES[part]
        entries: Dict[str, Tuple[Path, str]] = {}
        for disc, relative in indices:
            if disc not in discs:
                raise FrugalError(f"{corpus_dir}: WSJ disc {disc} (needed for {part}) not found")
            ndx = _resolve(discs[disc], relative)
            if ndx is None:
                raise FrugalError(f"{discs[disc] / relative}: index file of {part} not found")
            for utt_id, audio, origin in read_index(ndx, discs, extension):
                if part.startswith("train") and EXCLUDED_FROM_TRAINING in audio.as_posix().lower():
                    continue
                entries.setdefault(utt_id, (audio, origin))
        recordings, supervisions = [], []
        for utt_id in tqdm(sorted(entries), desc=f"wsj {part}", disable=None):
            audio, origin = entries[utt_id]
            text = transcripts.get(utt_id, origin)
            recording = sphere_recording(audio, utt_id, sph2pipe=sph2pipe)
            recordings.append(recording)
            supervisions.append(SupervisionSegment(
                id=utt_id, recording_id=utt_id, start=0.0, duration=recording.duration,
                channel=0, text=" ".join(normalize_wsj_transcript(text.split(), noise_word)),
                speaker=utt_id[:3], language="English"))
        sups = SupervisionSet.from_segments(supervisions)
        summaries[part] = write_part(output_dir, CORPUS, part, RecordingSet.from_recordings(recordings),
                                     sups, trim_to_supervisions=False)
        if part.startswith("train"):
            training.append(sups)
    if lexicon_dir is not None and training:
        write_words(Path(lexicon_dir) / "words.txt", training)
    return summaries


PREPARE = Corpus(
    name=CORPUS,
    summary="WSJ0+WSJ1 (LDC93S6B, LDC94S13B): train_si284, test_dev93, test_eval92",
    description="WSJ after Kaldi's wsj_data_prep.sh: --corpus-dir holds the discs (11-1.1, ..., 13-34.1, "
                "directly or one level down).",
    prepare=prepare_wsj,
    options=[Option("parts", "parts (also train_si84, test_eval92_5k, test_dev93_5k)", default=list(DEFAULT_PARTS),
                    nargs="+"),
             Option("noise_word", "word for [noise] markers", default=NOISE_WORD),
             Option("sph2pipe", "sph2pipe program for compressed SPHERE files (from PATH)", default="sph2pipe")],
)
