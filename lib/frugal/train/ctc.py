"""The CTC objective over a lang directory's units.

Units are the phones of `frugal prepare-lang`, or the characters / BPE pieces of
`frugal prepare-units`; id 0 is the blank. Every pronunciation of a word is allowed (graph
CTC over the lexicon, `lexicon_ctc_graphs`), and the model's chain output goes through a
log-softmax. Utterances too short for their transcript are left out of the loss and logged.
"""
from __future__ import annotations

import logging
from typing import Dict, List

import torch

from frugal.errors import FrugalError
from frugal.lang.lang import Lang
from frugal.losses import graph_ctc_loss, lexicon_ctc_graphs
from frugal.train.objective import Objective, ObjectiveInputs, register, reject_lfmmi_inputs, reject_rnnt_loss

log = logging.getLogger(__name__)


@register
class CtcObjective(Objective):
    """CTC loss callable over a lang directory's units (see the module docstring)."""

    name = "ctc"

    def __init__(self, lang_dir) -> None:
        lang = Lang(lang_dir, need=("phones.txt", "words.txt", "lexiconp.txt"))
        units = lang.phones
        self.prons: Dict[str, list] = {}
        for p in lang.lexicon().prons:
            self.prons.setdefault(p.word, []).append((tuple(units[x] for x in p.phones), p.prob))
        # Disambiguation symbols (#0, #1, ...) come last in Kaldi's phones.txt; they are no units.
        real = [units[s] for s in units.symbols() if not s.startswith("#")]
        self.num_units = max(real) + 1  # id 0 (<eps> or <blk>) is the blank
        self.oov = lang.oov
        self.lang_dir = lang.path

    @classmethod
    def from_inputs(cls, inputs: ObjectiveInputs) -> "CtcObjective":
        reject_lfmmi_inputs(inputs)
        reject_rnnt_loss(inputs, "CTC")
        if inputs.options:  # one config serves both objectives
            log.info("CTC: the LF-MMI loss options (%s) do not apply", ", ".join(sorted(inputs.options)))
        return cls(inputs.lang)

    @property
    def output_dim(self) -> int:
        return self.num_units

    @property
    def output_source(self) -> str:
        return f"the units of lang dir {self.lang_dir} (+ blank)"

    def checkpoint_info(self) -> Dict:
        return {"objective": self.name, "lang": str(self.lang_dir), "den_graph": ""}

    def _words(self, text: str, cut_id: str) -> List[str]:
        out = []
        for w in text.split():
            if w not in self.prons:
                if self.oov is None or self.oov not in self.prons:
                    raise FrugalError(f"cut {cut_id}: word {w!r} is not in {self.lang_dir}/lexiconp.txt "
                                      "(and no OOV word)")
                w = self.oov
            out.append(w)
        return out

    def __call__(self, model: torch.nn.Module, batch: Dict) -> Dict[str, torch.Tensor]:
        words = [self._words(t, c) for t, c in zip(batch["texts"], batch["cut_ids"])]
        graphs = lexicon_ctc_graphs(words, self.prons, blank=0, use_pron_probs=True)
        chain, _, out_lens = model(batch["features"], batch["feature_lens"])
        log_probs = chain.log_softmax(-1)
        per_utt = graph_ctc_loss(log_probs, out_lens, graphs, reduction="none")
        ok = torch.isfinite(per_utt)
        if not bool(ok.all()):
            log.warning("%d of %d utterances are too short for their transcript (left out), e.g. %s",
                        int((~ok).sum()), len(words), batch["cut_ids"][int((~ok).nonzero()[0])])
        frames = (out_lens.to(log_probs.device) * ok).sum().clamp(min=1).to(log_probs.dtype)
        loss = torch.where(ok, per_utt, 0.0).sum() / frames
        return {"loss": loss, "ctc": loss.detach()}
