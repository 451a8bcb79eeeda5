"""Split a cut manifest into a held-out set of N utterances and the rest (a validation set).

The draw is the one `frugal train --num-valid N` makes with the train config's seed, so a
recipe can hold the validation utterances out of everything made from the training cuts
(the den graph's phone LM, the speed-perturbed features) and train with --valid-cuts.
Perturbed copies (ids ending in _sp0.9, _vp...) go with their utterance. Both manifests
are written atomically.
"""
from __future__ import annotations

from pathlib import Path

from frugal.data.cuts import hold_out, load_cuts
from frugal.data.jsonl import write_manifest


def add_arguments(p) -> None:
    p.add_argument("--cuts", type=Path, required=True, help="lhotse cut manifest (.jsonl.gz)")
    p.add_argument("--num", dest="num_valid", type=int, required=True, help="utterances to hold out")
    p.add_argument("--seed", type=int, default=1, help="seed of the draw (default: %(default)s)")
    p.add_argument("--rest", type=Path, required=True, help="manifest of the cuts not held out")
    p.add_argument("--held", type=Path, required=True, help="manifest of the held-out cuts")


def run(args) -> None:
    rest, held = hold_out(load_cuts(args.cuts, "--cuts"), args.num_valid, args.seed)
    write_manifest(rest, args.rest)
    write_manifest(held, args.held)
