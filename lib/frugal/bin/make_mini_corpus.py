"""Synthesise the mini corpus (eSpeak NG voices, grammar sentences) with lhotse manifests.

Four parts: train_sup, train_unsup (training voices), dev and test (unseen voices).
Everything is deterministic from --seed; the corpus directory, each manifest and the
lexicon are written atomically.
"""
from __future__ import annotations

from pathlib import Path

from frugal.bin._options import float_range
from frugal.data.mini_corpus import make_mini_corpus


def add_arguments(p) -> None:
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
    p.add_argument("--noise-snr", type=float_range, default=None, metavar="MIN,MAX",
                   help="add white noise at an SNR (dB) drawn uniformly per utterance")
    p.add_argument("--telephone-fraction", type=float, default=0.0,
                   help="fraction of utterances passed through a 300-3400 Hz, 8 kHz channel")


def run(args) -> None:
    sizes = {"train_sup": args.num_train_sup, "train_unsup": args.num_train_unsup,
             "dev": args.num_dev, "test": args.num_test}
    make_mini_corpus(args.output_dir, args.manifest_dir, args.lexicon_dir, sizes,
                     (args.num_voices_train, args.num_voices_dev, args.num_voices_test),
                     seed=args.seed, nj=args.nj, snr_range=args.noise_snr,
                     telephone_fraction=args.telephone_fraction, num_lm_text=args.num_lm_text)
