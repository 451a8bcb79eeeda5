"""Per-speaker (or per-utterance) cepstral mean and variance statistics of a cut manifest's features.

Kaldi's compute-cmvn-stats --spk2utt with apply-cmvn: the statistics go into each cut of
the output manifest (the features are not rewritten) and are applied wherever features are
loaded, in training, alignment and decoding. A model trained on such cuts decodes only cuts
normalised the same way. Speed-perturbed copies count as speakers of their own.
"""
from __future__ import annotations

from pathlib import Path

from frugal.data.cmvn import GROUPINGS, compute_cmvn


def add_arguments(p) -> None:
    p.add_argument("--cuts-in", type=Path, required=True, help="cut manifest with features")
    p.add_argument("--cuts-out", type=Path, required=True, help="the manifest to write, with the statistics")
    p.add_argument("--per", choices=GROUPINGS, default="speaker", help="statistics of (default: %(default)s)")
    p.add_argument("--norm-vars", action="store_true", help="normalise the variance too (Kaldi's --norm-vars)")


def run(args) -> None:
    compute_cmvn(args.cuts_in, args.cuts_out, args.per, args.norm_vars)
