"""IARPA Babel language packs through lhotse's babel recipe, and the pack's lexicon.

Layout (one language pack): ``<pack>/conversational/{training,dev}/audio/<name>.sph`` (or
.wav) with ``<pack>/conversational/{training,dev}/transcription/<name>.txt``, names like
``BABEL_BP_101_10033_20111024_205740_inLine``, and the lexicon
``<pack>/conversational/reference_materials/lexicon.txt``.

Parts: ``train`` (the pack's training directory) and ``dev10h`` (its dev directory), as in
Kaldi's babel recipe. Transcripts are normalised by lhotse (``(())``, ``<foreign>``,
``<hes>``... -> ``<unk>``; breath/lipsmack/cough -> ``<v-noise>``; other noises ->
``<noise>``); frugal then writes those as ``<UNK>``, ``<VNOISE>`` and ``<NOISE>`` (the
recipes' OOV word is ``<UNK>``) and drops segments that hold no speech (``<no-speech>``).
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from lhotse import SupervisionSet
from lhotse.recipes.babel import BABELCODE2LANG, prepare_single_babel_language

from frugal.data.audio import check_audio_file, sphere_headers_for_lhotse
from frugal.data.manifests import PartSummary, require_dir, write_lexicon, write_part, write_words
from frugal.data.corpora import Corpus, Option
from frugal.errors import BadValue, FrugalError, where

log = logging.getLogger(__name__)

CORPUS = "babel"
SPLITS = {"training": "train", "dev": "dev10h"}
TOKEN_MAP = {"<unk>": "<UNK>", "<noise>": "<NOISE>", "<v-noise>": "<VNOISE>", "<silence>": None}
SPECIAL_LEXICON = [("<UNK>", ["SPN"]), ("<NOISE>", ["NSN"]), ("<VNOISE>", ["VNS"]), ("<SIL>", ["SIL"])]


def find_pack(corpus_dir: Path) -> Path:
    """The directory that holds ``conversational`` (the pack's root)."""
    found = sorted(d for d in corpus_dir.rglob("conversational") if d.is_dir())
    if not found:
        raise FrugalError(f"{corpus_dir}: no 'conversational' directory: not a Babel language pack")
    if len(found) > 1:
        raise FrugalError(f"{corpus_dir}: several 'conversational' directories ({found[0]}, {found[1]}): "
                          f"give the directory of one language pack")
    return found[0].parent


def check_split(pack: Path, split: str) -> str:
    """Every transcript of a split has its audio file; returns the language code."""
    audio_dir = require_dir(pack / "conversational" / split / "audio", f"Babel {split} audio")
    text_dir = require_dir(pack / "conversational" / split / "transcription", f"Babel {split} transcripts")
    audio = {p.stem for p in audio_dir.iterdir() if p.suffix in (".sph", ".wav")}
    for path in sorted(audio_dir.iterdir()):
        if path.suffix in (".sph", ".wav"):
            check_audio_file(path)
    codes = set()
    transcripts = sorted(text_dir.glob("*.txt"))
    if not transcripts:
        raise FrugalError(f"{text_dir}: no transcript files")
    for path in transcripts:
        fields = path.stem.split("_")
        if len(fields) < 7 or fields[2] not in BABELCODE2LANG:
            raise FrugalError(f"{path}: not a Babel transcript name (BABEL_<phase>_<lang>_<spk>_<date>_<time>_<side>)")
        codes.add(fields[2])
        if path.stem not in audio:
            raise FrugalError(f"{path}: conversation side {path.stem} has no audio file "
                              f"{path.stem}.sph or .wav in {audio_dir}")
    if len(codes) != 1:
        raise FrugalError(f"{text_dir}: transcripts of several languages: {sorted(codes)}")
    return codes.pop()


def normalize_babel_text(text: str) -> str:
    words = []
    for w in text.split():
        w = TOKEN_MAP.get(w, w)
        if w is not None:
            words.append(w)
    return " ".join(words)


def read_babel_lexicon(path: Path, romanized: bool = False) -> List[Tuple[str, List[str]]]:
    """Kaldi lexicon entries from a Babel pack lexicon (tab-separated).

    Each line is ``word<TAB>[romanized<TAB>]pron1<TAB>pron2...``; a pronunciation is
    syllables separated by ``.`` (``#`` marks word boundaries in compounds), each syllable
    phones separated by spaces, where tokens starting with ``_`` are tags (tone, stress) of
    the syllable. As in Kaldi's babel lexicon preparation, boundaries are removed and a
    syllable's tags are appended to each of its phones (``a _1`` -> ``a_1``).
    """
    entries = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        word, prons = fields[0], fields[2:] if romanized else fields[1:]
        prons = [p for p in prons if p]
        if not word or not prons:
            raise FrugalError(f"{where(path, line_no)}: expected 'word<TAB>pronunciation...' "
                              f"(tab-separated{', with a romanized column' if romanized else ''})")
        for pron in prons:
            phones = []
            for syllable in _syllables(pron.split()):
                tags = "".join(t for t in syllable if t.startswith("_"))
                phones += [t + tags for t in syllable if not t.startswith("_")]
            if not phones:
                raise FrugalError(f"{where(path, line_no)}: word {word!r} has an empty pronunciation")
            entries.append((word, phones))
    return entries


def _syllables(tokens: List[str]) -> List[List[str]]:
    """Split a pronunciation's tokens at the syllable (``.``) and word (``#``) boundaries."""
    syllables: List[List[str]] = [[]]
    for token in tokens:
        if token in (".", "#"):
            syllables.append([])
        else:
            syllables[-1].append(token)
    return [s for s in syllables if s]


def prepare_babel(
    corpus_dir,
    output_dir,
    lexicon_dir=None,
    language: Optional[str] = None,
    lexicon_file: Optional[Path] = None,
    romanized: bool = False,
) -> Dict[str, PartSummary]:
    """Write Babel parts train and dev10h of one language pack, and its lexicon."""
    corpus_dir = require_dir(corpus_dir, "a Babel language pack").resolve()
    pack = find_pack(corpus_dir)
    codes = {split: check_split(pack, split) for split in SPLITS}
    code = codes["training"]
    if language is not None and not language.split("-")[0] == code:
        raise BadValue("language", language, f"the pack in {pack} is language {code} ({BABELCODE2LANG[code]})")
    with sphere_headers_for_lhotse():
        manifests = prepare_single_babel_language(pack, output_dir=None, no_eval_ok=True)
    summaries, training = {}, None
    for split, part in SPLITS.items():
        recordings = manifests[split]["recordings"]
        supervisions = [replace(s, text=normalize_babel_text(s.text)) for s in manifests[split]["supervisions"]]
        speech = SupervisionSet.from_segments(s for s in supervisions if s.text)
        log.info("babel %s: %d of %d segments hold no speech and are left out", part,
                 len(supervisions) - len(speech), len(supervisions))
        summaries[part] = write_part(output_dir, CORPUS, part, recordings, speech, trim_to_supervisions=True)
        if part == "train":
            training = speech
    if lexicon_dir is not None:
        lexicon_file = Path(lexicon_file or pack / "conversational" / "reference_materials" / "lexicon.txt")
        if not lexicon_file.is_file():
            raise FrugalError(f"{lexicon_file}: no such lexicon file (--lexicon-file)")
        write_lexicon(Path(lexicon_dir) / "lexicon.txt",
                      read_babel_lexicon(lexicon_file, romanized) + SPECIAL_LEXICON)
        write_words(Path(lexicon_dir) / "words.txt", [training])
    return summaries


PREPARE = Corpus(
    name=CORPUS,
    summary="IARPA Babel language pack: train, dev10h, pack lexicon",
    description="Babel via lhotse's recipe; --corpus-dir is one language pack.",
    prepare=prepare_babel,
    options=[Option("language", "language as Kaldi names it, e.g. 404-georgian (checked against the pack)"),
             Option("lexicon_file", "pack lexicon (default: conversational/reference_materials/lexicon.txt)",
                    type=Path),
             Option("romanized", "the lexicon has a romanized column after the word (Kaldi's --romanized)",
                    switch=True)],
)
