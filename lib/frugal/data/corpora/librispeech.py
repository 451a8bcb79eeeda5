"""LibriSpeech through lhotse's recipe, with checks that name bad files.

Layout: ``<corpus>/<part>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` listing
``<speaker>-<chapter>-<n> TEXT`` and the audio ``<speaker>-<chapter>-<n>.flac`` beside it.
lhotse silently drops a transcribed utterance whose audio is missing; here it is an error.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Optional, Sequence

from lhotse.recipes.librispeech import prepare_librispeech as lhotse_prepare_librispeech
from tqdm import tqdm

from frugal.data.audio import check_audio_file
from frugal.data.manifests import PartSummary, require_dir, write_lexicon, write_part, write_words
from frugal.data.corpora import Corpus, Option
from frugal.errors import FrugalError, where

log = logging.getLogger(__name__)

CORPUS = "librispeech"
DEFAULT_PARTS = ("train-clean-100", "dev-clean", "dev-other", "test-clean", "test-other")
LEXICON_NAME = "librispeech-lexicon.txt"


def check_part(part_dir: Path) -> int:
    """Every transcribed utterance has a readable, complete audio file; returns their number."""
    transcripts = sorted(part_dir.rglob("*.trans.txt"))
    if not transcripts:
        raise FrugalError(f"{part_dir}: no *.trans.txt transcript files")
    count = 0
    for trans in tqdm(transcripts, desc=f"checking {part_dir.name}", disable=None):
        for line_no, line in enumerate(trans.read_text().splitlines(), 1):
            if not line.strip():
                continue
            utt_id = line.split(maxsplit=1)[0]
            audio = trans.parent / f"{utt_id}.flac"
            if not audio.is_file():
                raise FrugalError(f"{where(trans, line_no)}: utterance {utt_id} has no audio file {audio}")
            check_audio_file(audio)
            count += 1
    return count


def read_librispeech_lexicon(path: Path):
    """(word, phones) pairs of librispeech-lexicon.txt (``WORD<TAB>P1 P2 ...``)."""
    entries = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise FrugalError(f"{where(path, line_no)}: word {fields[0]!r} has no pronunciation")
        entries.append((fields[0], fields[1:]))
    return entries


def prepare_librispeech(
    corpus_dir,
    output_dir,
    lexicon_dir=None,
    parts: Sequence[str] = DEFAULT_PARTS,
    lexicon_file: Optional[Path] = None,
    num_jobs: int = 1,
) -> Dict[str, PartSummary]:
    """Write LibriSpeech manifests for ``parts``; the lexicon and training words to lexicon_dir."""
    corpus_dir = require_dir(corpus_dir, "LibriSpeech").resolve()
    for part in parts:
        require_dir(corpus_dir / part, f"LibriSpeech part {part}")
        check_part(corpus_dir / part)
    manifests = lhotse_prepare_librispeech(corpus_dir, dataset_parts=list(parts), output_dir=None,
                                           num_jobs=num_jobs)
    summaries = {
        part: write_part(output_dir, CORPUS, part, manifests[part]["recordings"],
                         manifests[part]["supervisions"], trim_to_supervisions=False)
        for part in parts
    }
    if lexicon_dir is not None:
        training = [manifests[p]["supervisions"] for p in parts if p.startswith("train")]
        if training:
            write_words(Path(lexicon_dir) / "words.txt", training)
        if lexicon_file is None and (corpus_dir / LEXICON_NAME).is_file():
            lexicon_file = corpus_dir / LEXICON_NAME
        if lexicon_file is not None:
            if not Path(lexicon_file).is_file():
                raise FrugalError(f"{lexicon_file}: no such lexicon file (--lexicon-file)")
            write_lexicon(Path(lexicon_dir) / "lexicon.txt", read_librispeech_lexicon(Path(lexicon_file)))
        else:
            log.warning("no %s in %s and no --lexicon-file: no lexicon written", LEXICON_NAME, corpus_dir)
    return summaries


PREPARE = Corpus(
    name=CORPUS,
    summary="LibriSpeech: parts train-clean-100, dev/test-clean/other",
    description="LibriSpeech via lhotse's recipe (corpus dir holding train-clean-100/ etc.).",
    prepare=prepare_librispeech,
    options=[Option("parts", "parts to prepare", default=list(DEFAULT_PARTS), nargs="+"),
             Option("lexicon_file", "lexicon to convert (default: librispeech-lexicon.txt in the corpus dir, "
                                    "if there)", type=Path),
             Option("num_jobs", "threads reading audio headers", default=1, type=int)],
)
