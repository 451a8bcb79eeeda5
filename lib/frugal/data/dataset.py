"""Batches of precomputed features (or raw 16 kHz samples) from lhotse CutSets, and the
bucketing sampler.

lhotse's K2SpeechRecognitionDataset returns k2-specific supervision segments; frugal's
losses build their own supervision from texts, so this dataset only loads and pads
features and hands over the texts and ids.

A cut without features but with a 16 kHz recording (``frugal compute-fbank --raw``) has
its samples as "features": (S, 1) float32, in [-1, 1] as lhotse loads them, so that a
wav2vec 2.0 model sees (B, S, 1) and lengths in samples. Other sampling rates are refused
rather than resampled here (compute-fbank --raw resamples once, on disk).
"""
from __future__ import annotations

import warnings
from typing import Dict, List, Union

import numpy as np
import torch
from lhotse import CutSet
from lhotse.audio.utils import AudioLoadingError
from lhotse.dataset import DynamicBucketingSampler

from frugal.data.cmvn import normalize
from frugal.data.cuts import cut_words
from frugal.errors import FrugalError, first_line


class FeatureDataset(torch.utils.data.Dataset):
    """Map a CutSet (one batch from a sampler) to padded features, lengths and texts.

    Features are normalised with the cut's CMVN statistics where it has them (frugal.data.cmvn).
    Cuts with a 16 kHz recording and no features give their samples, (S, 1), unnormalised.

    Returns a dict: ``features`` (B, T, F) float32 zero-padded, ``feature_lens`` (B,) int64,
    ``cut_ids`` and ``texts`` (lists of str; a cut's text is its supervisions' texts joined
    by spaces), ``durations`` (list of float seconds). Cuts keep the sampler's order.
    """

    def __getitem__(self, cuts: CutSet) -> Dict[str, Union[torch.Tensor, List]]:
        cuts = list(cuts)
        feats = []
        for cut in cuts:
            if not cut.has_features:
                if not cut.has_recording:
                    raise FrugalError(f"cut '{cut.id}' has no precomputed features")
                feats.append(_raw_samples(cut))
                continue
            try:
                raw = cut.load_features()
            except (OSError, ValueError, RuntimeError) as e:  # a missing, truncated or foreign archive
                raise FrugalError(f"cut {cut.id}: cannot read its features from {cut.features.storage_path}: "
                                  f"{first_line(e)}") from None
            feats.append(torch.from_numpy(normalize(cut, raw)).float())
        lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.int64)
        dims = {f.shape[1] for f in feats}
        if len(dims) != 1:
            raise FrugalError(f"cuts {cuts[0].id}...: features of different dimensions {sorted(dims)} in one batch")
        padded = torch.zeros(len(feats), int(lengths.max()), dims.pop())
        for i, f in enumerate(feats):
            padded[i, : f.shape[0]] = f
        return {
            "features": padded,
            "feature_lens": lengths,
            "cut_ids": [c.id for c in cuts],
            "texts": [" ".join(cut_words(c)) for c in cuts],
            "durations": [float(c.duration) for c in cuts],
        }


RAW_SAMPLING_RATE = 16000


def _raw_samples(cut) -> torch.Tensor:
    """A raw-audio cut's first channel as (S, 1) float32."""
    if cut.sampling_rate != RAW_SAMPLING_RATE:
        raise FrugalError(f"cut {cut.id}: raw audio at {cut.sampling_rate} Hz, but models on raw audio take "
                          f"{RAW_SAMPLING_RATE} Hz (frugal compute-fbank --raw writes them at {RAW_SAMPLING_RATE} Hz)")
    try:
        samples = cut.load_audio()[0]
    except (OSError, ValueError, RuntimeError, AudioLoadingError) as e:  # a missing or unreadable file
        raise FrugalError(f"cut {cut.id}: cannot read its audio: {first_line(e)}") from None
    return torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).unsqueeze(1)


def make_sampler(cuts: CutSet, max_duration: float, shuffle: bool, seed: int, num_buckets: int = 10,
                 world_size: int = 1, rank: int = 0, drop_last: bool = False) -> DynamicBucketingSampler:
    """lhotse's DynamicBucketingSampler; with world_size > 1 each rank gets its own share
    of the batches, and every rank gets the same number of batches (lhotse syncs them).
    A set smaller than ``num_buckets`` (a small validation set) gets one bucket per cut."""
    try:
        num_buckets = max(1, min(num_buckets, len(cuts)))
    except TypeError:  # a lazy manifest: lhotse checks its size itself
        pass
    with warnings.catch_warnings():
        # frugal reads manifests eagerly on purpose (they are checked line by line, and are small):
        # lhotse's advice to read them lazily is noise, printed for every sampler made.
        warnings.filterwarnings("ignore", message=".*eagerly read CutSet")
        return DynamicBucketingSampler(
            cuts,
            max_duration=max_duration,
            num_buckets=num_buckets,
            shuffle=shuffle,
            drop_last=drop_last,
            seed=seed,
            world_size=world_size,
            rank=rank,
        )


class SkipFirstBatches(torch.utils.data.Sampler):
    """Iterate ``sampler`` from batch ``skip`` on: resuming mid-epoch without loading features."""

    def __init__(self, sampler, skip: int = 0) -> None:
        self.sampler = sampler
        self.skip = skip

    def __iter__(self):
        # lhotse samplers are their own iterators and restart on iter(): so no `yield from`.
        it = iter(self.sampler)
        for _ in range(self.skip):
            if next(it, None) is None:
                return
        while True:
            try:
                yield next(it)
            except StopIteration:
                return


def count_batches(sampler) -> int:
    """Batches in the sampler's current epoch (it only reads manifests)."""
    return sum(1 for _ in sampler)


def make_loader(dataset: torch.utils.data.Dataset, sampler, num_workers: int = 0,
                skip: int = 0) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        dataset,
        sampler=SkipFirstBatches(sampler, skip),
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=False,
    )
