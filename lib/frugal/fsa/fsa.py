"""FSAs as tensors: `Fsa` (one graph) and `FsaVec` (a ragged batch of graphs).

Conventions (shared by everything in frugal.fsa):

- States are numbered 0..S-1 and the start state is 0.
- ``arcs`` is an int32 tensor [A, 4] of (src, dst, label, aux_label) and ``scores`` a
  float tensor [A] of arc log-scores (higher is better; an OpenFst tropical weight is
  ``-score``).
- Final states carry a final log-score in ``final_scores`` [S]; ``-inf`` means "not
  final". Several final states are allowed, as in OpenFst (k2 instead has one final state
  reached by label -1 arcs).
- Every arc consumes exactly one frame when intersected with a `DenseFsaVec`: its label
  indexes the column of the network output. There is no epsilon label; label -1 stands
  for an epsilon that came from OpenFst (ilabel 0 under ``label_offset=1``) and an FSA
  that has one is not epsilon-free, which intersection rejects.
- Aux labels are free integers (e.g. word ids); 0 means "no output", as in OpenFst/k2.

Text form, one item a line (blank lines and ``#`` comments are ignored):
``src dst label aux_label score`` for an arc, ``state final_score`` (or just ``state``
for final score 0) for a final state. Scores are log-scores, not OpenFst costs.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Union

import numpy as np
import torch

from frugal.errors import FrugalError, where
from frugal.fsa.arcs import reachable, to_dot
from frugal.fileio import PathLike, atomic_write_text, load_weights_only, save_weights_only


def _state_or_label(field: str) -> int:
    value = int(field)
    if not -2**31 <= value < 2**31:
        raise ValueError(f"{value} is out of the int32 range")
    return value


def _score(field: str) -> float:
    value = float(field)
    if math.isnan(value):
        raise ValueError("score is NaN")
    return value


def _format_score(x: float) -> str:
    # str(np.float32) is the shortest text that reads back to the same float32.
    return str(np.float32(x)) if math.isfinite(x) else ("inf" if x > 0 else "-inf")


class Fsa:
    """One FSA (or transducer, with aux labels) as tensors; see the module docstring."""

    def __init__(self, arcs: torch.Tensor, scores: torch.Tensor, final_scores: torch.Tensor):
        if arcs.dim() != 2 or arcs.shape[1] != 4 or arcs.dtype != torch.int32:
            raise ValueError(f"arcs must be int32 [A, 4], got {arcs.dtype} {tuple(arcs.shape)}")
        if scores.shape != (arcs.shape[0],) or not scores.is_floating_point():
            raise ValueError(f"scores must be a float tensor [{arcs.shape[0]}], got {tuple(scores.shape)}")
        if final_scores.dim() != 1 or final_scores.numel() < 1 or not final_scores.is_floating_point():
            raise ValueError("final_scores must be a float tensor [S] with S >= 1 (state 0 is the start)")
        if arcs.shape[0] > 0:
            states = arcs[:, :2]
            if int(states.min()) < 0 or int(states.max()) >= final_scores.numel():
                raise ValueError(f"arc states must lie in [0, {final_scores.numel()})")
        self.arcs = arcs
        self.scores = scores
        self.final_scores = final_scores

    # ----------------------------------------------------------------- basics
    @property
    def num_states(self) -> int:
        return self.final_scores.numel()

    @property
    def num_arcs(self) -> int:
        return self.arcs.shape[0]

    @property
    def src(self) -> torch.Tensor:
        return self.arcs[:, 0]

    @property
    def dst(self) -> torch.Tensor:
        return self.arcs[:, 1]

    @property
    def labels(self) -> torch.Tensor:
        return self.arcs[:, 2]

    @property
    def aux_labels(self) -> torch.Tensor:
        return self.arcs[:, 3]

    @property
    def device(self) -> torch.device:
        return self.arcs.device

    def to(self, device: Union[str, torch.device]) -> "Fsa":
        return Fsa(self.arcs.to(device), self.scores.to(device), self.final_scores.to(device))

    def __repr__(self) -> str:
        return f"Fsa(num_states={self.num_states}, num_arcs={self.num_arcs}, device={self.device})"

    # ------------------------------------------------------------- properties
    def is_arc_sorted(self) -> bool:
        """Arcs are ordered by (src, label), as OpenFst's ilabel sort within a state."""
        key = self.src.long() * (1 << 32) + (self.labels.long() + (1 << 31))
        return bool((key[1:] >= key[:-1]).all())

    def is_top_sorted(self) -> bool:
        """Every arc goes from a state to itself or to a higher-numbered state."""
        return bool((self.dst >= self.src).all())

    def is_epsilon_free(self) -> bool:
        """No arc has the epsilon label -1 (every arc consumes a frame)."""
        return bool((self.labels >= 0).all())

    def accessible_states(self) -> torch.Tensor:
        """Bool [S]: states reachable from the start state."""
        return torch.from_numpy(reachable(self.num_states, self.src.cpu().numpy(), self.dst.cpu().numpy(), [0]))

    def coaccessible_states(self) -> torch.Tensor:
        """Bool [S]: states from which a final state is reachable."""
        finals = torch.nonzero(self.final_scores.cpu() > -math.inf).flatten().tolist()
        return torch.from_numpy(reachable(self.num_states, self.dst.cpu().numpy(), self.src.cpu().numpy(), finals))

    def is_connected(self) -> bool:
        """Every state is both accessible and coaccessible (OpenFst's "connected")."""
        return bool((self.accessible_states() & self.coaccessible_states()).all())

    def arc_sort(self) -> "Fsa":
        """A copy with arcs stably sorted by (src, label)."""
        key = self.src.long() * (1 << 32) + (self.labels.long() + (1 << 31))
        order = torch.sort(key, stable=True).indices
        return Fsa(self.arcs[order], self.scores[order], self.final_scores.clone())

    def connect(self) -> "Fsa":
        """Remove states (and their arcs) that are not on a path from the start to a final state.

        States keep their relative order, so the start state stays 0. An FSA with no
        successful path becomes the one-state FSA with no arcs and no final state.
        """
        keep = (self.accessible_states() & self.coaccessible_states()).to(self.device)
        if not bool(keep[0]):
            return Fsa(self.arcs[:0], self.scores[:0], self.final_scores[:1].clone().fill_(-math.inf))
        new_id = torch.cumsum(keep.long(), 0) - 1
        arc_keep = keep[self.src.long()] & keep[self.dst.long()]
        arcs = self.arcs[arc_keep].clone()
        arcs[:, 0] = new_id[arcs[:, 0].long()].int()
        arcs[:, 1] = new_id[arcs[:, 1].long()].int()
        return Fsa(arcs, self.scores[arc_keep], self.final_scores[keep])

    # ------------------------------------------------------------ text / dot
    def to_str(self) -> str:
        """Text form (arcs in stored order, then final states); see the module docstring."""
        lines = [
            f"{s} {d} {l} {a} {_format_score(w)}"
            for (s, d, l, a), w in zip(self.arcs.tolist(), self.scores.tolist())
        ]
        lines += [
            f"{s} {_format_score(w)}" for s, w in enumerate(self.final_scores.tolist()) if w > -math.inf
        ]
        return "".join(line + "\n" for line in lines)

    @staticmethod
    def from_str(text: str, name: str = "<string>") -> "Fsa":
        """Parse the text form; ``name`` is used in error messages (``name:line: ...``)."""
        arcs: List[List[int]] = []
        scores: List[float] = []
        finals = {}
        num_states = 1
        for line_no, line in enumerate(text.splitlines(), 1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            try:
                if len(fields) == 5:
                    arc = [_state_or_label(x) for x in fields[:4]]
                    if arc[0] < 0 or arc[1] < 0:
                        raise ValueError("negative state number")
                    arcs.append(arc)
                    scores.append(_score(fields[4]))
                    num_states = max(num_states, arc[0] + 1, arc[1] + 1)
                elif len(fields) in (1, 2):
                    s = _state_or_label(fields[0])
                    if s < 0:
                        raise ValueError("negative state number")
                    if s in finals:
                        raise ValueError(f"state {s} is given a final score twice")
                    finals[s] = _score(fields[1]) if len(fields) == 2 else 0.0
                    num_states = max(num_states, s + 1)
                else:
                    raise ValueError(
                        f"expected 'src dst label aux_label score' or 'state [final_score]', "
                        f"got {len(fields)} fields")
            except ValueError as e:
                raise FrugalError(f"{where(name, line_no)}: {e}: {line.strip()!r}") from None
        final_scores = torch.full((num_states,), -math.inf)
        for s, w in finals.items():
            final_scores[s] = w
        return Fsa(
            torch.tensor(arcs, dtype=torch.int32).reshape(-1, 4),
            torch.tensor(scores, dtype=torch.float32),
            final_scores,
        )

    @staticmethod
    def read_text(path: PathLike) -> "Fsa":
        return Fsa.from_str(Path(path).read_text(), name=str(path))

    def write_text(self, path: PathLike) -> None:
        atomic_write_text(path, self.to_str())

    def to_dot(self, title: str = "fsa") -> str:
        """Graphviz source: final states are double circles labelled ``state/final_score``."""
        finals = [_format_score(w) if w > -math.inf else None for w in self.final_scores.tolist()]
        arcs = [(s, d, f"{l}:{a}/{_format_score(w)}") for (s, d, l, a), w in zip(self.arcs.tolist(), self.scores.tolist())]
        return to_dot(title, finals, arcs)

    # -------------------------------------------------------------- save/load
    def as_dict(self) -> dict:
        return {"kind": "Fsa", "arcs": self.arcs.cpu(), "scores": self.scores.cpu(),
                "final_scores": self.final_scores.cpu()}

    def save(self, path: PathLike) -> None:
        """torch.save of plain tensors (readable with ``weights_only=True``), written atomically."""
        _save(self.as_dict(), path)


class FsaVec:
    """A ragged batch of FSAs stored as one concatenation.

    ``arcs`` [A, 4] holds the arcs of all FSAs one after the other with *local* state
    numbers (each FSA's start state is 0); FSA i owns arcs ``arc_splits[i]:arc_splits[i+1]``
    and final scores ``final_scores[state_splits[i]:state_splits[i+1]]``. The splits are
    int64 tensors [N+1] kept on the same device as the arcs.
    """

    def __init__(self, arcs: torch.Tensor, scores: torch.Tensor, final_scores: torch.Tensor,
                 arc_splits: torch.Tensor, state_splits: torch.Tensor):
        if arcs.dim() != 2 or arcs.shape[1] != 4 or arcs.dtype != torch.int32:
            raise ValueError(f"arcs must be int32 [A, 4], got {arcs.dtype} {tuple(arcs.shape)}")
        if scores.shape != (arcs.shape[0],) or final_scores.dim() != 1:
            raise ValueError("scores must be [A] and final_scores [S]")
        if arc_splits.shape != state_splits.shape or arc_splits.dim() != 1 or arc_splits.numel() < 1:
            raise ValueError("arc_splits and state_splits must both be int64 [N+1]")
        if int(arc_splits[0]) != 0 or int(arc_splits[-1]) != arcs.shape[0] \
                or int(state_splits[0]) != 0 or int(state_splits[-1]) != final_scores.numel():
            raise ValueError("splits must start at 0 and end at the number of arcs/states")
        if bool((arc_splits[1:] < arc_splits[:-1]).any()) or bool((state_splits[1:] <= state_splits[:-1]).any()):
            raise ValueError("splits must be non-decreasing, with at least one state per FSA")
        self.arcs = arcs
        self.scores = scores
        self.final_scores = final_scores
        self.arc_splits = arc_splits.long()
        self.state_splits = state_splits.long()
        if arcs.shape[0] > 0:
            arc_fsa = self.arc_fsa_index()
            num_states = (self.state_splits[1:] - self.state_splits[:-1])[arc_fsa]
            states = arcs[:, :2].long()
            if bool((states < 0).any()) or bool((states >= num_states[:, None]).any()):
                raise ValueError("arc states must lie in [0, num_states) of their FSA")

    @staticmethod
    def from_fsas(fsas: Sequence[Fsa]) -> "FsaVec":
        if len(fsas) == 0:
            raise ValueError("an FsaVec needs at least one FSA")
        device = fsas[0].device
        arc_splits = torch.tensor([0] + [f.num_arcs for f in fsas], dtype=torch.int64).cumsum(0)
        state_splits = torch.tensor([0] + [f.num_states for f in fsas], dtype=torch.int64).cumsum(0)
        return FsaVec(
            torch.cat([f.arcs.to(device) for f in fsas]),
            torch.cat([f.scores.to(device) for f in fsas]),
            torch.cat([f.final_scores.to(device) for f in fsas]),
            arc_splits.to(device), state_splits.to(device),
        )

    def __len__(self) -> int:
        return self.arc_splits.numel() - 1

    def __getitem__(self, i: int) -> Fsa:
        if not -len(self) <= i < len(self):
            raise IndexError(f"FsaVec index {i} out of range for {len(self)} FSAs")
        i %= len(self)
        a0, a1 = int(self.arc_splits[i]), int(self.arc_splits[i + 1])
        s0, s1 = int(self.state_splits[i]), int(self.state_splits[i + 1])
        return Fsa(self.arcs[a0:a1], self.scores[a0:a1], self.final_scores[s0:s1])

    def __iter__(self) -> Iterator[Fsa]:
        return (self[i] for i in range(len(self)))

    @property
    def device(self) -> torch.device:
        return self.arcs.device

    def arc_fsa_index(self) -> torch.Tensor:
        """Long [A]: which FSA each arc belongs to."""
        sizes = self.arc_splits[1:] - self.arc_splits[:-1]
        return torch.repeat_interleave(torch.arange(len(self), device=self.device), sizes)

    def state_fsa_index(self) -> torch.Tensor:
        """Long [S]: which FSA each state belongs to."""
        sizes = self.state_splits[1:] - self.state_splits[:-1]
        return torch.repeat_interleave(torch.arange(len(self), device=self.device), sizes)

    def to(self, device: Union[str, torch.device]) -> "FsaVec":
        return FsaVec(self.arcs.to(device), self.scores.to(device), self.final_scores.to(device),
                      self.arc_splits.to(device), self.state_splits.to(device))

    def __repr__(self) -> str:
        return (f"FsaVec(num_fsas={len(self)}, num_states={self.final_scores.numel()}, "
                f"num_arcs={self.arcs.shape[0]}, device={self.device})")

    def as_dict(self) -> dict:
        return {"kind": "FsaVec", "arcs": self.arcs.cpu(), "scores": self.scores.cpu(),
                "final_scores": self.final_scores.cpu(), "arc_splits": self.arc_splits.cpu(),
                "state_splits": self.state_splits.cpu()}

    def save(self, path: PathLike) -> None:
        """torch.save of plain tensors (readable with ``weights_only=True``), written atomically."""
        _save(self.as_dict(), path)


def _save(d: dict, path: PathLike) -> None:
    save_weights_only(path, d)


def load_fsa(path: PathLike, map_location: Optional[Union[str, torch.device]] = "cpu") -> Union[Fsa, FsaVec]:
    """Load what `Fsa.save` or `FsaVec.save` wrote (with ``weights_only=True``: no pickled code)."""
    d = load_weights_only(path, "a saved Fsa/FsaVec", map_location=map_location)
    kind = d.get("kind")
    try:
        if kind == "Fsa":
            return Fsa(d["arcs"], d["scores"], d["final_scores"])
        if kind == "FsaVec":
            return FsaVec(d["arcs"], d["scores"], d["final_scores"], d["arc_splits"], d["state_splits"])
    except (KeyError, ValueError) as e:
        raise FrugalError(f"{path}: malformed saved {kind}: {e}") from None
    raise FrugalError(f"{path}: not a saved Fsa/FsaVec (kind={kind!r})")
