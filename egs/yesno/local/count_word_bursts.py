#!/usr/bin/env python3
"""Count the bursts of speech energy in each yesno recording against the words its name says.

A burst is a run of at least --min-ms of 10 ms frames whose energy is above --threshold-db
(dB relative to full scale). Every yesno word is one burst (a YES sometimes two, when its
"s" is set apart), so a recording with fewer bursts than words lacks a word. Prints one line
per recording whose counts differ, then a summary; exits 0.

    egs/yesno/local/count_word_bursts.py [--corpus-dir ../shared/data/yesno]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List

import numpy as np
import soundfile as sf


def burst_starts(samples: np.ndarray, sampling_rate: int, threshold_db: float, min_ms: int) -> List[float]:
    """Start times (s) of the runs of 10 ms frames above ``threshold_db`` lasting ``min_ms``."""
    hop = sampling_rate // 100
    frames = samples[: len(samples) // hop * hop].reshape(-1, hop)
    loud = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12) > threshold_db
    edges = np.diff(np.concatenate([[0], loud.astype(np.int8), [0]]))
    starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    return [s / 100 for s, e in zip(starts, ends) if (e - s) * 10 >= min_ms]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--corpus-dir", type=Path, default=Path(__file__).resolve().parents[4] / "shared/data/yesno")
    p.add_argument("--threshold-db", type=float, default=-35.0)
    p.add_argument("--min-ms", type=int, default=80)
    args = p.parse_args(argv)
    wavs = sorted(args.corpus_dir.glob("*.wav"))
    if not wavs:
        print(f"{args.corpus_dir}: no .wav files", file=sys.stderr)
        return 1
    differ = 0
    for wav in wavs:
        samples, sr = sf.read(str(wav))
        starts = burst_starts(samples, sr, args.threshold_db, args.min_ms)
        words = len(wav.stem.split("_"))
        if len(starts) != words:
            differ += 1
            print(f"{wav.name}: {words} words, {len(starts)} bursts starting at "
                  + " ".join(f"{s:.2f}" for s in starts) + f" s (file {len(samples) / sr:.2f} s)")
    print(f"{len(wavs)} recordings, {differ} whose bursts and words differ in number")
    return 0


if __name__ == "__main__":
    sys.exit(main())
