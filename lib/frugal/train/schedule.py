"""Schedules as functions of training progress: Kaldi dropout schedules, learning rates.

Progress is the fraction of training done, in [0, 1] (Kaldi's "data fraction"): the
trainer computes it from the epoch and the batch index, identically on every rank.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Tuple

from frugal.errors import FrugalError


class DropoutSchedule:
    """Kaldi's ``--trainer.dropout-schedule``: a piecewise-linear function of progress.

    ``'0,0@0.20,0.5@0.50,0'`` means 0 from the start to 20% of training, rising linearly to
    0.5 at 50%, falling linearly to 0 at the end. Pieces are ``value@progress``; the first
    piece defaults to progress 0 and the last to progress 1; a single value is constant.
    """

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.points = self._parse(spec)

    @staticmethod
    def _parse(spec: str) -> List[Tuple[float, float]]:
        pieces = [p.strip() for p in str(spec).split(",")]
        if not pieces or any(not p for p in pieces):
            raise FrugalError(f"dropout schedule '{spec}': empty piece")
        points = []
        for i, piece in enumerate(pieces):
            value, at, where = piece.partition("@")
            try:
                v = float(value)
                if at:
                    x = float(where)
                elif i == 0:
                    x = 0.0
                elif i == len(pieces) - 1:
                    x = 1.0
                else:
                    raise FrugalError(f"dropout schedule '{spec}': piece '{piece}' needs '@progress'")
            except ValueError:
                raise FrugalError(f"dropout schedule '{spec}': cannot parse '{piece}'") from None
            if not 0.0 <= x <= 1.0:
                raise FrugalError(f"dropout schedule '{spec}': progress {x} is outside [0, 1]")
            if not 0.0 <= v < 1.0:
                raise FrugalError(f"dropout schedule '{spec}': proportion {v} is outside [0, 1)")
            if points and x < points[-1][0]:
                raise FrugalError(f"dropout schedule '{spec}': progress points must not decrease")
            points.append((x, v))
        if len(points) > 1 and (points[0][0] != 0.0 or points[-1][0] != 1.0):
            raise FrugalError(f"dropout schedule '{spec}': must start at progress 0 and end at 1")
        return points

    def __call__(self, progress: float) -> float:
        pts = self.points
        if len(pts) == 1:
            return pts[0][1]
        progress = min(max(progress, 0.0), 1.0)
        for (x0, v0), (x1, v1) in zip(pts, pts[1:]):
            if progress <= x1:
                if x1 == x0:
                    return v1
                return v0 + (v1 - v0) * (progress - x0) / (x1 - x0)
        return pts[-1][1]


@dataclass
class LrSchedule:
    """Linear warm-up over ``warmup_steps``, then a decay over the rest of training.

    decay = "exponential": lr * final_ratio ** progress (Kaldi's initial -> final effective lr);
            "linear": lr * (1 - (1 - final_ratio) * progress) (TERA's linear decay);
            "cosine": from lr down to lr * final_ratio along a half cosine in progress;
            "noam": lr * min(step / warmup, sqrt(warmup / step)) (Vaswani et al.; no progress);
            "constant": lr after warm-up;
            "tri_stage": fairseq's three phases in progress, for fine-tuning (thesis 4.3): a
            linear rise from 0 over the first 10% (warmup_steps is not used), lr held over
            the next 40%, then an exponential decay to lr * final_ratio at the end. The thesis
            calls the last phase a linear decrease; fairseq, which it ran, decays exponentially.
    """

    lr: float = 1e-3
    warmup_steps: int = 0
    decay: str = "exponential"
    final_ratio: float = 0.1

    DECAYS = ("exponential", "linear", "cosine", "noam", "constant", "tri_stage")
    TRI_STAGE = (0.1, 0.4, 0.5)  # rise, hold, decay: fractions of training

    def validate(self) -> None:
        if self.decay not in self.DECAYS:
            raise FrugalError(f"lr decay '{self.decay}' is not one of {', '.join(self.DECAYS)}")
        if self.lr <= 0 or self.final_ratio <= 0 or self.warmup_steps < 0:
            raise FrugalError("lr and final_ratio must be positive, warmup_steps non-negative")
        if self.decay == "noam" and self.warmup_steps == 0:
            raise FrugalError("the noam lr schedule needs warmup_steps > 0")

    def __call__(self, step: int, progress: float) -> float:
        """Learning rate for optimizer step number ``step`` (from 1) at ``progress``."""
        progress = min(max(progress, 0.0), 1.0)
        w = self.warmup_steps
        if self.decay == "noam":
            return self.lr * min(step / w, math.sqrt(w / step))
        if self.decay == "tri_stage":
            rise, hold, fall = self.TRI_STAGE
            if progress < rise:
                return self.lr * progress / rise
            if progress < rise + hold:
                return self.lr
            return self.lr * self.final_ratio ** ((progress - rise - hold) / fall)
        warm = min(1.0, step / w) if w > 0 else 1.0
        if self.decay == "exponential":
            return self.lr * warm * self.final_ratio ** progress
        if self.decay == "linear":
            return self.lr * warm * (1.0 - (1.0 - self.final_ratio) * progress)
        if self.decay == "cosine":
            floor = self.lr * self.final_ratio
            return warm * (floor + (self.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))
        return self.lr * warm
