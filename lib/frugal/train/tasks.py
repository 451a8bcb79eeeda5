"""Training tasks: the loss callables that tie a model, its supervision and an objective together.

`Trainer` calls ``loss_fn(model, batch)`` with a batch of `FeatureDataset` (features,
feature_lens, cut_ids, texts, ...). The tasks here build each utterance's supervision
graph from its transcript inside the call, so that no stage has to precompute and store
numerator graphs (a flat-start numerator costs about a millisecond per utterance):

- `LfmmiTask`: flat-start LF-MMI (Kaldi's chain e2e) with a `ChainDenGraph`: numerators
  from `NumeratorBuilder` normalised by the denominator, `lfmmi_loss` with the leaky HMM,
  output l2 and the cross-entropy regulariser on the model's xent head. With supervision
  lattices (semi-supervised training, Kaldi's chain semisup recipe), a cut that has a
  lattice gets the lattice's numerator instead of its transcript's (built once and
  cached: `frugal.semisup.supervision.LatticeSupervision`), optionally with the lattice's
  best-path frame weights and a weight on its gradient as derivative weights.
- `CtcTask`: CTC over the units of a lang directory (phones of `frugal prepare-lang`, or
  characters/BPE pieces of `frugal prepare-units`), id 0 being the blank; every
  pronunciation of a word is allowed (graph CTC, `lexicon_ctc_graphs`), and the model's
  chain output goes through a log-softmax.

Both return per-frame values (frames at the model's output rate) and log utterances whose
supervision cannot be aligned to their length (they are left out of the loss).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from frugal.lattice.lattice import Lattice
from frugal.errors import FrugalError
from frugal.graph.chain import ChainDenGraph, ChainLexicon, NumeratorBuilder, NumeratorGraphs
from frugal.lang.lexicon import read_lexicon
from frugal.lang.symbols import SymbolTable
from frugal.losses import graph_ctc_loss, lexicon_ctc_graphs, lfmmi_loss
from frugal.semisup.supervision import LatticeSupervision, LatticeSupervisionOptions

log = logging.getLogger("frugal.train.tasks")

LFMMI_OPTIONS = {"leaky_hmm_coefficient": 0.1, "l2_regularize": 0.0005, "xent_regularize": 0.1}


class LfmmiTask:
    """LF-MMI loss callable (see the module docstring).

    ``lattices``: cut id -> supervision lattice (word ids of the lexicon's lang); those
    cuts are supervised by their lattice as ``lattice_options`` say, every other cut by its
    transcript.
    """

    def __init__(self, lexicon: ChainLexicon, den: ChainDenGraph, leaky_hmm_coefficient: float = 0.1,
                 l2_regularize: float = 0.0005, xent_regularize: float = 0.1,
                 lattices: Optional[Mapping[str, Lattice]] = None,
                 lattice_options: Optional[LatticeSupervisionOptions] = None) -> None:
        self.den = den
        self.builder = NumeratorBuilder(lexicon, den.pdf_map, den.graph)
        self.leaky_hmm_coefficient = leaky_hmm_coefficient
        self.l2_regularize = l2_regularize
        self.xent_regularize = xent_regularize
        self.lattices = LatticeSupervision(lattices, self.builder, lattice_options) if lattices else None
        self._reported_build_cost = False

    @property
    def output_dim(self) -> int:
        return self.den.num_pdfs

    def numerators(self, cut_ids: Sequence[str], texts: Sequence[str]
                   ) -> Tuple[NumeratorGraphs, Dict[int, Optional[torch.Tensor]]]:
        """The batch's numerators in batch order, and {row: best-path frame weights or None}
        of its lattice-supervised cuts."""
        graphs, lattice_rows = [], {}
        for row, (cut_id, text) in enumerate(zip(cut_ids, texts)):
            if self.lattices is not None and cut_id in self.lattices:
                num, weights = self.lattices.get(cut_id)
                lattice_rows[row] = weights
            else:
                num = self.builder.build(text.split())
            graphs.append(num)
        return NumeratorGraphs.from_graphs(graphs), lattice_rows

    def frame_weights(self, lattice_rows: Dict[int, Optional[torch.Tensor]], cut_ids: Sequence[str],
                      out_lens: torch.Tensor, num_frames: int) -> Optional[torch.Tensor]:
        """Derivative weights (B, T'): 1 for transcript cuts, the lattice options' weight
        times the best-path frame weights (if any) for lattice cuts; None when all are 1."""
        if not lattice_rows:
            return None
        options = self.lattices.options
        if options.weight == 1.0 and not options.frame_weights:
            return None
        weights = torch.ones(len(cut_ids), num_frames)
        for row, best_path in lattice_rows.items():
            if best_path is None:
                weights[row] = options.weight
                continue
            n = int(out_lens[row])
            if best_path.numel() != n:
                raise FrugalError(f"cut {cut_ids[row]}: its supervision lattice has {best_path.numel()} frames "
                                  f"but the model gives {n} output frames (frame weights need lattices "
                                  "decoded at this model's frame rate)")
            weights[row, :n] = options.weight * best_path
        return weights

    def __call__(self, model: torch.nn.Module, batch: Dict) -> Dict[str, torch.Tensor]:
        cut_ids = batch["cut_ids"]
        num_graphs, lattice_rows = self.numerators(cut_ids, batch["texts"])
        chain, xent, out_lens = model(batch["features"], batch["feature_lens"])
        weights = self.frame_weights(lattice_rows, cut_ids, out_lens, chain.shape[1])
        values = lfmmi_loss(chain, out_lens, num_graphs.fsas, self.den.graph, xent,
                            leaky_hmm_coefficient=self.leaky_hmm_coefficient,
                            l2_regularize=self.l2_regularize, xent_regularize=self.xent_regularize,
                            frame_weights=weights)
        skipped = int(values["skipped"])
        if skipped:
            log.warning("%d of %d utterances have no numerator path of their length (left out), e.g. %s",
                        skipped, len(cut_ids), cut_ids[0])
        self._report_build_cost()
        # Per-frame components only: the trainer averages every value weighted by frames.
        return {k: values[k] for k in ("loss", "objf", "num", "den", "l2", "xent")}

    def _report_build_cost(self) -> None:
        lats = self.lattices
        if lats is None or self._reported_build_cost or lats.num_built < len(lats):
            return
        self._reported_build_cost = True
        log.info("built the numerators of all %d supervision lattices in %.1f s (%.1f ms a lattice)",
                 len(lats), lats.build_seconds, 1000 * lats.build_seconds / max(len(lats), 1))


class CtcTask:
    """CTC loss callable over a lang directory's units (see the module docstring)."""

    def __init__(self, lang_dir) -> None:
        lang_dir = Path(lang_dir)
        for name in ("phones.txt", "words.txt", "lexiconp.txt"):
            if not (lang_dir / name).is_file():
                raise FrugalError(f"{lang_dir}: not a lang directory (no {name})")
        units = SymbolTable.read(lang_dir / "phones.txt")
        lexicon = read_lexicon(lang_dir / "lexiconp.txt", with_probs=True)
        self.prons: Dict[str, list] = {}
        for p in lexicon.prons:
            self.prons.setdefault(p.word, []).append((tuple(units[x] for x in p.phones), p.prob))
        # Disambiguation symbols (#0, #1, ...) come last in Kaldi's phones.txt; they are no units.
        real = [units[s] for s in units.symbols() if not s.startswith("#")]
        self.num_units = max(real) + 1  # id 0 (<eps> or <blk>) is the blank
        oov_file = lang_dir / "oov.txt"
        self.oov = oov_file.read_text().split()[0] if oov_file.is_file() else None
        self.lang_dir = lang_dir

    @property
    def output_dim(self) -> int:
        return self.num_units

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


def make_task(objective: str, lang_dir, den_graph: Optional[str] = None,
              options: Optional[Dict] = None, lattices: Optional[Mapping[str, Lattice]] = None,
              lattice_options: Optional[LatticeSupervisionOptions] = None):
    """The task of ``objective`` ("lfmmi" needs ``den_graph``; ``options`` are LF-MMI's;
    ``lattices`` and ``lattice_options`` are `LfmmiTask`'s)."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(LFMMI_OPTIONS))
    if unknown:
        raise FrugalError(f"loss options: unknown option(s) {', '.join(unknown)} "
                          f"(known: {', '.join(LFMMI_OPTIONS)})")
    if objective == "lfmmi":
        if den_graph is None:
            raise FrugalError("--den-graph is required for --objective lfmmi")
        if not Path(den_graph).is_file():
            raise FrugalError(f"--den-graph {den_graph}: no such file")
        return LfmmiTask(ChainLexicon.from_lang_dir(lang_dir), ChainDenGraph.load(den_graph),
                         **{k: float(v) for k, v in options.items()}, lattices=lattices,
                         lattice_options=lattice_options)
    if objective == "ctc":
        if lattices:
            raise FrugalError("supervision lattices are for --objective lfmmi only")
        if options:  # one config serves both objectives
            log.info("CTC: the LF-MMI loss options (%s) do not apply", ", ".join(sorted(options)))
        return CtcTask(lang_dir)
    raise FrugalError(f"--objective {objective}: must be lfmmi or ctc")
