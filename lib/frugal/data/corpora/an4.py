"""AN4, the CMU census database: real speakers spelling words and saying numbers and commands.

Layout as CMU Sphinx distributes it: ``wav/an4_clstk/<speaker>/<utt>.wav`` (training side,
74 speakers) and ``wav/an4test_clstk/<speaker>/<utt>.wav`` (test side, 10 other speakers),
``etc/an4_{train,test}.transcription`` (``<s> WORDS </s> (utt-id)`` a line),
``etc/an4_{train,test}.fileids`` (``an4_clstk/<speaker>/<utt>`` a line), the dictionary
``etc/an4.dic`` (``WORD  P1 P2 ...``, alternatives as ``WORD(2)``) and ``etc/an4.filler``
(``<s>``, ``</s>``, ``<sil>``: silence). Audio may be ``.wav``, ``.sph`` or ``.flac``.

Parts: ``train`` and ``dev``, whole training speakers (the dev speakers never train), and
``test`` when the corpus directory has the test side. ESPnet's recipe takes the first 100
utterances of the sorted training list as its train_dev, which splits a speaker and holds
only women; here whole speakers are dealt out alternately by sex (the speaker id's first
letter), women and men each in a seeded order, until the dev set holds ``dev_utterances``.
Utterance ids are the corpus's own (``an251-fash-b``), so hypotheses carry them.
"""
from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet
from tqdm import tqdm

from frugal.data.audio import check_audio_file
from frugal.data.corpora import Corpus, Option
from frugal.data.manifests import PartSummary, require_dir, write_lexicon, write_part
from frugal.errors import BadValue, FrugalError, where
from frugal.lang.lexicon import read_lexicon

log = logging.getLogger(__name__)

CORPUS = "an4"
SIDES = {"train": "an4_clstk", "test": "an4test_clstk"}
AUDIO_SUFFIXES = (".wav", ".sph", ".flac")
TRANSCRIPT_LINE = re.compile(r"^(?P<words>.*?)\s*\((?P<id>[^()\s]+)\)\s*$")
SENTENCE_MARKS = {"<s>", "</s>"}
SILENCE_WORD = "<SIL>"
ALTERNATIVE = re.compile(r"^(?P<word>.+?)\(\d+\)$")


def read_transcription(path: Path) -> List[Tuple[str, str, int]]:
    """(utterance id, words, line number) of each line of an ``.transcription`` file."""
    out = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        m = TRANSCRIPT_LINE.match(line.strip())
        if m is None:
            raise FrugalError(f"{where(path, line_no)}: expected '<s> WORDS </s> (utterance-id)'")
        words = [w for w in m["words"].split() if w not in SENTENCE_MARKS]
        if not words:
            raise FrugalError(f"{where(path, line_no)}: utterance {m['id']} has no words")
        out.append((m["id"], " ".join(words), line_no))
    if not out:
        raise FrugalError(f"{path}: no transcriptions")
    return out


def read_fileids(path: Path) -> Dict[str, Tuple[str, str]]:
    """Utterance id -> (speaker, file id relative to wav/) of an ``.fileids`` file."""
    out: Dict[str, Tuple[str, str]] = {}
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        fileid = line.strip()
        if not fileid:
            continue
        parts = fileid.split("/")
        if len(parts) != 3:
            raise FrugalError(f"{where(path, line_no)}: expected '<side>/<speaker>/<utterance>', got {fileid!r}")
        if parts[2] in out:
            raise FrugalError(f"{where(path, line_no)}: utterance {parts[2]} listed twice")
        out[parts[2]] = (parts[1], fileid)
    return out


def read_dictionary(dic: Path, filler: Optional[Path]) -> List[Tuple[str, List[str]]]:
    """The lexicon of ``an4.dic`` (alternatives ``WORD(2)`` as further pronunciations of WORD),
    and ``<SIL> SIL`` for the filler file's silence."""
    entries = []
    for pron in read_lexicon(dic, with_probs=False).prons:  # Kaldi's format, but for the (2) marks
        m = ALTERNATIVE.match(pron.word)
        entries.append((m["word"] if m else pron.word, list(pron.phones)))
    sil_phones = {"SIL"}
    if filler is not None and filler.is_file():
        sil_phones = {f[1] for f in (line.split() for line in filler.read_text().splitlines()) if len(f) == 2}
    if sil_phones != {"SIL"}:
        raise FrugalError(f"{filler}: expected fillers pronounced SIL, found {sorted(sil_phones)}")
    entries.append((SILENCE_WORD, ["SIL"]))
    return entries


def _side(corpus_dir: Path, side: str, lexicon_words: set) -> Tuple[RecordingSet, SupervisionSet]:
    """Recordings and supervisions of one side (train or test), every file checked."""
    etc = corpus_dir / "etc"
    trans_path, ids_path = etc / f"an4_{side}.transcription", etc / f"an4_{side}.fileids"
    for p in (trans_path, ids_path):
        if not p.is_file():
            raise FrugalError(f"{p}: no such file (AN4's {side} side)")
    fileids = read_fileids(ids_path)
    recordings, supervisions = [], []
    for utt, words, line_no in tqdm(read_transcription(trans_path), desc=f"an4 {side}", disable=None):
        if utt not in fileids:
            raise FrugalError(f"{where(trans_path, line_no)}: utterance {utt} is not in {ids_path}")
        missing = [w for w in words.split() if w not in lexicon_words]
        if missing:
            raise FrugalError(f"{where(trans_path, line_no)}: {' '.join(missing)} not in the dictionary")
        speaker, fileid = fileids.pop(utt)
        audio = next((corpus_dir / "wav" / (fileid + s) for s in AUDIO_SUFFIXES
                      if (corpus_dir / "wav" / (fileid + s)).is_file()), None)
        if audio is None:
            raise FrugalError(f"{where(trans_path, line_no)}: utterance {utt} has no audio "
                              f"{corpus_dir / 'wav' / fileid}{{{','.join(AUDIO_SUFFIXES)}}}")
        check_audio_file(audio)
        rec = Recording.from_file(audio, recording_id=utt)
        recordings.append(rec)
        supervisions.append(SupervisionSegment(id=utt, recording_id=utt, start=0.0, duration=rec.duration,
                                               channel=0, text=words, speaker=speaker, language="English",
                                               gender=speaker[0].upper() if speaker[0] in "fm" else None))
    if fileids:
        raise FrugalError(f"{ids_path}: {len(fileids)} files without transcription in {trans_path}, "
                          f"e.g. {next(iter(fileids))}")
    return RecordingSet.from_recordings(recordings), SupervisionSet.from_segments(supervisions)


def choose_dev_speakers(utterances_per_speaker: Dict[str, int], dev_utterances: int, seed: int) -> List[str]:
    """Whole speakers, women and men in turn (each in a seeded order), until the dev set holds
    at least ``dev_utterances``; speakers whose id does not start with f or m come last."""
    groups = [sorted(s for s in utterances_per_speaker if s[:1] == g) for g in ("f", "m")]
    rest = sorted(s for s in utterances_per_speaker if s[:1] not in ("f", "m"))
    rng = random.Random(seed)
    for g in groups + [rest]:
        rng.shuffle(g)
    order = [s for pair in zip(*groups) for s in pair]
    longer = max(groups, key=len)
    order += longer[min(len(g) for g in groups):] + rest
    chosen, total = [], 0
    for s in order:
        if total >= dev_utterances:
            break
        chosen.append(s)
        total += utterances_per_speaker[s]
    if len(chosen) == len(order):
        raise BadValue("dev_utterances", dev_utterances, f"leaves no training speaker ({total} utterances in all)")
    return sorted(chosen)


def prepare_an4(corpus_dir, output_dir, lexicon_dir=None, dev_utterances: int = 100, dev_seed: int = 1,
                dev_speakers: Optional[Sequence[str]] = None) -> Dict[str, PartSummary]:
    """Write AN4 manifests for train, dev (held-out training speakers) and test (when present),
    and ``lexicon.txt`` from the corpus's dictionary."""
    corpus_dir = require_dir(corpus_dir, "AN4 (wav/, etc/)").resolve()
    dic = corpus_dir / "etc" / "an4.dic"
    if not dic.is_file():
        raise FrugalError(f"{dic}: no such file (AN4's pronunciation dictionary)")
    lexicon = read_dictionary(dic, corpus_dir / "etc" / "an4.filler")
    words = {w for w, _ in lexicon}
    if dev_utterances < 0:
        raise BadValue("dev_utterances", dev_utterances, "must be >= 0")
    recordings, supervisions = _side(corpus_dir, "train", words)
    per_speaker: Dict[str, int] = {}
    for s in supervisions:
        per_speaker[s.speaker] = per_speaker.get(s.speaker, 0) + 1
    if dev_speakers:
        unknown = sorted(set(dev_speakers) - set(per_speaker))
        if unknown:
            raise BadValue("dev_speakers", " ".join(unknown), "not training speakers of AN4")
        dev = sorted(set(dev_speakers))
    else:
        dev = choose_dev_speakers(per_speaker, dev_utterances, dev_seed) if dev_utterances > 0 else []
    log.info("an4 dev speakers: %s", " ".join(dev) or "(none)")
    dev_set = set(dev)
    parts = {"train": lambda s: s.speaker not in dev_set}
    if dev:
        parts["dev"] = lambda s: s.speaker in dev_set
    summaries = {}
    for part, keep in parts.items():
        sups = supervisions.filter(keep).to_eager()
        ids = {s.recording_id for s in sups}
        summaries[part] = write_part(output_dir, CORPUS, part, recordings.filter(lambda r: r.id in ids).to_eager(),
                                     sups, trim_to_supervisions=False)
    if (corpus_dir / "wav" / SIDES["test"]).is_dir():
        summaries["test"] = write_part(output_dir, CORPUS, "test", *_side(corpus_dir, "test", words),
                                       trim_to_supervisions=False)
    else:
        log.warning("%s: no test side (wav/%s): only train and dev prepared", corpus_dir, SIDES["test"])
    if lexicon_dir is not None:
        write_lexicon(Path(lexicon_dir) / "lexicon.txt", lexicon)
    return summaries


PREPARE = Corpus(
    name=CORPUS,
    summary="AN4 (CMU census): parts train, dev (held-out training speakers), test when present",
    description="AN4 as CMU Sphinx distributes it (wav/an4_clstk, etc/an4_train.transcription, etc/an4.dic); "
                "dev: whole training speakers, women and men in turn; test: wav/an4test_clstk when there. "
                "Lexicon: etc/an4.dic with its alternative pronunciations, <SIL> SIL.",
    prepare=prepare_an4,
    options=[Option("dev_utterances", "whole training speakers held out until dev has this many utterances "
                                      "(0: no dev part)", default=100, type=int),
             Option("dev_seed", "seed of the order in which speakers are held out", default=1, type=int),
             Option("dev_speakers", "these training speakers are the dev set (instead of choosing)", nargs="+")],
)
