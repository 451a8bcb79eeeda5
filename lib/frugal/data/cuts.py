"""Cut manifests: the one reader of lhotse cut (and supervision) manifests and their transcripts.

A transcript is the words of a cut's supervisions, joined in order: one sentence per cut,
as the recipes' cuts hold one supervision each (segmented corpora are trimmed to their
supervisions when prepared).
"""
from __future__ import annotations

import gzip
import json
import random
import re
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from lhotse import CutSet, SupervisionSegment, SupervisionSet
from lhotse.cut import Cut
from lhotse.lazy import deserialize_item

from frugal.errors import BadValue, FrugalError, first_line
from frugal.fileio import PathLike

# What a truncated, empty or foreign manifest raises inside lhotse's reader.
_READ_ERRORS = (OSError, EOFError, zlib.error, gzip.BadGzipFile, json.JSONDecodeError, UnicodeDecodeError,
                ValueError, KeyError, TypeError, AttributeError)


def _items(path: Path, name: str):
    """The manifest's items, deserialised line by line so that a bad line is named; lhotse's
    lazy reader would fail later, deep inside whatever iterates the cuts."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            try:
                yield deserialize_item(json.loads(line))
            except _READ_ERRORS as e:
                raise FrugalError(f"{name}:{line_no}: not a lhotse manifest line (truncated file?): "
                                  f"{first_line(e)}") from None


def _read(path: PathLike, where: Optional[str], kinds: tuple) -> Union[CutSet, SupervisionSet]:
    name = where or str(path)
    path = Path(path)
    if not path.is_file():
        raise FrugalError(f"{name}: cut manifest not found")
    if not (path.name.endswith(".jsonl") or path.name.endswith(".jsonl.gz")):
        raise FrugalError(f"{name}: a cut manifest is a .jsonl or .jsonl.gz file")
    try:
        items = list(_items(path, name))
    except _READ_ERRORS as e:  # the file itself: not gzip, not text, cut short inside the gzip stream
        raise FrugalError(f"{name}: not a readable lhotse manifest (truncated or foreign?): "
                          f"{first_line(e)}") from None
    if not items:
        raise FrugalError(f"{name}: empty manifest (no cuts)")
    if all(isinstance(i, Cut) for i in items):
        manifest = CutSet.from_cuts(items)
    elif all(isinstance(i, SupervisionSegment) for i in items):
        manifest = SupervisionSet.from_segments(items)
    else:
        manifest = None
    if not isinstance(manifest, kinds):
        found = (type(manifest).__name__ if manifest is not None
                 else "manifest of " + " and ".join(sorted({type(i).__name__ for i in items})))
        raise FrugalError(f"{name}: a {found}, not a {' or '.join(k.__name__ for k in kinds)}")
    return manifest


def load_cuts(path: PathLike, where: Optional[str] = None, features: bool = False) -> CutSet:
    """The CutSet of a manifest (eager); one-line FrugalErrors, naming ``where`` (e.g.
    ``--cuts FILE``) or the file, for a missing, empty, truncated or foreign manifest.
    With ``features``, every cut must have precomputed features whose files exist, or be a
    raw-audio cut (frugal compute-fbank --raw) whose audio file exists."""
    cuts = _read(path, where, (CutSet,))
    if features:
        _check_feature_files(cuts, where or str(path))
    return cuts


def _check_feature_files(cuts: CutSet, name: str) -> None:
    """Fail before any work starts, not in a worker deep inside the first batch."""
    seen = set()
    for cut in cuts:
        if not cut.has_features and cut.has_recording and cut.recording.sources[0].type == "file":
            storage, what = cut.recording.sources[0].source, "audio file"  # raw audio (compute-fbank --raw)
        elif not cut.has_features:
            raise FrugalError(f"{name}: cut {cut.id} has no precomputed features (run frugal compute-fbank)")
        else:
            storage, what = cut.features.storage_path, "feature file"
        if storage in seen:
            continue
        seen.add(storage)
        if not Path(storage).exists():
            hint = (f" (a relative path, read from {Path.cwd()}: run where the manifest was made)"
                    if not Path(storage).is_absolute() else "")
            raise FrugalError(f"{name}: cut {cut.id}: {what} {storage} not found{hint}")


def cut_words(cut) -> List[str]:
    """The words of a cut's supervisions, in order."""
    return [w for s in cut.supervisions for w in (s.text or "").split()]


def has_transcript(cut) -> bool:
    return bool(cut_words(cut))


def read_transcripts(path: PathLike, where: Optional[str] = None) -> Dict[str, List[str]]:
    """Cut id -> words of a cut manifest, or supervision id -> words of a supervision
    manifest, in the manifest's order (empty lists for cuts without text)."""
    manifest = _read(path, where, (CutSet, SupervisionSet))
    if isinstance(manifest, SupervisionSet):
        return {s.id: (s.text or "").split() for s in manifest}
    return {c.id: cut_words(c) for c in manifest}


# The id suffixes of lhotse's perturbed copies (perturb_speed / perturb_tempo / perturb_volume).
_PERTURBED = re.compile(r"(_(sp|tp|vp)\d+(\.\d+)?)+$")


def source_id(cut_id: str) -> str:
    """The id of the utterance a perturbed copy was made from (``utt_sp0.9`` -> ``utt``)."""
    return _PERTURBED.sub("", cut_id)


def hold_out(cuts: CutSet, num: int, seed: int) -> Tuple[CutSet, CutSet]:
    """(the rest, ``num`` held-out utterances drawn with ``seed``): the same split on every rank
    and every run. Perturbed copies go with their utterance, so no copy of a held-out
    utterance trains; of a held-out utterance only its unperturbed cut (if there) is kept."""
    groups: Dict[str, List[str]] = {}
    for c in cuts:
        groups.setdefault(source_id(c.id), []).append(c.id)
    sources = sorted(groups)
    if not 0 < num < len(sources):
        raise BadValue("num_valid", num, f"must be in [1, {len(sources) - 1}] for {len(sources)} training "
                                         f"utterances")
    held_sources = set(random.Random(seed).sample(sources, num))
    held = {min(groups[s], key=lambda i: (i != s, i)) for s in held_sources}
    return (CutSet.from_cuts([c for c in cuts if source_id(c.id) not in held_sources]),
            CutSet.from_cuts([c for c in cuts if c.id in held]))
