"""Cut manifests: the one reader of lhotse cut (and supervision) manifests and their transcripts.

A transcript is the words of a cut's supervisions, joined in order: one sentence per cut,
as the recipes' cuts hold one supervision each (segmented corpora are trimmed to their
supervisions when prepared).
"""
from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Union

from lhotse import CutSet, SupervisionSet
from lhotse.serialization import load_manifest

from frugal.errors import FrugalError
from frugal.fileio import PathLike

# What a truncated, empty or foreign manifest raises inside lhotse's reader.
_READ_ERRORS = (OSError, EOFError, zlib.error, gzip.BadGzipFile, json.JSONDecodeError, UnicodeDecodeError,
                ValueError, KeyError, TypeError, AttributeError)


def _read(path: PathLike, where: Optional[str], kinds: tuple) -> Union[CutSet, SupervisionSet]:
    name = where or str(path)
    if not Path(path).is_file():
        raise FrugalError(f"{name}: cut manifest not found")
    try:
        manifest = load_manifest(path) if len(kinds) > 1 else CutSet.from_file(path)
    except _READ_ERRORS as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FrugalError(f"{name}: not a readable lhotse manifest (truncated or foreign?): {reason}") from None
    if manifest is None or len(manifest) == 0:
        raise FrugalError(f"{name}: empty manifest (no cuts)")
    if not isinstance(manifest, kinds):
        raise FrugalError(f"{name}: a {type(manifest).__name__}, not a "
                          f"{' or '.join(k.__name__ for k in kinds)}")
    return manifest


def load_cuts(path: PathLike, where: Optional[str] = None) -> CutSet:
    """The CutSet of a manifest (eager); one-line FrugalErrors, naming ``where`` (e.g.
    ``--cuts FILE``) or the file, for a missing, empty, truncated or foreign manifest."""
    return _read(path, where, (CutSet,))


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
