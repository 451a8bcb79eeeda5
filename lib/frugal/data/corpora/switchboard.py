"""Switchboard-1 (LDC97S62) with a held-out dev part, and eval2000 (LDC2002S09 + LDC2002T43).

Through lhotse's recipes (prepare_switchboard, prepare_eval2000), with SPHERE durations read
from headers (frugal.data.audio.sphere_headers_for_lhotse) and checks that name bad files.

Layouts: ``<corpus>/**/sw0NNNN.sph`` (2 channels, sides A and B) with the Mississippi State
transcripts ``swb_ms98_transcriptions/NN/NNNN/swNNNN{A,B}-ms98-a-trans.text`` (lines
``segment-id start end words...``), by default inside the corpus directory. eval2000:
``<eval2000>/LDC2002S09/hub5e_00/english/*.sph`` and ``<eval2000>/LDC2002T43/reference/english/*.txt``.

Parts: ``dev`` holds out whole conversations, the first ones by name, until it has at least
``dev_size`` utterances (like Kaldi's train_dev, the first 4000 utterances); ``train`` is the
rest; ``eval2000`` (its transcripts cleaned by clean_eval2000_text). Silence-only segments
are omitted. Cuts are trimmed to the segments. Training transcripts are kept as the MS98
files write them (lower case, ``[laughter]``, ``[noise]``, ``[vocalized-noise]``...).
"""
from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Dict, Optional

from lhotse import SupervisionSet
from lhotse.recipes.eval2000 import prepare_eval2000 as lhotse_prepare_eval2000
from lhotse.recipes.switchboard import prepare_switchboard as lhotse_prepare_switchboard

from frugal.data.audio import check_audio_file, sphere_headers_for_lhotse
from frugal.data.manifests import PartSummary, recordings_of, require_dir, write_part, write_words
from frugal.data.corpora import Corpus, Option
from frugal.errors import BadValue, FrugalError

log = logging.getLogger(__name__)

CORPUS = "switchboard"
TRANSCRIPTS_NAME = "swb_ms98_transcriptions"


def check_switchboard(audio_dir: Path, transcripts_dir: Path) -> None:
    """Every conversation has both sides' transcripts and every transcript its audio."""
    sides = {p.name.split("-")[0]: p for p in transcripts_dir.rglob("*trans.text")}
    if not sides:
        raise FrugalError(f"{transcripts_dir}: no *-trans.text transcript files")
    audio = {p.stem.replace("sw0", "sw"): p for p in audio_dir.rglob("*.sph")}
    if not audio:
        raise FrugalError(f"{audio_dir}: no .sph audio files")
    for conversation, path in sorted(audio.items()):
        check_audio_file(path)
        for side in "AB":
            if conversation + side not in sides:
                raise FrugalError(f"{path}: no transcript {conversation}{side}-ms98-a-trans.text in {transcripts_dir}")
    for side, path in sorted(sides.items()):
        if side[:-1] not in audio:
            raise FrugalError(f"{path}: conversation side {side} has no audio file "
                              f"{side[:2]}0{side[2:-1]}.sph in {audio_dir}")


def clean_eval2000_text(text: str) -> str:
    """Plain lower-case words from an eval2000 (LDC2002T43) transcript line.

    The LDC files mark contractions (``<contraction e_form="[we=>we]['re=>are]">we're``),
    non-speech events (``{breath}``), comments (``[[...]]``), uncertain words
    (``(( word ))``) and punctuation; training transcripts (MS98) have none of these. The
    contraction's spoken form is kept, hesitations (``%um``) too (scoring treats them as
    optional), the rest is removed.
    """
    text = re.sub(r'<contraction\s+e_form="[^"]*">', "", text)
    text = re.sub(r"<[^>]*>|\{[^}]*\}|\[\[[^\]]*\]\]", " ", text)
    text = text.replace("((", " ").replace("))", " ")
    words = (w.strip(",.?!\"").lower() for w in text.split())
    return " ".join(w for w in words if w and w != "--")


def split_dev(supervisions: SupervisionSet, dev_size: int):
    """(train, dev): dev takes whole conversations in name order until >= dev_size utterances."""
    by_recording: Dict[str, list] = {}
    for s in supervisions:
        by_recording.setdefault(s.recording_id, []).append(s)
    dev, train = [], []
    for recording_id in sorted(by_recording):
        (dev if len(dev) < dev_size else train).extend(by_recording[recording_id])
    if not train:
        raise BadValue("dev_size", dev_size, f"leaves no training data ({len(supervisions)} utterances in all)")
    return SupervisionSet.from_segments(train), SupervisionSet.from_segments(dev)


def prepare_switchboard(
    corpus_dir,
    output_dir,
    lexicon_dir=None,
    transcripts_dir: Optional[Path] = None,
    eval2000_dir: Optional[Path] = None,
    dev_size: int = 4000,
) -> Dict[str, PartSummary]:
    """Write Switchboard parts train and dev (and eval2000 when its directory is given)."""
    corpus_dir = require_dir(corpus_dir, "Switchboard LDC97S62").resolve()
    transcripts_dir = require_dir(transcripts_dir or corpus_dir / TRANSCRIPTS_NAME,
                                  "Switchboard transcripts (swb_ms98_transcriptions; --transcripts-dir)")
    check_switchboard(corpus_dir, transcripts_dir)
    with sphere_headers_for_lhotse():
        swbd = lhotse_prepare_switchboard(corpus_dir, transcripts_dir, output_dir=None,
                                          omit_silence=True, absolute_paths=True)
    # lhotse names both sides' speaker "<conversation>A"; each side is its own speaker.
    supervisions = SupervisionSet.from_segments(
        replace(s, speaker=f"{s.recording_id}{'AB'[s.channel]}") for s in swbd["supervisions"])
    train, dev = split_dev(supervisions, dev_size)
    summaries = {}
    for part, sups in (("train", train), ("dev", dev)):
        summaries[part] = write_part(output_dir, CORPUS, part, recordings_of(swbd["recordings"], sups),
                                     sups, trim_to_supervisions=True)
    if eval2000_dir is not None:
        eval2000_dir = require_dir(eval2000_dir, "eval2000 (LDC2002S09 + LDC2002T43)").resolve()
        for sub in ("LDC2002S09/hub5e_00/english", "LDC2002T43/reference/english"):
            require_dir(eval2000_dir / sub, "eval2000")
        for path in sorted((eval2000_dir / "LDC2002S09/hub5e_00/english").rglob("*.sph")):
            check_audio_file(path)
        with sphere_headers_for_lhotse(), tempfile.TemporaryDirectory() as scratch:
            # lhotse's recipe insists on writing its own files: let it write them to scratch.
            ev = lhotse_prepare_eval2000(eval2000_dir, scratch, absolute_paths=True)
        # The raw line stays in custom["raw_text"] for scoring with the LDC's own rules.
        ev_sups = SupervisionSet.from_segments(
            replace(s, text=clean_eval2000_text(s.text), custom={"raw_text": s.text})
            for s in ev["supervisions"])
        ev_sups = ev_sups.filter(lambda s: bool(s.text)).to_eager()
        summaries["eval2000"] = write_part(output_dir, CORPUS, "eval2000", ev["recordings"],
                                           ev_sups, trim_to_supervisions=True)
    if lexicon_dir is not None:
        write_words(Path(lexicon_dir) / "words.txt", [train])
    return summaries


PREPARE = Corpus(
    name=CORPUS,
    summary="Switchboard-1 (LDC97S62) + eval2000: train, dev, eval2000",
    description="Switchboard via lhotse's recipes; --corpus-dir is the LDC97S62 package.",
    prepare=prepare_switchboard,
    options=[Option("transcripts_dir", "swb_ms98_transcriptions (default: inside the corpus dir)", type=Path),
             Option("eval2000_dir", "directory holding LDC2002S09 and LDC2002T43 (part eval2000)", type=Path),
             Option("dev_size", "utterances held out as dev, whole conversations in name order", default=4000,
                    type=int)],
)
