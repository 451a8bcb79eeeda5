"""Lhotse cut manifests with given transcripts, for tests that need cuts but no audio."""
from pathlib import Path
from typing import Mapping, Sequence

from lhotse import AudioSource, CutSet, MonoCut, Recording, SupervisionSegment


def write_text_cuts(path: Path, refs: Mapping[str, Sequence[str]], duration: float = 1.0) -> Path:
    """One 1-second cut per utterance id, with one supervision carrying its words."""
    cuts = []
    for uttid, words in refs.items():
        rec = Recording(uttid, [AudioSource("file", [0], f"/nonexistent/{uttid}.wav")], 16000, int(16000 * duration),
                        duration)
        sup = SupervisionSegment(uttid, uttid, 0.0, duration, channel=0, text=" ".join(words))
        cuts.append(MonoCut(uttid, 0.0, duration, 0, recording=rec, supervisions=[sup]))
    CutSet.from_cuts(cuts).to_file(path)
    return path
