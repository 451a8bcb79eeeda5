"""Import a Kaldi data directory (wav.scp, text, utt2spk, segments) as lhotse manifests.

Writes ``<output-dir>/<corpus>_{recordings,supervisions,cuts}_<part>.jsonl.gz`` through
lhotse's Kaldi import; cuts are trimmed to the segments when a segments file exists.

Commands in wav.scp (entries ending in '|', e.g. ``sph2pipe -f wav x.sph |``) are code
found in a data file: they are NOT run, and the import fails naming the entry, unless
--allow-commands is given; then they are run to learn durations (when there is no
reco2dur) and kept as command sources that feature extraction will run.
"""
from __future__ import annotations

from pathlib import Path

from frugal.data.kaldi_dir import import_kaldi_dir


def add_arguments(p) -> None:
    p.add_argument("--kaldi-dir", type=Path, required=True, help="the Kaldi data directory")
    p.add_argument("--corpus", required=True, help="corpus name: the manifests' prefix")
    p.add_argument("--part", required=True, help="part name: the manifests' suffix")
    p.add_argument("--output-dir", type=Path, default=Path("data/manifests"),
                   help="where the manifests go (default: %(default)s)")
    p.add_argument("--sampling-rate", type=int, default=None,
                   help="sampling rate (default: read from the audio; all recordings must agree)")
    p.add_argument("--allow-commands", action="store_true",
                   help="run and keep wav.scp commands (entries ending in '|'): only for data you trust")


def run(args) -> None:
    import_kaldi_dir(args.kaldi_dir, args.output_dir, corpus=args.corpus, part=args.part,
                     sampling_rate=args.sampling_rate, allow_commands=args.allow_commands)
