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


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def type_problem(value, default) -> str:
    """What ``value`` fails to be, judged by the type of the field's ``default``; '' if it fits.
    YAML gives bool, int, float, str and lists; a bool is an int to Python, so it is checked apart."""
    if isinstance(default, bool):
        return "" if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return "" if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if isinstance(default, float):
        if isinstance(value, str) and _is_number(value):  # PyYAML reads 1e-3 (no dot) as a string
            return f"a number (YAML reads {value} as a string: write {float(value)!r})"
        return "" if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
    if isinstance(default, str):
        return "" if isinstance(value, str) else "a string"
    if isinstance(default, list):
        ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        return "" if ok else "a list of integers"
    if isinstance(default, tuple):
        ok = isinstance(value, (list, tuple)) and len(value) == len(default) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        return "" if ok else f"a list of {len(default)} numbers"
    return ""


def config_from_mapping(cls: type, presets: Dict[str, Config], family: str, d: dict, where: str) -> Config:
    """A ``cls`` config from a mapping (a train config's ``model`` section): ``preset: name``
    starts from ``presets[name]``, the other keys replace fields. Unknown keys, values of the
    wrong type and invalid configs are FrugalErrors that start with ``where``."""
    d = dict(d)
    preset = d.pop("preset", None)
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise FrugalError(f"{where}: unknown {family} option(s): {', '.join(unknown)} "
                          f"(known: preset, {', '.join(fields)})")
    defaults = cls()
    for name, value in d.items():
        what = type_problem(value, getattr(defaults, name))
        if what:
            raise FrugalError(f"{where}: {family} option {name} must be {what} (got {value!r})")
    if preset is not None:
        try:
            cfg = from_preset(presets, preset, family, **d)
        except FrugalError as e:
            raise FrugalError(f"{where}: {e}") from None
    else:
        cfg = cls(**d)
    cfg.validate(where)
    return cfg
