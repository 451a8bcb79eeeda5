"""Shared helpers of corpus preparation: writing one part's manifests, lexicons, splits.

Every corpus writes, for each part, ``<corpus>_recordings_<part>.jsonl.gz``,
``<corpus>_supervisions_<part>.jsonl.gz`` and ``<corpus>_cuts_<part>.jsonl.gz`` into the
output directory, each atomically, so that a killed or failed preparation never leaves a
manifest that a later stage would trust.
"""
from __future__ import annotations

import logging
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

from lhotse import CutSet, RecordingSet, SupervisionSet
from lhotse.qa import fix_manifests, validate_recordings_and_supervisions

from frugal.data.audio import require_one_sampling_rate
from frugal.errors import FrugalError
from frugal.data.jsonl import write_manifest
from frugal.fileio import atomic_write_text

log = logging.getLogger(__name__)


@dataclass
class PartSummary:
    corpus: str
    part: str
    num_recordings: int
    num_supervisions: int
    num_cuts: int
    speech_hours: float

    def __str__(self) -> str:
        return (f"{self.corpus} {self.part}: {self.num_recordings} recordings, "
                f"{self.num_supervisions} supervisions, {self.num_cuts} cuts, "
                f"{self.speech_hours:.3f} h of supervised speech")


def manifest_path(output_dir, corpus: str, kind: str, part: str) -> Path:
    """``<output_dir>/<corpus>_<kind>_<part>.jsonl.gz`` with kind recordings/supervisions/cuts."""
    return Path(output_dir) / f"{corpus}_{kind}_{part}.jsonl.gz"


def require_dir(path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FrugalError(f"{path}: no such directory ({what})")
    return path


def write_part(
    output_dir,
    corpus: str,
    part: str,
    recordings: RecordingSet,
    supervisions: SupervisionSet,
    trim_to_supervisions: bool,
) -> PartSummary:
    """Validate one part's manifests, build its cuts and write all three atomically.

    With ``trim_to_supervisions`` (long segmented recordings: conversations, meetings)
    every supervision becomes a cut of its own span, as icefall does; otherwise each
    recording is one cut (one utterance per file).
    """
    if len(supervisions) == 0:
        raise FrugalError(f"{corpus} {part}: no utterances found")
    recordings, supervisions = fix_manifests(recordings, supervisions)
    require_one_sampling_rate(recordings, f"{corpus} {part}")
    validate_recordings_and_supervisions(recordings, supervisions)
    cuts = CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
    if trim_to_supervisions:
        cuts = cuts.trim_to_supervisions(keep_overlapping=False)
    else:  # lhotse names a recording's cut <recording>-<index>; the corpus's own id is kept
        cuts = CutSet.from_cuts(c.with_id(c.recording_id) for c in cuts)
    cuts = cuts.to_eager()
    for kind, manifest in (("recordings", recordings), ("supervisions", supervisions), ("cuts", cuts)):
        write_manifest(manifest, manifest_path(output_dir, corpus, kind, part))
    summary = PartSummary(
        corpus=corpus,
        part=part,
        num_recordings=len(recordings),
        num_supervisions=len(supervisions),
        num_cuts=len(cuts),
        speech_hours=sum(s.duration for s in supervisions) / 3600,
    )
    log.info("%s", summary)
    return summary


def write_words(path, supervisions: Iterable[SupervisionSet]) -> int:
    """Write the sorted set of words of the given supervisions, one a line (for lexicon
    building from a dictionary such as CMUdict); returns the number of words."""
    words = sorted({w for sups in supervisions for s in sups for w in (s.text or "").split()})
    atomic_write_text(path, "".join(w + "\n" for w in words))
    log.info("%s: %d words", path, len(words))
    return len(words)


def write_lexicon(path, entries: Iterable[Tuple[str, Sequence[str]]]) -> int:
    """Write a Kaldi lexicon (``WORD p1 p2 ...`` a line) atomically; returns its size.

    Entries are sorted and de-duplicated (a word may keep several pronunciations).
    """
    lines = sorted({f"{word} {' '.join(phones)}" for word, phones in entries})
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    log.info("%s: %d lexicon entries", path, len(lines))
    return len(lines)


def speaker_durations(supervisions: SupervisionSet) -> Dict[str, float]:
    durations: Dict[str, float] = defaultdict(float)
    for s in supervisions:
        if s.speaker is None:
            raise FrugalError(f"supervision {s.id} has no speaker: cannot split by speaker")
        durations[s.speaker] += s.duration
    return dict(durations)


def split_speakers_by_hours(
    durations: Mapping[str, float], hours: Sequence[Tuple[str, float]], seed: int
) -> Dict[str, List[str]]:
    """Assign whole speakers to named subsets holding about the requested hours each.

    Speakers are shuffled with ``seed`` (sorted first, so the result does not depend on
    dict order) and dealt out in turn: each subset, in the order given, takes speakers
    until it holds at least its hours. Subsets are disjoint by construction. A subset
    that cannot be filled gets what is left, with a warning.
    """
    speakers = sorted(durations)
    random.Random(seed).shuffle(speakers)
    subsets: Dict[str, List[str]] = {}
    position = 0
    for name, wanted_hours in hours:
        taken, total = [], 0.0
        while total < wanted_hours * 3600 and position < len(speakers):
            taken.append(speakers[position])
            total += durations[speakers[position]]
            position += 1
        if total < wanted_hours * 3600:
            log.warning("subset %s: only %.2f h of the %.2f h asked for are left", name,
                        total / 3600, wanted_hours)
        subsets[name] = taken
    return subsets


def select_speakers(supervisions: SupervisionSet, speakers: Iterable[str]) -> SupervisionSet:
    keep = set(speakers)
    return supervisions.filter(lambda s: s.speaker in keep).to_eager()


def recordings_of(recordings: RecordingSet, supervisions: SupervisionSet) -> RecordingSet:
    ids = {s.recording_id for s in supervisions}
    return recordings.filter(lambda r: r.id in ids).to_eager()
