"""(score, arc row) pairs packed into one int64, for the dense search's scatter-max.

A pair packs so that int64 order is the order of the score, then of the lowest arc row:
one integer scatter-max then yields each state's best score and its best arc (its
backpointer). A float32's bits, read as int32, order like the float for non-negative
floats and reversed for negative ones; flipping the 31 low bits of negative ones fixes
that. The high word is the score so transformed; the low word is ``LOW_MASK - row``, so
that the lowest row wins a tie: the lowest candidate, as in the sparse search, since
candidates come in (utterance, state, arc) order, and an emitting arc (rows below
num_emit) before a non-emitting one. ``NO_ARC`` marks a start token.

When every score is negative (all of a frame's, with non-positive non-emitting arcs),
the transform is one xor, which the callers pass on as ``all_negative``.
"""
from __future__ import annotations

import math
import struct
from typing import Optional

import torch

LOW_MASK = (1 << 32) - 1
NO_ARC = (1 << 32) - 1


def pack(scores: torch.Tensor, comp: torch.Tensor) -> torch.Tensor:
    """Pairs of float32 ``scores`` and low words ``comp`` (``LOW_MASK - row``)."""
    bits = scores.contiguous().view(torch.int32)
    key = bits >> 31
    key &= 0x7FFFFFFF
    key ^= bits
    out = key.to(torch.int64)
    out *= 1 << 32
    out += comp
    return out


def packed_threshold(cutoff):
    """The least packed pair whose score is at least ``cutoff`` (a float, or a (B, 1)
    tensor of them), -inf meaning that nothing is kept: packed pairs compare with it as
    their scores compare with ``cutoff`` (-0.0 included, which a float compare equates
    with 0.0)."""
    if isinstance(cutoff, float):
        cutoff = math.inf if cutoff == -math.inf else (-0.0 if cutoff == 0.0 else cutoff)
        bits = struct.unpack("<i", struct.pack("<f", cutoff))[0]
        return (bits ^ ((bits >> 31) & 0x7FFFFFFF)) << 32
    cutoff = torch.where(cutoff == 0.0, -0.0, cutoff.nan_to_num(neginf=math.inf))
    return pack(cutoff, 0)


def unpack_scores(packed: torch.Tensor, all_negative: bool = False) -> torch.Tensor:
    """The scores of packed pairs (given that all are negative, faster)."""
    return high_word_scores(high_words(packed), all_negative)


def high_word_scores(key: torch.Tensor, all_negative: bool = False) -> torch.Tensor:
    """The scores of the high words (int32) of packed pairs."""
    if all_negative:
        return torch.bitwise_xor(key, 0x7FFFFFFF).view(torch.float32)
    bits = key >> 31
    bits &= 0x7FFFFFFF
    bits ^= key
    return bits.view(torch.float32)


class PackedPairs:
    """A reusable int64 buffer of packed (score, arc row) pairs whose low words are written
    once, from ``low`` (int64 below 2**32); `pack` writes the high words (the scores)."""

    def __init__(self, low: torch.Tensor):
        self.pairs = low.contiguous().clone()
        self.high = high_words(self.pairs)
        self.work = torch.empty(low.shape, dtype=torch.int32, device=low.device)

    def pack(self, scores: torch.Tensor, all_negative: bool) -> torch.Tensor:
        write_high_words(self.high, scores, all_negative, self.work)
        return self.pairs


def high_words(pairs: torch.Tensor) -> torch.Tensor:
    """The high words (int32) of int64 ``pairs``, as a view (the torch devices are all
    little-endian: the high word of an int64 is its second int32)."""
    words = pairs.view(torch.int32)
    return words[1::2] if words.dim() == 1 else words[..., 1::2]


def write_high_words(high: torch.Tensor, scores: torch.Tensor, all_negative: bool,
                     work: Optional[torch.Tensor] = None) -> None:
    """Writes the packed form of float32 ``scores`` into the high words ``high``."""
    bits = scores.view(torch.int32)
    if all_negative:  # the flip of every negative float: one pass
        torch.bitwise_xor(bits, 0x7FFFFFFF, out=high)
    else:
        work = torch.empty_like(bits) if work is None else work
        torch.bitwise_right_shift(bits, 31, out=work)
        work &= 0x7FFFFFFF
        torch.bitwise_xor(work, bits, out=high)


def packed_constant(score: float, arc: int) -> int:
    """The packed pair of one ``score`` and arc row ``arc``, as a Python int."""
    return int(pack(torch.tensor([score], dtype=torch.float32), torch.tensor([LOW_MASK - arc]))[0])
