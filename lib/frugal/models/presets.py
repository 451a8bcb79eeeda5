"""Named model configurations: a preset dataclass with some fields replaced."""
from __future__ import annotations

import dataclasses
from typing import Dict, TypeVar

from frugal.errors import FrugalError

Config = TypeVar("Config")


def from_preset(presets: Dict[str, Config], preset: str, family: str, **overrides) -> Config:
    """A copy of ``presets[preset]`` with ``overrides``; unknown names are a FrugalError
    that lists the ``family``'s presets."""
    if preset not in presets:
        raise FrugalError(f"unknown {family} preset '{preset}' (known: {', '.join(sorted(presets))})")
    return dataclasses.replace(presets[preset], **overrides)
