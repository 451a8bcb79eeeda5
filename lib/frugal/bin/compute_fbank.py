"""Compute Kaldi log-mel fbank features (kaldi-native-fbank) for a cuts manifest.

Features go to lilcom archives in --storage-dir (written under a temporary name, then
renamed); the output cuts manifest is written last. --speed-perturb adds 0.9x and 1.1x
copies of every cut, --volume-perturb scales each cut by a random factor in [0.125, 2];
--dither adds Kaldi's dither (reproducibly: the noise is seeded by each waveform's samples);
--raw stores 16 kHz waveforms instead of features (wav2vec 2.0-style models).
"""
from __future__ import annotations

from pathlib import Path

from frugal.data.features import compute_features


def add_arguments(p) -> None:
    p.add_argument("--cuts-in", type=Path, required=True)
    p.add_argument("--cuts-out", type=Path, required=True)
    p.add_argument("--storage-dir", type=Path, required=True)
    p.add_argument("--num-mel-bins", type=int, default=80, help="mel bins (80 by default; yesno uses 23)")
    p.add_argument("--nj", type=int, default=1, help="parallel processes")
    p.add_argument("--speed-perturb", action="store_true", help="add 0.9x and 1.1x copies")
    p.add_argument("--volume-perturb", action="store_true",
                   help="random volume factor in [0.125, 2] per cut")
    p.add_argument("--raw", action="store_true",
                   help="store 16 kHz waveforms instead of features")
    p.add_argument("--seed", type=int, default=0, help="seed of the volume factors")
    p.add_argument("--resample-to", type=int, default=0, metavar="HZ",
                   help="resample every waveform to this rate first (cuts of several rates are refused without it)")
    p.add_argument("--dither", type=float, default=0.0,
                   help="Gaussian noise in 16-bit sample units added before the fbank, as Kaldi's "
                        "--dither (Kaldi's default 1.0) (default: %(default)s)")


def run(args) -> None:
    compute_features(args.cuts_in, args.cuts_out, args.storage_dir,
                     num_mel_bins=args.num_mel_bins, nj=args.nj,
                     speed_perturb=args.speed_perturb, volume_perturb=args.volume_perturb,
                     raw=args.raw, seed=args.seed, dither=args.dither, resample_to=args.resample_to)
