"""Fisher English (LDC2004S13, LDC2005S13 audio; LDC2004T19, LDC2005T19 transcripts).

Through lhotse's fisher_english recipe, with SPHERE durations read from headers and checks
that name bad files. Layout: ``<corpus>/LDC2004S13/<disc>/audio/<NNN>/fe_03_NNNNN.sph``,
``<corpus>/LDC2004T19/data/trans/<NNN>/fe_03_NNNNN.txt`` and the call table
``<corpus>/LDC2004T19/doc/*_calldata.tbl`` (speaker PINs of sides A and B).

Parts are drawn by speaker (disjoint speakers, deterministic for a seed): ``dev`` and
``test`` first, then ``train_sup`` (the thesis's 50 h supervised set) and ``train_unsup``
(its 250 h set, whose transcripts are kept for oracle comparisons only), each with about the
hours asked for. Cuts are trimmed to the segments.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Dict, Sequence

from lhotse.recipes.fisher_english import (
    FISHER_AUDIO_DIRS,
    FISHER_TRANSCRIPT_DIRS,
    prepare_fisher_english as lhotse_prepare_fisher_english,
)

from frugal.data.audio import check_audio_file, sphere_headers_for_lhotse
from frugal.data.manifests import (
    PartSummary, recordings_of, require_dir, select_speakers, speaker_durations,
    split_speakers_by_hours, write_part, write_words)
from frugal.data.corpora import Corpus, Option
from frugal.errors import FrugalError

log = logging.getLogger(__name__)

CORPUS = "fisher"


def check_fisher(corpus_dir: Path, audio_dirs: Sequence[str], transcript_dirs: Sequence[str]) -> None:
    """Each transcript has its audio file and each audio file its transcript."""
    audio, transcripts = {}, {}
    for name in audio_dirs:
        for p in require_dir(corpus_dir / name, "Fisher audio").rglob("*.sph"):
            audio[p.stem] = p
    for name in transcript_dirs:
        trans = require_dir(corpus_dir / name / "data" / "trans", "Fisher transcripts")
        for p in trans.rglob("*.txt"):
            transcripts[p.stem] = p
        if not list((corpus_dir / name / "doc").glob("*_calldata.tbl")):
            raise FrugalError(f"{corpus_dir / name / 'doc'}: no *_calldata.tbl call table")
    for stem, path in sorted(transcripts.items()):
        if stem not in audio:
            raise FrugalError(f"{path}: call {stem} has no audio file {stem}.sph in "
                              f"{', '.join(str(corpus_dir / a) for a in audio_dirs)}")
    for stem, path in sorted(audio.items()):
        check_audio_file(path)
        if stem not in transcripts:
            raise FrugalError(f"{path}: call {stem} has no transcript {stem}.txt")


def prepare_fisher(
    corpus_dir,
    output_dir,
    lexicon_dir=None,
    sup_hours: float = 50.0,
    unsup_hours: float = 250.0,
    dev_hours: float = 5.0,
    test_hours: float = 5.0,
    seed: int = 0,
    audio_dirs: Sequence[str] = tuple(FISHER_AUDIO_DIRS),
    transcript_dirs: Sequence[str] = tuple(FISHER_TRANSCRIPT_DIRS),
    num_jobs: int = 1,
) -> Dict[str, PartSummary]:
    """Write Fisher parts dev, test, train_sup and train_unsup, split by speaker."""
    corpus_dir = require_dir(corpus_dir, "Fisher English").resolve()
    check_fisher(corpus_dir, audio_dirs, transcript_dirs)
    with sphere_headers_for_lhotse(), tempfile.TemporaryDirectory() as scratch:
        # lhotse's recipe caches half-made manifests in its output dir: keep them out of ours.
        fisher = lhotse_prepare_fisher_english(corpus_dir, scratch, audio_dirs=list(audio_dirs),
                                               transcript_dirs=list(transcript_dirs),
                                               absolute_paths=True, num_jobs=num_jobs)
        recordings = fisher["recordings"].to_eager()
        supervisions = fisher["supervisions"].to_eager()
    subsets = split_speakers_by_hours(
        speaker_durations(supervisions),
        [("dev", dev_hours), ("test", test_hours), ("train_sup", sup_hours), ("train_unsup", unsup_hours)],
        seed=seed)
    summaries = {}
    for part, speakers in subsets.items():
        sups = select_speakers(supervisions, speakers)
        if len(sups) == 0:
            raise FrugalError(f"Fisher part {part}: no speakers left for it (options --*-hours ask for "
                              f"more than the corpus has)")
        summaries[part] = write_part(output_dir, CORPUS, part, recordings_of(recordings, sups), sups,
                                     trim_to_supervisions=True)
    if lexicon_dir is not None:
        write_words(Path(lexicon_dir) / "words.txt",
                    [select_speakers(supervisions, subsets["train_sup"])])
    return summaries


PREPARE = Corpus(
    name=CORPUS,
    summary="Fisher English: train_sup, train_unsup, dev, test (by speaker)",
    description="Fisher English via lhotse's recipe; --corpus-dir holds LDC2004S13, LDC2005S13, LDC2004T19, "
                "LDC2005T19. Parts are disjoint in speakers.",
    prepare=prepare_fisher,
    options=[Option("sup_hours", "hours of train_sup", default=50.0, type=float),
             Option("unsup_hours", "hours of train_unsup", default=250.0, type=float),
             Option("dev_hours", "hours of dev", default=5.0, type=float),
             Option("test_hours", "hours of test", default=5.0, type=float),
             Option("seed", "seed of the speaker draw", default=0, type=int),
             Option("audio_dirs", "audio packages", default=["LDC2004S13", "LDC2005S13"], nargs="+"),
             Option("transcript_dirs", "transcript packages", default=["LDC2004T19", "LDC2005T19"], nargs="+"),
             Option("num_jobs", "processes reading audio headers", default=1, type=int)],
)
