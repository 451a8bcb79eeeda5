"""What the pre-training tasks share: the objective's plumbing (no transcripts, options from the
config's ``loss`` section), random crops of long utterances (TERA: 1500 frames; wav2vec 2.0:
250,000 samples)."""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Dict, Mapping, Optional, Tuple, Type, TypeVar

import torch

from frugal.errors import BadValue, FrugalError
from frugal.train.objective import Objective, ObjectiveInputs, reject_lfmmi_inputs, reject_rnnt_loss

Options = TypeVar("Options")


def options_from_mapping(cls: Type[Options], options: Mapping, where: str) -> Options:
    """A ``cls`` dataclass (integer and float fields) from a config's ``loss`` section: unknown
    names and non-integers for integer fields are FrugalErrors; ``validate(where)`` is called."""
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise FrugalError(f"{where}: unknown option(s) {', '.join(unknown)} (known: {', '.join(fields)})")
    values = {}
    for name, value in options.items():
        if isinstance(getattr(cls, name), int):
            if not float(value).is_integer():
                raise FrugalError(f"{where}: {name} must be an integer (got {value!r})")
            values[name] = int(value)
        else:
            values[name] = float(value)
    out = cls(**values)
    out.validate(where)
    return out


def uniform_int(high: int, generator: Optional[torch.Generator]) -> int:
    """Uniform in [0, high)."""
    return int(torch.randint(high, (1,), generator=generator))


def crop(x: torch.Tensor, lengths: torch.Tensor, max_frames: int,
         generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Utterances longer than ``max_frames`` cut to a random window of that many frames."""
    if int(lengths.max()) <= max_frames:
        return x, lengths
    out = x.new_zeros(x.shape[0], max_frames, x.shape[2])
    new_lengths = lengths.clamp(max=max_frames)
    for b, length in enumerate(lengths.tolist()):
        first = uniform_int(length - max_frames + 1, generator) if length > max_frames else 0
        out[b, : min(length, max_frames)] = x[b, first:first + min(length, max_frames)]
    return out, new_lengths


class PretrainingObjective(Objective):
    """A pre-training task: trained without transcripts (no lang, den graph or lattices), its
    hyper-parameters an ``options_class`` dataclass read from the config's ``loss`` section."""

    options_class: ClassVar[type]
    title: ClassVar[str]  # for messages, e.g. "MAM pre-training"

    def __init__(self, options) -> None:
        self.options = options

    @classmethod
    def from_inputs(cls, inputs: ObjectiveInputs) -> "PretrainingObjective":
        reject_lfmmi_inputs(inputs)
        reject_rnnt_loss(inputs, cls.title)
        if inputs.lang:
            raise BadValue("lang", inputs.lang, "pre-training reads no transcripts")
        return cls(options_from_mapping(cls.options_class, inputs.options, f"{cls.name} loss options"))

    def model_section(self, section: Mapping, where: str) -> Dict:
        """The config's model section without its ``type``, which must be the task's own."""
        section = dict(section)
        kind = section.pop("type", self.name)
        if kind != self.name:
            raise FrugalError(f"{where}: {self.title} trains a model of type {self.name}, not {kind!r}")
        return section

    def describe(self, train_cuts) -> Optional[str]:
        return f"{self.title}: {dataclasses.asdict(self.options)}"

    def checkpoint_info(self) -> Dict:
        return {"objective": self.name, "options": dataclasses.asdict(self.options), "lang": "", "den_graph": ""}
