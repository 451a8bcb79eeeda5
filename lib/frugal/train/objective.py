"""Training objectives, the trainer's plug-ins.

An objective owns what is particular to a way of training a model:

- its supervision and loss: ``objective(model, batch)`` turns a batch of
  `frugal.data.dataset.FeatureDataset` into a dict of scalar tensors, ``"loss"`` (the
  total to minimise) and named per-frame components to log;
- the model head it trains: ``output_dim`` and ``build_model`` (by default the encoder of
  the config's model section with ``output_dim`` outputs, `frugal.models.build_model`);
- what checkpoints record for later stages (``checkpoint_info``: the objective's name and
  the graphs, lang directory or lattices it was trained with).

Objectives register themselves by name (`register`); `make_objective` builds one from
`ObjectiveInputs`, which holds everything any objective may take. A new objective is a
class in its own module that `frugal.train` imports; the trainer and ``frugal train`` do
not change.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Dict, List, Mapping, Optional, Type

import torch

from frugal.errors import BadValue
from frugal.models import build_model

OBJECTIVES: Dict[str, Type["Objective"]] = {}


@dataclass
class ObjectiveInputs:
    """What ``frugal train`` hands to an objective (each takes what it needs, and says
    which of the rest it cannot use)."""

    lang: str                                   # lang directory: lexicon (LF-MMI) or units (CTC)
    den_graph: Optional[str] = None             # den.pt of make-den-graph (LF-MMI)
    options: Dict = field(default_factory=dict)  # the config's loss section
    supervision_lattices: List[str] = field(default_factory=list)  # lattice files or directories
    lattice_options: Dict = field(default_factory=dict)  # how lattices supervise (LF-MMI)
    rnnt_loss: Optional[str] = None             # pruned or full (transducer)


class Objective:
    """The interface of an objective (see the module docstring)."""

    name: ClassVar[str]

    @classmethod
    def from_inputs(cls, inputs: ObjectiveInputs) -> "Objective":
        raise NotImplementedError

    @property
    def output_dim(self) -> int:
        raise NotImplementedError

    def build_model(self, section: Mapping, feat_dim: int, where: str) -> torch.nn.Module:
        return build_model(dict(section), feat_dim, self.output_dim, where, self.output_source)

    @property
    def output_source(self) -> str:
        """Where the output size comes from, for errors about a config that disagrees."""
        return f"the {self.name} objective"

    def select_cuts(self, train_cuts, valid_cuts, where: str = "the training cuts") -> None:
        """Told which cuts training and validation use, before training (e.g. to check that
        each has a supervision); ``where`` names the training cuts' manifest."""

    def describe(self, train_cuts) -> Optional[str]:
        """A line for the training log on how the training cuts are supervised, if any."""
        return None

    def __call__(self, model: torch.nn.Module, batch: Dict) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    def checkpoint_info(self) -> Dict:
        return {"objective": self.name}

    # The trainer also calls, where an objective has them: ``set_step(step)`` before each
    # batch (optimizer steps so far, e.g. for a loss warm-up), and it lets DDP find unused
    # parameters where ``leaves_parameters_unused`` is true.
    leaves_parameters_unused: ClassVar[bool] = False


def register(cls: Type[Objective]) -> Type[Objective]:
    """Class decorator: make an objective available under its ``name``."""
    OBJECTIVES[cls.name] = cls
    return cls


def reject_lfmmi_inputs(inputs: ObjectiveInputs) -> None:
    """A den graph and supervision lattices are LF-MMI's alone."""
    if inputs.den_graph:
        raise BadValue("den_graph", inputs.den_graph, "is for LF-MMI only")
    if inputs.supervision_lattices:
        raise BadValue("supervision_lattices", " ".join(inputs.supervision_lattices), "are for LF-MMI only")


def reject_rnnt_loss(inputs: ObjectiveInputs, name: str) -> None:
    if inputs.rnnt_loss:
        raise BadValue("rnnt_loss", inputs.rnnt_loss, f"is for the transducer objective, not {name}")


def make_objective(name: str, inputs: ObjectiveInputs) -> Objective:
    if name not in OBJECTIVES:
        raise BadValue("objective", name, f"unknown (known: {', '.join(sorted(OBJECTIVES))})")
    return OBJECTIVES[name].from_inputs(inputs)
