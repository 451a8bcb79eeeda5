"""The yesno corpus (OpenSLR 1): 60 files of 8 Hebrew yes/no words, transcript in the name.

Two splits of the 60 files sorted by name. lhotse's, which icefall uses: even positions
train, odd positions test (30/30). Kaldi's (egs/yesno, create_yesno_waves_test_train.pl):
the first half of ``ls`` of the corpus directory trains, the rest tests; that listing also
holds the corpus's two non-wav files, which sort after the wavs, so Kaldi trains on the
first 31 wavs and tests on the last 29 (232 words: Kaldi's published ``%WER 0.00 [ 0 / 232 ]``
and its decode log's "(utt2spk,feats.scp) is (31,29)"). Those are exactly the 31 files that
begin with NO and the 29 that begin with YES. icefall's test set holds 0_1_0_1_0_0_0_0.wav,
whose last NO is barely audible (icefall's one deletion in 240 words). Words are YES and NO
as in Kaldi's yesno.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List

from lhotse.recipes.yesno import prepare_yesno as lhotse_prepare_yesno

from frugal.data.audio import check_audio_file
from frugal.data.manifests import PartSummary, require_dir, write_lexicon, write_part
from frugal.data.corpora import Corpus, Option
from frugal.errors import BadValue, FrugalError

CORPUS = "yesno"
NUM_FILES = 60
FILE_NAME = re.compile(r"^[01](_[01]){7}\.wav$")
LEXICON = [("YES", ["Y"]), ("NO", ["N"]), ("<SIL>", ["SIL"])]
SPLITS = ("kaldi", "icefall")
# Training files of Kaldi's split: half of the 62 entries of its corpus listing (60 wavs and
# two non-wav files that sort last).
KALDI_NUM_TRAIN = 31


def check_yesno_dir(corpus_dir: Path) -> List[Path]:
    corpus_dir = require_dir(corpus_dir, "the yesno corpus")
    waves = sorted(corpus_dir.glob("*.wav"))
    for wav in waves:
        if not FILE_NAME.match(wav.name):
            raise FrugalError(f"{wav}: not a yesno file name (8 digits 0/1 joined by '_')")
        check_audio_file(wav)
    if len(waves) != NUM_FILES:
        raise FrugalError(f"{corpus_dir}: expected {NUM_FILES} yesno .wav files, found {len(waves)}")
    return waves


def prepare_yesno(corpus_dir, output_dir, lexicon_dir=None, split="icefall") -> Dict[str, PartSummary]:
    """Write yesno manifests for parts train and test (and the yesno lexicon)."""
    if split not in SPLITS:
        raise BadValue("split", split, f"must be one of {', '.join(SPLITS)}")
    waves = check_yesno_dir(Path(corpus_dir))
    manifests = lhotse_prepare_yesno(Path(corpus_dir).resolve(), output_dir=None)
    if split == "kaldi":
        manifests = _kaldi_split(manifests, [w.stem for w in waves])
    summaries = {
        part: write_part(output_dir, CORPUS, part, m["recordings"], m["supervisions"],
                         trim_to_supervisions=False)
        for part, m in manifests.items()
    }
    if lexicon_dir is not None:
        write_lexicon(Path(lexicon_dir) / "lexicon.txt", LEXICON)
    return summaries


def _kaldi_split(manifests, sorted_ids: List[str]):
    """Re-partition lhotse's parts as Kaldi's create_yesno_waves_test_train.pl does."""
    train_ids = set(sorted_ids[:KALDI_NUM_TRAIN])
    recordings = manifests["train"]["recordings"] + manifests["test"]["recordings"]
    supervisions = manifests["train"]["supervisions"] + manifests["test"]["supervisions"]
    return {
        part: {
            "recordings": recordings.filter(
                lambda r: (r.id in train_ids) == (part == "train")).to_eager(),
            "supervisions": supervisions.filter(
                lambda s: (s.recording_id in train_ids) == (part == "train")).to_eager(),
        }
        for part in ("train", "test")
    }


def download_yesno(corpus_dir) -> Path:
    """Download the corpus (openslr.org/1) and put its 60 .wav files into corpus_dir."""
    import shutil
    import tempfile

    from lhotse.recipes.yesno import download_yesno as lhotse_download_yesno

    corpus_dir = Path(corpus_dir)
    corpus_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=corpus_dir) as scratch:
        try:
            extracted = lhotse_download_yesno(scratch)
        except OSError as e:  # urllib's URLError is one: no network, no such host
            raise FrugalError(f"cannot download yesno into {corpus_dir} (openslr.org/1): {e}; put the 60 wav "
                              f"files there, or give --corpus-dir a directory holding them") from None
        for wav in sorted(Path(extracted).glob("*.wav")):
            shutil.move(str(wav), corpus_dir / wav.name)
        readme = Path(extracted) / "README"
        if readme.is_file():
            shutil.move(str(readme), corpus_dir / "README")
    return corpus_dir


PREPARE = Corpus(
    name=CORPUS,
    summary="yesno (OpenSLR 1): parts train, test (30/30 or 31/29 files)",
    description="yesno: a directory of the 60 files like 0_1_1_0_0_1_1_0.wav; parts train and test (30/30 or "
                "31/29, --split); lexicon YES Y, NO N, <SIL> SIL.",
    prepare=prepare_yesno,
    download=download_yesno,
    options=[Option("split", "icefall: alternate sorted files (lhotse's recipe); kaldi: first 31 sorted files "
                             "train, last 29 test (Kaldi's egs/yesno, 232 test words)",
                    default="icefall", choices=SPLITS)],
)
