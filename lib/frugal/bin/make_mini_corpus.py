"""Synthesise the mini corpus (eSpeak NG voices, grammar sentences) with lhotse manifests.

Four parts: train_sup, train_unsup (training voices), dev and test (unseen voices).
Everything is deterministic from --seed; the corpus directory, each manifest and the
lexicon are written atomically.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import List, Optional

from frugal.data.mini_corpus import make_mini_corpus
from frugal.errors import FrugalError


def _range(text: str):
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX, got '{text}'")
    if low > high:
        raise argparse.ArgumentTypeError(f"MIN > MAX in '{text}'")
    return low, high


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="frugal make-mini-corpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output-dir", type=Path, required=True,
                   help="corpus directory: wav/, transcripts/, voices.txt, lexicon.txt")
    p.add_argument("--manifest-dir", type=Path, required=True,
                   help="where mini_{recordings,supervisions,cuts}_<part>.jsonl.gz go")
    p.add_argument("--lexicon-dir", type=Path, default=None,
                   help="also write lexicon.txt here (e.g. data/local)")
    p.add_argument("--num-train-sup", type=int, default=300)
    p.add_argument("--num-train-unsup", type=int, default=600)
    p.add_argument("--num-dev", type=int, default=100)
    p.add_argument("--num-test", type=int, default=100)
    p.add_argument("--num-voices-train", type=int, default=24)
    p.add_argument("--num-voices-dev", type=int, default=6)
    p.add_argument("--num-voices-test", type=int, default=6)
    p.add_argument("--num-lm-text", type=int, default=0,
                   help="sentences of an LM text (no audio; corpus/lm_text.txt and LEXICON_DIR/lm_text.txt)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nj", type=int, default=2, help="parallel synthesis processes")
    p.add_argument("--noise-snr", type=_range, default=None, metavar="MIN,MAX",
                   help="add white noise at an SNR (dB) drawn uniformly per utterance")
    p.add_argument("--telephone-fraction", type=float, default=0.0,
                   help="fraction of utterances passed through a 300-3400 Hz, 8 kHz channel")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.nj < 1:
        raise FrugalError("--nj must be at least 1")
    if args.num_lm_text < 0:
        raise FrugalError(f"--num-lm-text {args.num_lm_text}: must be 0 or more")
    sizes = {"train_sup": args.num_train_sup, "train_unsup": args.num_train_unsup,
             "dev": args.num_dev, "test": args.num_test}
    make_mini_corpus(args.output_dir, args.manifest_dir, args.lexicon_dir, sizes,
                     (args.num_voices_train, args.num_voices_dev, args.num_voices_test),
                     seed=args.seed, nj=args.nj, snr_range=args.noise_snr,
                     telephone_fraction=args.telephone_fraction, num_lm_text=args.num_lm_text)
    return 0
