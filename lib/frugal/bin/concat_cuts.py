"""Join runs of consecutive cuts into long utterances, their features concatenated (long-input timings).

Cuts are sorted by id and each run of --group cuts becomes one cut (the last run may be
shorter) whose features are its members' feature matrices one after the other, written
to lilcom archives in --storage-dir (under a temporary name, then renamed); its text is the
members' texts in order, its id their ids joined by '+'. With --max-frames a run ends
early rather than grow past that many frames (a longer cut stays alone). The output
manifest is written last.
"""
from __future__ import annotations

from pathlib import Path

from frugal.data.concat import concat_cuts


def add_arguments(p) -> None:
    p.add_argument("--cuts", type=Path, required=True, help="lhotse cut manifest with features (.jsonl.gz)")
    p.add_argument("--output", type=Path, required=True, help="cut manifest to write (.jsonl.gz)")
    p.add_argument("--storage-dir", type=Path, required=True, help="directory for the joined features")
    p.add_argument("--group", type=int, default=4, help="cuts joined into one (default: %(default)s)")
    p.add_argument("--max-frames", type=int, default=None,
                   help="end a run of cuts early rather than exceed this many frames (default: no limit)")


def run(args) -> None:
    concat_cuts(args.cuts, args.output, args.storage_dir, group=args.group, max_frames=args.max_frames)
