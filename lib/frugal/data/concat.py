"""Long utterances: consecutive cuts joined into one, with their features concatenated.

Thesis chapter 5 compares attention kinds whose speed differs only on long inputs. lhotse's
``cut.append()`` makes MixedCuts, whose features lhotse recomputes from audio with a
registered extractor (and cannot load frugal's); here each group of cuts becomes a plain
``MonoCut`` whose precomputed features are the row-concatenation of its members' feature
matrices, written anew (lilcom, as `frugal.data.features` writes them), with no recording:
frugal's FeatureDataset needs features only.

Cuts are sorted by id and each run of ``group`` consecutive cuts is joined (the last run may
be shorter); with ``max_frames`` a run ends early rather than grow past it, and a cut longer
than that stays alone. A joined cut's id is its members' ids joined by '+' (or
``<first id>+<n>cuts`` where that would be longer than `MAX_ID_CHARS`), its one supervision
spans it with the members' words in order, spoken by the first member's speaker (or
``mixed``).

Re-storing is lossy: lilcom rounds to its tick (2^-5) again, and as a joined cut's 500-frame
chunks straddle its members, its values differ from the members' decoded ones by up to half
a tick.

The feature directory is written under a temporary name and renamed; an old output manifest
is removed before the new features replace the old, and the new manifest is written last,
so a killed run leaves no manifest pointing at features that are not (or no longer) its own.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import List, Optional

import numpy as np
from lhotse import CutSet, Features, LilcomChunkyWriter, MonoCut, SupervisionSegment

from frugal.data.cuts import cut_words, load_cuts
from frugal.data.jsonl import write_manifest
from frugal.errors import BadValue, FrugalError, first_line
from frugal.fileio import PathLike, atomic_path

log = logging.getLogger(__name__)

# Longer joined ids become '<first id>+<n>cuts' (ids end up in file names and Kaldi archives).
MAX_ID_CHARS = 200
# Joined cuts per lilcom archive of the storage directory.
CUTS_PER_ARCHIVE = 1000


def group_cuts(cuts: List, group: int, max_frames: Optional[int] = None) -> List[List]:
    """Runs of at most ``group`` consecutive cuts (in the given order), each of at most
    ``max_frames`` frames unless it is one cut longer than that."""
    groups: List[List] = []
    run: List = []
    frames = 0
    for cut in cuts:
        n = cut.num_frames
        if run and (len(run) >= group or (max_frames is not None and frames + n > max_frames)):
            groups.append(run)
            run, frames = [], 0
        run.append(cut)
        frames += n
    if run:
        groups.append(run)
    return groups


def joined_id(members: List) -> str:
    ids = "+".join(c.id for c in members)
    return ids if len(ids) <= MAX_ID_CHARS else f"{members[0].id}+{len(members)}cuts"


def _feature_kind(cut) -> tuple:
    f = cut.features
    return (f.type, f.num_features, f.frame_shift, f.sampling_rate)


def _check_members(cuts: List, name: str) -> None:
    """All cuts must have features of one kind: a joined matrix has one dimension and one frame rate."""
    first = cuts[0]
    kind = _feature_kind(first)
    for cut in cuts[1:]:
        if _feature_kind(cut) != kind:
            t, d, s, r = _feature_kind(cut)
            raise FrugalError(f"{name}: cut {cut.id} has {d}-dim '{t}' features, {s} s frames at {r} Hz, "
                              f"cut {first.id} {kind[1]}-dim '{kind[0]}', {kind[2]} s at {kind[3]} Hz: "
                              "cannot join them")


def _load(cut, name: str) -> np.ndarray:
    try:
        feats = cut.load_features()
    except (OSError, ValueError, RuntimeError, KeyError) as e:  # a missing, truncated or foreign archive
        raise FrugalError(f"{name}: cut {cut.id}: cannot read its features from {cut.features.storage_path}: "
                          f"{first_line(e)}") from None
    if feats.ndim != 2 or feats.shape != (cut.num_frames, cut.num_features):
        raise FrugalError(f"{name}: cut {cut.id}: its features are {feats.shape}, the manifest says "
                          f"({cut.num_frames}, {cut.num_features})")
    return feats


def _joined_cut(members: List, feats: np.ndarray, cut_id: str, storage_type: str, storage_path: str,
                storage_key: str) -> MonoCut:
    proto = members[0].features
    num_frames = feats.shape[0]
    duration = round(num_frames * proto.frame_shift, 6)
    features = Features(type=proto.type, num_frames=num_frames, num_features=feats.shape[1],
                        frame_shift=proto.frame_shift, sampling_rate=proto.sampling_rate, start=0.0,
                        duration=duration, storage_type=storage_type, storage_path=storage_path,
                        storage_key=storage_key, recording_id=cut_id, channels=0)
    speakers = {s.speaker for c in members for s in c.supervisions}
    first_speaker = next((s.speaker for c in members for s in c.supervisions), None)
    languages = {s.language for c in members for s in c.supervisions}
    sup = SupervisionSegment(id=cut_id, recording_id=cut_id, start=0.0, duration=duration, channel=0,
                             text=" ".join(w for c in members for w in cut_words(c)),
                             speaker=first_speaker if len(speakers) == 1 else "mixed",
                             language=languages.pop() if len(languages) == 1 else None)
    return MonoCut(id=cut_id, start=0.0, duration=duration, channel=0, features=features, supervisions=[sup])


def concat_cuts(cuts_path: PathLike, output_path: PathLike, storage_dir: PathLike, group: int,
                max_frames: Optional[int] = None) -> CutSet:
    """Join each run of ``group`` consecutive cuts (sorted by id) of the manifest ``cuts_path``
    into one cut whose features are its members' concatenated; features go to lilcom archives
    in ``storage_dir``, the cuts to ``output_path`` (.jsonl.gz). See the module docstring."""
    cuts_path, output_path, storage_dir = Path(cuts_path), Path(output_path), Path(storage_dir)
    if group < 1:
        raise BadValue("group", group, "must be at least 1")
    if max_frames is not None and max_frames < 1:
        raise BadValue("max_frames", max_frames, "must be positive")
    if not output_path.name.endswith(".jsonl.gz"):
        raise FrugalError(f"{output_path}: the output manifest must be a .jsonl.gz file")
    name = str(cuts_path)
    if output_path.resolve() == cuts_path.resolve():
        raise FrugalError(f"{output_path}: the output manifest would replace the input manifest")
    cuts = sorted(load_cuts(cuts_path, features=True), key=lambda c: c.id)
    final_dir = storage_dir.resolve()
    for cut in cuts:
        storage = Path(cut.features.storage_path).resolve()
        if storage == final_dir or final_dir in storage.parents:
            raise FrugalError(f"{name}: cut {cut.id}: its features are in {storage_dir}, which would be replaced "
                              "(give another --storage-dir)")
    _check_members(cuts, name)
    groups = group_cuts(cuts, group, max_frames)
    ids = [joined_id(g) for g in groups]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise FrugalError(f"{name}: two joined cuts would have the id {dup} (cut ids containing '+'?)")

    out = []
    with atomic_path(storage_dir, is_dir=True) as tmp:
        for start in range(0, len(groups), CUTS_PER_ARCHIVE):
            archive = f"feats-{start // CUTS_PER_ARCHIVE:05d}"
            with LilcomChunkyWriter(tmp / archive) as writer:
                final_path = str(storage_dir / Path(writer.storage_path).name)
                for members, cut_id in zip(groups[start:start + CUTS_PER_ARCHIVE], ids[start:start + CUTS_PER_ARCHIVE]):
                    feats = np.concatenate([_load(c, name) for c in members], axis=0)
                    key = writer.write(cut_id, feats)  # lilcom rounds feats in place
                    out.append(_joined_cut(members, feats, cut_id, writer.name, final_path, key))
        # The features an old manifest of this name points at are about to be replaced.
        if output_path.exists() or output_path.is_symlink():
            os.unlink(output_path)
    result = CutSet.from_cuts(out)
    write_manifest(result, output_path)
    frames = [c.num_frames for c in out]
    log.info("%s: %d cuts joined into %d (group %d%s): %.0f frames on average, %d at most; features in %s",
             output_path, len(cuts), len(out), group, f", at most {max_frames} frames" if max_frames else "",
             sum(frames) / len(frames), max(frames), storage_dir)
    return result
