"""Prepare a corpus as lhotse manifests (recordings, supervisions, cuts) and its lexicon.

Writes ``<output-dir>/<corpus>_{recordings,supervisions,cuts}_<part>.jsonl.gz`` for each
part of the corpus, and into ``--lexicon-dir`` (when given) the corpus's lexicon
(``lexicon.txt``, Kaldi format ``WORD p1 p2 ...``) where it ships or implies one, and the
words of its training transcripts (``words.txt``) where a dictionary has to provide them.
Every output is written atomically: a failed run leaves the old outputs (or none).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import List, Optional

from frugal.errors import FrugalError

log = logging.getLogger("frugal.prepare_data")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus-dir", type=Path, required=True, help="the corpus as distributed")
    p.add_argument("--output-dir", type=Path, default=Path("data/manifests"),
                   help="where the manifests go (default: %(default)s)")
    p.add_argument("--lexicon-dir", type=Path, default=None,
                   help="where lexicon.txt / words.txt go (e.g. data/local); none written without it")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="frugal prepare-data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="corpus", required=True, metavar="CORPUS")

    p = sub.add_parser("yesno", help="yesno (OpenSLR 1): parts train, test (30/30 or 31/29 files)",
                       description="yesno: a directory of the 60 files like 0_1_1_0_0_1_1_0.wav; "
                                   "parts train and test (30/30 or 31/29, --split); lexicon YES Y, NO N, <SIL> SIL.")
    _common(p)
    p.add_argument("--split", choices=["icefall", "kaldi"], default="icefall",
                   help="icefall: alternate sorted files (lhotse's recipe); kaldi: first 31 sorted files train, "
                        "last 29 test (Kaldi's egs/yesno, 232 test words) (default: %(default)s)")
    p.add_argument("--download", action="store_true",
                   help="download the corpus (openslr.org/1) into --corpus-dir and stop")

    p = sub.add_parser("librispeech", help="LibriSpeech: parts train-clean-100, dev/test-clean/other",
                       description="LibriSpeech via lhotse's recipe (corpus dir holding train-clean-100/ etc.).")
    _common(p)
    p.add_argument("--parts", nargs="+", default=["train-clean-100", "dev-clean", "dev-other",
                                                  "test-clean", "test-other"],
                   help="parts to prepare (default: %(default)s)")
    p.add_argument("--lexicon-file", type=Path, default=None,
                   help="lexicon to convert (default: librispeech-lexicon.txt in the corpus dir, if there)")
    p.add_argument("--num-jobs", type=int, default=1, help="threads reading audio headers")

    p = sub.add_parser("wsj", help="WSJ0+WSJ1 (LDC93S6B, LDC94S13B): train_si284, test_dev93, test_eval92",
                       description="WSJ after Kaldi's wsj_data_prep.sh: --corpus-dir holds the discs "
                                   "(11-1.1, ..., 13-34.1, directly or one level down).")
    _common(p)
    p.add_argument("--parts", nargs="+", default=["train_si284", "test_dev93", "test_eval92"],
                   help="parts (also train_si84, test_eval92_5k, test_dev93_5k; default: %(default)s)")
    p.add_argument("--noise-word", default="<NOISE>", help="word for [noise] markers (default: %(default)s)")
    p.add_argument("--sph2pipe", default="sph2pipe",
                   help="sph2pipe program for compressed SPHERE files (default: %(default)s, from PATH)")

    p = sub.add_parser("switchboard", help="Switchboard-1 (LDC97S62) + eval2000: train, dev, eval2000",
                       description="Switchboard via lhotse's recipes; --corpus-dir is the LDC97S62 package.")
    _common(p)
    p.add_argument("--transcripts-dir", type=Path, default=None,
                   help="swb_ms98_transcriptions (default: inside the corpus dir)")
    p.add_argument("--eval2000-dir", type=Path, default=None,
                   help="directory holding LDC2002S09 and LDC2002T43 (part eval2000)")
    p.add_argument("--dev-size", type=int, default=4000,
                   help="utterances held out as dev, whole conversations in name order (default: %(default)s)")

    p = sub.add_parser("fisher", help="Fisher English: train_sup, train_unsup, dev, test (by speaker)",
                       description="Fisher English via lhotse's recipe; --corpus-dir holds LDC2004S13, "
                                   "LDC2005S13, LDC2004T19, LDC2005T19. Parts are disjoint in speakers.")
    _common(p)
    p.add_argument("--sup-hours", type=float, default=50.0, help="hours of train_sup (default: %(default)s)")
    p.add_argument("--unsup-hours", type=float, default=250.0, help="hours of train_unsup (default: %(default)s)")
    p.add_argument("--dev-hours", type=float, default=5.0, help="hours of dev (default: %(default)s)")
    p.add_argument("--test-hours", type=float, default=5.0, help="hours of test (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the speaker draw (default: %(default)s)")
    p.add_argument("--audio-dirs", nargs="+", default=["LDC2004S13", "LDC2005S13"], help="audio packages")
    p.add_argument("--transcript-dirs", nargs="+", default=["LDC2004T19", "LDC2005T19"],
                   help="transcript packages")
    p.add_argument("--num-jobs", type=int, default=1, help="processes reading audio headers")

    p = sub.add_parser("babel", help="IARPA Babel language pack: train, dev10h, pack lexicon",
                       description="Babel via lhotse's recipe; --corpus-dir is one language pack.")
    _common(p)
    p.add_argument("--language", default=None,
                   help="language as Kaldi names it, e.g. 404-georgian (checked against the pack)")
    p.add_argument("--lexicon-file", type=Path, default=None,
                   help="pack lexicon (default: conversational/reference_materials/lexicon.txt)")
    p.add_argument("--romanized", action="store_true",
                   help="the lexicon has a romanized column after the word (Kaldi's --romanized)")
    return parser


def run(args) -> None:
    common = dict(corpus_dir=args.corpus_dir, output_dir=args.output_dir, lexicon_dir=args.lexicon_dir)
    if args.corpus == "yesno":
        from frugal.data.yesno import download_yesno, prepare_yesno
        if args.download:
            download_yesno(args.corpus_dir)
            return
        prepare_yesno(**common, split=args.split)
    elif args.corpus == "librispeech":
        from frugal.data.librispeech import prepare_librispeech
        prepare_librispeech(**common, parts=args.parts, lexicon_file=args.lexicon_file, num_jobs=args.num_jobs)
    elif args.corpus == "wsj":
        from frugal.data.wsj import prepare_wsj
        prepare_wsj(**common, parts=args.parts, noise_word=args.noise_word, sph2pipe=args.sph2pipe)
    elif args.corpus == "switchboard":
        from frugal.data.switchboard import prepare_switchboard
        prepare_switchboard(**common, transcripts_dir=args.transcripts_dir,
                            eval2000_dir=args.eval2000_dir, dev_size=args.dev_size)
    elif args.corpus == "fisher":
        from frugal.data.fisher import prepare_fisher
        prepare_fisher(**common, sup_hours=args.sup_hours, unsup_hours=args.unsup_hours,
                       dev_hours=args.dev_hours, test_hours=args.test_hours, seed=args.seed,
                       audio_dirs=args.audio_dirs, transcript_dirs=args.transcript_dirs,
                       num_jobs=args.num_jobs)
    elif args.corpus == "babel":
        from frugal.data.babel import prepare_babel
        prepare_babel(**common, language=args.language, lexicon_file=args.lexicon_file,
                      romanized=args.romanized)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    if args.corpus != "yesno" or not args.download:
        if not args.corpus_dir.is_dir():
            raise FrugalError(f"--corpus-dir {args.corpus_dir}: no such directory")
    run(args)
    return 0
