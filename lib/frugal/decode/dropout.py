"""Monte-Carlo dropout at decoding time (Vyas et al. 2019; thesis ch. 3).

A model with ``set_dropout_active(active, proportion)`` (TDNN-F, transformer) keeps its
dropout on in eval mode. The masks of (pass k, utterance) depend only on (seed, k,
utterance id): torch's RNG is seeded with ``utterance_seed(s_k, utterance id)``, s_k the
pass's seed (`pass_seeds`), before the network runs on that utterance alone, so the
samples do not depend on how utterances are batched or split into jobs, nor on the number
of samples N (pass k of N = 2 is pass k of N = 4).
"""
from __future__ import annotations

import contextlib
import zlib
from typing import Callable, List, Sequence

import torch

from frugal.errors import BadValue


def utterance_seed(seed: int, key: str) -> int:
    """A seed for one utterance: masks differ between utterances but are reproducible from
    (seed, utterance id)."""
    return (seed * 1_000_003 + zlib.crc32(key.encode("utf-8"))) % (1 << 62)


def pass_seeds(seed: int, num_samples: int) -> List[int]:
    """The seeds of dropout passes 1..num_samples; pass k's seed depends on (seed, k) only."""
    return [utterance_seed(seed, f"dropout-pass-{k}") for k in range(1, num_samples + 1)]


def set_dropout(model: torch.nn.Module, proportion: float, active: bool, where: str = "") -> None:
    """Switch the model's Monte-Carlo dropout on or off at ``proportion`` (``where``: the
    model's file, for errors)."""
    setter = getattr(model, "set_dropout_active", None)
    if not callable(setter):
        raise BadValue("model", where or None, f"a {type(model).__name__} has no dropout to sample (no "
                                               f"set_dropout_active): cannot decode with dropout samples")
    try:
        setter(active, proportion)
    except ValueError as e:
        raise BadValue("dropout_proportion", proportion, f"{e} (model {where})" if where else str(e)) from None


@contextlib.contextmanager
def dropout_active(model: torch.nn.Module, proportion: float, device: torch.device):
    """Dropout on inside the block, off after it, with torch's RNG state restored."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        set_dropout(model, proportion, active=True)
        try:
            yield
        finally:
            set_dropout(model, proportion, active=False)


def dropout_samples(forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], features: torch.Tensor,
                    length: int, utt_id: str, seeds: Sequence[int]) -> List[torch.Tensor]:
    """``forward``'s (T', D) output of one utterance (``features`` (T, F), padded) once per
    pass seed, each with the masks of ``utterance_seed(seed, utt_id)`` alone. Call inside
    `dropout_active`."""
    x = features[:length].unsqueeze(0)
    lengths = torch.tensor([length], device=features.device)
    out = []
    for seed in seeds:
        torch.manual_seed(utterance_seed(seed, utt_id))
        out.append(forward(x, lengths)[0])
    return out
