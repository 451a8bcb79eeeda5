"""The transducer objective: pruned RNN-T training as icefall's, or the full RNN-T loss.

Units are the tokens of a `frugal prepare-units` lang directory (characters or BPE
pieces; `frugal.lang.units.UnitCodec`), id 0 the blank. The model is a
`frugal.models.transducer.TransducerModel` (a config's ``model`` section of ``type:
transducer``).

- ``rnnt_loss: pruned`` (default): the simple loss of the additive joiner (``simple_am_proj``
  + ``simple_lm_proj``, smoothed with ``lm_scale`` / ``am_scale``), pruning ranges of width
  ``prune_range`` from its occupations, and the loss of the full joiner inside that band;
  ``loss = simple_scale * simple + pruned_scale * pruned`` where, over the first
  ``warm_step`` optimizer steps, simple_scale falls linearly from 1 to ``simple_loss_scale``
  and pruned_scale rises from 0.1 to 1 (icefall's warm-up: the band is poor while the
  simple model is untrained).
- ``rnnt_loss: full``: the RNN-T loss of the full joiner on every (frame, symbol) node, the
  (B, T, S+1, V) logits tensor that pruning avoids.

The losses are summed over utterances and divided by the output frames of the batch, as the
CTC objective's. The loss runs inside the model's forward (``head=``) so that DDP sees every
parameter it uses; the encoder's xent head is never used (`leaves_parameters_unused`).
"""
from __future__ import annotations

import logging
from typing import Dict, List, Optional

import torch

from frugal.errors import BadValue
from frugal.graph.fingerprint import file_sha256
from frugal.lang.units import UnitCodec
from frugal.losses.rnnt import (do_rnnt_pruning, get_rnnt_prune_ranges, make_boundary, rnnt_loss,
                                rnnt_loss_pruned, rnnt_loss_simple)
from frugal.models import build_model
from frugal.train.objective import Objective, ObjectiveInputs, register, reject_lfmmi_inputs

log = logging.getLogger(__name__)

RNNT_LOSSES = ("pruned", "full")
# loss options of the config's loss section and their defaults (icefall's)
LOSS_OPTIONS = {"simple_loss_scale": 0.5, "lm_scale": 0.25, "am_scale": 0.0, "prune_range": 5,
                "warm_step": 2000}


def warmup_scales(step: int, warm_step: int, simple_loss_scale: float) -> tuple:
    """(simple_scale, pruned_scale) after ``step`` optimizer steps (icefall's warm-up)."""
    if warm_step <= 0 or step >= warm_step:
        return simple_loss_scale, 1.0
    frac = step / warm_step
    return 1.0 - frac * (1.0 - simple_loss_scale), 0.1 + 0.9 * frac


def pad_symbols(seqs: List[List[int]], blank: int, device) -> tuple:
    """(B, S) symbols padded with blank and their lengths."""
    lens = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    out = torch.full((len(seqs), max(int(lens.max()), 1) if seqs else 1), blank, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor(s, dtype=torch.long)
    return out.to(device), lens.to(device)


class _LossHead:
    """What runs inside the transducer's forward: encoder output -> per-utterance losses."""

    def __init__(self, symbols: torch.Tensor, symbol_lens: torch.Tensor, kind: str, options: Dict) -> None:
        self.symbols, self.symbol_lens, self.kind, self.o = symbols, symbol_lens, kind, options

    def __call__(self, model, enc: torch.Tensor, enc_lens: torch.Tensor) -> Dict[str, torch.Tensor]:
        blank = model.blank
        B = enc.shape[0]
        y = torch.cat([torch.full((B, 1), blank, dtype=torch.long, device=enc.device), self.symbols], dim=1)
        dec = model.predictor(y)  # (B, S+1, D)
        boundary = make_boundary(enc_lens, self.symbol_lens)
        joiner = model.joiner
        frames = enc_lens.sum()
        if self.kind == "full":
            logits = joiner(enc.unsqueeze(2), dec.unsqueeze(1))  # (B, T, S+1, V)
            return {"full": rnnt_loss(logits, self.symbols, boundary, blank=blank, reduction="none"),
                    "frames": frames}
        simple, (px_grad, py_grad) = rnnt_loss_simple(
            model.simple_lm_proj(dec), model.simple_am_proj(enc), self.symbols, boundary, blank=blank,
            lm_only_scale=self.o["lm_scale"], am_only_scale=self.o["am_scale"], reduction="none",
            return_grad=True)
        ranges = get_rnnt_prune_ranges(px_grad, py_grad, boundary, int(self.o["prune_range"]))
        am, lm = do_rnnt_pruning(joiner.encoder_proj(enc), joiner.decoder_proj(dec), ranges)
        logits = joiner(am, lm, project_input=False)  # (B, T, prune_range, V)
        pruned = rnnt_loss_pruned(logits, self.symbols, ranges, boundary, blank=blank, reduction="none")
        return {"simple": simple, "pruned": pruned, "frames": frames}


@register
class TransducerObjective(Objective):
    """Pruned (or full) RNN-T loss over a units lang directory (see the module docstring)."""

    name = "transducer"
    leaves_parameters_unused = True  # the encoder's xent head (and, with the full loss, the simple projections)

    def __init__(self, lang_dir, rnnt_loss_kind: str = "pruned", options: Optional[Dict] = None) -> None:
        if rnnt_loss_kind not in RNNT_LOSSES:
            raise BadValue("rnnt_loss", rnnt_loss_kind, f"must be one of {', '.join(RNNT_LOSSES)}")
        self.codec = UnitCodec(lang_dir)
        self.kind = rnnt_loss_kind
        self.options = {**LOSS_OPTIONS, **(options or {})}
        if self.options["prune_range"] < 2 or self.options["prune_range"] != int(self.options["prune_range"]):
            raise BadValue("loss", f"prune_range {self.options['prune_range']}", "must be an integer >= 2")
        if self.options["warm_step"] < 0:
            raise BadValue("loss", f"warm_step {self.options['warm_step']}", "must be >= 0")
        self.step = 0

    @classmethod
    def from_inputs(cls, inputs: ObjectiveInputs) -> "TransducerObjective":
        reject_lfmmi_inputs(inputs)
        unknown = sorted(set(inputs.options) - set(LOSS_OPTIONS))
        if unknown:
            raise BadValue("loss", ", ".join(unknown),
                           f"unknown transducer loss option(s) (known: {', '.join(LOSS_OPTIONS)})")
        return cls(inputs.lang, inputs.rnnt_loss or "pruned", inputs.options)

    @property
    def output_dim(self) -> int:
        return self.codec.vocab_size

    @property
    def output_source(self) -> str:
        return f"the tokens of lang dir {self.codec.lang_dir} (with blank)"

    def build_model(self, section, feat_dim: int, where: str) -> torch.nn.Module:
        if section.get("type") != "transducer":
            raise BadValue("train_config", where, f"the transducer objective needs a model section of type "
                                                  f"transducer, not {section.get('type', 'tdnnf')!r}")
        return build_model(dict(section), feat_dim, self.output_dim, where, self.output_source)

    def describe(self, train_cuts) -> Optional[str]:
        return (f"transducer: {self.kind} RNN-T loss over {self.output_dim} units (with blank) of "
                f"{self.codec.lang_dir}; " + ", ".join(f"{k} {v}" for k, v in self.options.items()))

    def checkpoint_info(self) -> Dict:
        # tokens.txt by content: decoding refuses units other than these
        return {"objective": self.name, "lang": str(self.codec.lang_dir), "den_graph": "", "rnnt_loss": self.kind,
                "tokens_sha256": file_sha256(self.codec.lang_dir / "tokens.txt")}

    def set_step(self, step: int) -> None:
        """The trainer's optimizer steps so far (the warm-up's clock)."""
        self.step = step

    def __call__(self, model: torch.nn.Module, batch: Dict) -> Dict[str, torch.Tensor]:
        seqs = [self.codec.encode(t.split()) for t in batch["texts"]]
        symbols, symbol_lens = pad_symbols(seqs, 0, batch["features"].device)
        losses = model(batch["features"], batch["feature_lens"],
                       head=_LossHead(symbols, symbol_lens, self.kind, self.options))
        frames = losses.pop("frames").clamp(min=1).to(batch["features"].dtype)
        if self.kind == "full":
            loss = losses["full"].sum() / frames
            return {"loss": loss, "full": loss.detach()}
        simple, pruned = losses["simple"].sum() / frames, losses["pruned"].sum() / frames
        s_scale, p_scale = warmup_scales(self.step, int(self.options["warm_step"]),
                                         self.options["simple_loss_scale"])
        return {"loss": s_scale * simple + p_scale * pruned, "simple": simple.detach(), "pruned": pruned.detach()}
