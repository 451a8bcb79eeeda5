"""Band-limited resampling without torchaudio or scipy.

lhotse's ``Resample`` transform falls back to scipy when torchaudio is missing; its
windowed-sinc torch module (lhotse.augmentation.resample) needs neither, and is used
here with one cached kernel per rate pair.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
import torch

_resamplers: Dict[Tuple[int, int], torch.nn.Module] = {}


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """``samples`` (..., time) at ``source_rate`` -> float32 at ``target_rate``."""
    if source_rate == target_rate:
        return np.asarray(samples, dtype=np.float32)
    from lhotse.augmentation.resample import Resample

    key = (int(source_rate), int(target_rate))
    if key not in _resamplers:
        _resamplers[key] = Resample(*key)
    with torch.no_grad():
        out = _resamplers[key](torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)))
    return out.numpy()
