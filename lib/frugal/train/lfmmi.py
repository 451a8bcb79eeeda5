"""The LF-MMI objective: flat-start (Kaldi's chain e2e) and semi-supervised (lattice) supervision.

Each utterance's numerator is built from its transcript inside the loss (`NumeratorBuilder`:
every pronunciation, optional silence, normalised by the den graph; about a millisecond an
utterance), so no stage precomputes and stores numerator graphs; `lfmmi_loss` adds the
leaky HMM, the output l2 and the cross-entropy regulariser on the model's xent head.

With supervision lattices (Kaldi's chain semi-supervised recipe, Manohar et al. 2018), a
cut that has a lattice is supervised by the lattice's numerator instead
(`frugal.lattice.numerator`: pruned, determinised, graph costs scaled by the lattice
LM scale, through the lexicon), built the first time the cut is in a batch and kept, with
optionally the lattice's best-path frame weights and a weight on its gradient as
derivative weights (Kaldi's deriv weights and unsup egs weight). Decode lattices carry
acoustic costs x 10 (post_decode_acwt), hence the lattice acoustic scale 0.1.

Values are per frame at the model's output rate; utterances whose supervision cannot be
aligned to their length are left out of the loss and logged.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch

from frugal.data.cuts import has_transcript
from frugal.dirs import GraphFile
from frugal.errors import BadValue, FrugalError
from frugal.graph.chain import ChainLexicon, NumeratorBuilder, NumeratorGraph, NumeratorGraphs
from frugal.graph.den_graph import ChainDenGraph
from frugal.graph.fingerprint import den_graph_fingerprint
from frugal.lattice.numerator import DEFAULT_LATTICE_LM_SCALE, LatticeNumeratorBuilder
from frugal.lattice.io import read_lattice_inputs
from frugal.lattice.lattice import Lattice
from frugal.lattice.paths import best_path_frame_weights
from frugal.losses import lfmmi_loss
from frugal.train.objective import Objective, ObjectiveInputs, register, reject_rnnt_loss

log = logging.getLogger(__name__)

LOSS_OPTIONS = {"leaky_hmm_coefficient": 0.1, "l2_regularize": 0.0005, "xent_regularize": 0.1}


@dataclass
class LatticeSupervisionOptions:
    """How supervision lattices become LF-MMI supervision (Kaldi's semi-supervised egs)."""

    lattice_lm_scale: float = DEFAULT_LATTICE_LM_SCALE
    prune_beam: Optional[float] = 4.0   # Kaldi's semi-supervised recipe (lattice_prune_beam); None: no pruning
    acoustic_scale: float = 0.1         # decode lattices: acoustic costs x post_decode_acwt (10)
    frame_weights: bool = False         # best-path frame weights as derivative weights
    weight: float = 1.0                 # scale of these cuts' gradient (Kaldi's unsup egs weight)

    def validate(self) -> None:
        # Named as frugal train's options are.
        if self.lattice_lm_scale < 0:
            raise BadValue("lattice_lm_scale", self.lattice_lm_scale, "must be >= 0")
        if self.weight < 0:
            raise BadValue("unsup_weight", self.weight, "must be >= 0")
        if self.prune_beam is not None and self.prune_beam <= 0:
            raise BadValue("lattice_prune_beam", self.prune_beam, "must be > 0 (or none)")
        if self.acoustic_scale <= 0:
            raise BadValue("lattice_acoustic_scale", self.acoustic_scale, "must be > 0")


class LatticeSupervision:
    """Numerators and frame weights of lattice-supervised cuts, each built once;
    ``build_seconds`` is the time spent building them so far."""

    def __init__(self, lattices: Mapping[str, Lattice], builder: NumeratorBuilder,
                 options: Optional[LatticeSupervisionOptions] = None) -> None:
        self.options = options or LatticeSupervisionOptions()
        self.options.validate()
        self.numerators = LatticeNumeratorBuilder(builder, self.options.lattice_lm_scale, self.options.prune_beam,
                                                  self.options.acoustic_scale)
        self._pending: Dict[str, Lattice] = dict(lattices)
        self._built: Dict[str, Tuple[NumeratorGraph, Optional[torch.Tensor]]] = {}
        self.build_seconds = 0.0

    def __contains__(self, cut_id: str) -> bool:
        return cut_id in self._built or cut_id in self._pending

    def __len__(self) -> int:
        return len(self._built) + len(self._pending)

    @property
    def num_built(self) -> int:
        return len(self._built)

    def get(self, cut_id: str) -> Tuple[NumeratorGraph, Optional[torch.Tensor]]:
        """(numerator, best-path frame weights [T'] or None) of a cut that has a lattice;
        None weights without ``options.frame_weights`` or for a lattice without a path."""
        entry = self._built.get(cut_id)
        if entry is None:
            lat = self._pending[cut_id]
            t0 = time.perf_counter()
            try:
                num = self.numerators.build(lat)
            except FrugalError as e:
                raise FrugalError(f"supervision lattice of cut {cut_id}: {e}") from None
            weights = None
            if self.options.frame_weights:
                w = best_path_frame_weights(lat, 1.0, self.options.acoustic_scale)
                weights = torch.from_numpy(w) if w.size else None  # no path: the loss leaves the cut out
            self.build_seconds += time.perf_counter() - t0
            entry = self._built[cut_id] = (num, weights)
            del self._pending[cut_id]
        return entry

    def restrict(self, cut_ids: set) -> None:
        """Keep the lattices of these cuts only."""
        self._pending = {k: v for k, v in self._pending.items() if k in cut_ids}


@register
class LfmmiObjective(Objective):
    """LF-MMI (see the module docstring); ``lattices``: cut id -> supervision lattice (word
    ids of the lexicon's lang), those cuts supervised by their lattice."""

    name = "lfmmi"

    def __init__(self, lexicon: ChainLexicon, den: ChainDenGraph, leaky_hmm_coefficient: float = 0.1,
                 l2_regularize: float = 0.0005, xent_regularize: float = 0.1,
                 lattices: Optional[Mapping[str, Lattice]] = None,
                 lattice_options: Optional[LatticeSupervisionOptions] = None, info: Optional[Dict] = None) -> None:
        self.den = den
        self.builder = NumeratorBuilder(lexicon, den.pdf_map, den.graph)
        self.leaky_hmm_coefficient = leaky_hmm_coefficient
        self.l2_regularize = l2_regularize
        self.xent_regularize = xent_regularize
        self.lattices = LatticeSupervision(lattices, self.builder, lattice_options) if lattices else None
        self.info = info or {}
        self._reported_build_cost = False

    @classmethod
    def from_inputs(cls, inputs: ObjectiveInputs) -> "LfmmiObjective":
        reject_rnnt_loss(inputs, "LF-MMI")
        unknown = sorted(set(inputs.options) - set(LOSS_OPTIONS))
        if unknown:
            raise BadValue("loss", ", ".join(unknown), f"unknown LF-MMI loss option(s) (known: {', '.join(LOSS_OPTIONS)})")
        if inputs.den_graph is None:
            raise BadValue("den_graph", None, "is required for LF-MMI")
        den_file = GraphFile(inputs.den_graph)
        if not den_file.path.is_file():
            raise BadValue("den_graph", inputs.den_graph, "no such file")
        options = LatticeSupervisionOptions(**inputs.lattice_options)
        options.validate()
        lattices = (read_lattice_inputs(inputs.supervision_lattices, "--supervision-lattices")
                    if inputs.supervision_lattices else None)
        den = ChainDenGraph.load(inputs.den_graph)
        # By content, not by path: decode and align compare it wherever they are run from.
        info = {"lang": str(inputs.lang), "den_graph": str(inputs.den_graph),
                "den_fingerprint": den_graph_fingerprint(inputs.den_graph, den),
                "supervision_lattices": list(inputs.supervision_lattices)}
        return cls(ChainLexicon.from_lang_dir(inputs.lang), den,
                   **{k: float(v) for k, v in inputs.options.items()}, lattices=lattices,
                   lattice_options=options, info=info)

    @property
    def output_dim(self) -> int:
        return self.den.num_pdfs

    @property
    def output_source(self) -> str:
        return f"den graph {self.info.get('den_graph', '')}".rstrip()

    def checkpoint_info(self) -> Dict:
        return {"objective": self.name, **self.info}

    def select_cuts(self, train_cuts, valid_cuts, where: str = "the training cuts") -> None:
        """The lattices of training and validation cuts only (with a warning for the others);
        every cut without a lattice must have a transcript."""
        if self.lattices is None:
            return
        wanted = {c.id for c in train_cuts} | ({c.id for c in valid_cuts} if valid_cuts is not None else set())
        unused = [k for k in self.lattices._pending if k not in wanted]
        if unused:
            log.warning("supervision lattices: %d lattice(s) of cuts that are not training or validation cuts "
                        "are not used, e.g. %s", len(unused), unused[0])
        for cuts, name in ((train_cuts, where), (valid_cuts, "the validation cuts")):
            bare = [c.id for c in cuts or [] if c.id not in self.lattices and not has_transcript(c)]
            if bare:
                more = f" (and {len(bare) - 1} more)" if len(bare) > 1 else ""
                raise FrugalError(f"{name}: cut {bare[0]}{more} has neither a transcript nor a supervision lattice")
        self.lattices.restrict(wanted)

    def describe(self, train_cuts) -> Optional[str]:
        if self.lattices is None:
            return None
        on_lattices = [c for c in train_cuts if c.id in self.lattices]
        o = self.lattices.options
        return (f"{len(on_lattices)} of {len(train_cuts)} training cuts are supervised by lattices "
                f"({sum(has_transcript(c) for c in on_lattices)} of them also have a transcript, not used), the "
                f"others by their transcripts; lattice LM scale {o.lattice_lm_scale:g}, prune beam {o.prune_beam}, "
                f"acoustic scale {o.acoustic_scale:g}, frame weights {'on' if o.frame_weights else 'off'}, "
                f"weight {o.weight:g}")

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

