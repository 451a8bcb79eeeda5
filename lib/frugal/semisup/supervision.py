"""LF-MMI numerators from supervision lattices, and per-frame derivative weights.

Numerator (Manohar et al. 2018 with the flat-start machinery of `frugal.graph.chain`):

1. the word lattice is pruned with ``prune_beam`` (Kaldi's lattice-prune before
   chain-get-supervision) and determinised, so that it is an epsilon-free word acceptor;
2. its weights become sequence-level log weights: ``-lattice_lm_scale * graph cost`` (Kaldi's
   ``--lattice-lm-scale``; the acoustic costs are dropped), shifted so that the path with
   the lowest graph cost has weight 1 (log 0): every path weight is then <= 1, as in a
   flat-start numerator, and a one-path lattice gives exactly the transcript's numerator;
3. each word arc becomes the alternatives of the word's pronunciations (weights: the
   lexicon's pronunciation probabilities), with optional silence at the start, between
   words and at the end with L.fst's semantics (probability ``sil_prob``; none after a
   pronunciation that ends in a silence phone), as `frugal.graph.chain.transcript_phone_graph`
   does for one word sequence;
4. the phone graph goes through the same biphone/HMM expansion and denominator
   normalisation as flat-start numerators (`expand_to_pdfs`, `compose_with_den`).

The result is a `NumeratorGraph` (batched: `NumeratorGraphs`), what `lfmmi_loss` takes.

The lattice's graph cost already holds the pronunciation and silence probabilities of its
best path's pronunciation (HCLG contains L), and step 3 multiplies in the lexicon's
probabilities of each alternative again: the lattice weight ranks word sequences, the
lexicon weights the pronunciations inside one, as in the flat-start numerator. The
lattice's alignments (time information) are not used: the numerator constrains word
sequences, not word times, like the flat-start numerator (Kaldi's lattice supervision
constrains phone times with a tolerance instead).

Derivative weights (Kaldi's ``--deriv-weights-scp`` from steps/best_path_weights.sh): the
weight of frame t is the lattice posterior of the label that the best path has at t (the
summed posterior of all lattice arcs whose alignment has that label at t), in [0, 1]:
frames where the lattice is sure of the best path get weight ~1, uncertain frames less.
Lattice labels are pdf id + 1 (chain HCLG) at the network's output (subsampled) frame rate,
so the weights are per output frame.

Training (`LatticeSupervision`): a lattice-supervised cut's numerator and frame weights
never change, so each is built the first time its cut is in a batch and kept; the lattice
is dropped then. Decode lattices carry acoustic costs multiplied by post_decode_acwt = 10
(Kaldi's chain convention), hence the acoustic scale 0.1 of pruning and posteriors.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from frugal.lattice.lattice import Lattice
from frugal.lattice.io import read_lattices
from frugal.lattice.determinize import determinize_lattice
from frugal.errors import FrugalError
from frugal.fileio import PathLike
from frugal.graph.chain import (ChainLexicon, NumeratorBuilder, NumeratorGraph, NumeratorGraphs, PhoneGraph,
                                compose_with_den, expand_to_pdfs, to_numerator)

DEFAULT_LATTICE_LM_SCALE = 0.5
DEFAULT_PRUNE_BEAM = 4.0  # Kaldi's semi-supervised recipe (lattice_prune_beam)
DEFAULT_ACOUSTIC_SCALE = 0.1  # decode lattices: acoustic costs x post_decode_acwt (10)


def word_lattice(lat: Lattice, prune_beam: Optional[float] = None, acoustic_scale: float = 1.0) -> Lattice:
    """An epsilon-free, word-deterministic compact lattice (pruned first with ``prune_beam``
    in the cost domain ``graph + acoustic_scale * acoustic``)."""
    return determinize_lattice(lat, prune_beam, 1.0, acoustic_scale)


def lattice_phone_graph(lat: Lattice, lexicon: ChainLexicon,
                        lattice_lm_scale: float = DEFAULT_LATTICE_LM_SCALE) -> PhoneGraph:
    """Steps 2 and 3 of the module docstring for an epsilon-free word lattice (e.g. the
    output of :func:`word_lattice`). Word ids without pronunciations map to the lexicon's
    OOV word; without one, they raise FrugalError."""
    if bool((lat.arcs[:, 3] == 0).any()):
        raise ValueError("the lattice has epsilon arcs: determinise it first (word_lattice)")
    p, sil = lexicon.sil_prob, lexicon.sil_phone
    use_sil = p > 0 and sil is not None
    lp_sil = math.log(p) if use_sil else -math.inf
    lp_nosil = math.log1p(-p) if use_sil else 0.0
    graph_costs = lat.weights[:, 0].astype(np.float64)
    final_graph = lat.finals[:, 0].astype(np.float64)
    # Graph-only Viterbi: best = -(lowest graph cost of a path); adding it to the graph
    # costs gives that path cost 0.
    _, _, best = lat.forward_backward(1.0, 0.0, viterbi=True)
    shift = best if math.isfinite(best) else 0.0

    arcs: List[Tuple[int, int, int, float, int]] = []
    num_states = 1
    finals: Dict[int, float] = {}

    def new_state() -> int:
        nonlocal num_states
        num_states += 1
        return num_states - 1

    # Per lattice state q > 0: B(q), reached after a word, and S(q), after a word that is
    # followed by the optional silence (S(q) -sil-> B(q)). The start has two entry points:
    # the start itself (no initial silence) and b0 after it.
    boundary = [0] + [new_state() for _ in range(1, lat.num_states)]
    pending_sil = [-1] * lat.num_states
    if use_sil:
        for q in range(1, lat.num_states):
            pending_sil[q] = new_state()
            arcs.append((pending_sil[q], boundary[q], sil, 0.0, 0))
    start_sources = [(0, lp_nosil)]
    if use_sil:
        b0 = new_state()
        arcs.append((0, b0, sil, lp_sil, 0))
        start_sources.append((b0, 0.0))

    def sources(q: int) -> List[Tuple[int, float]]:
        return start_sources if q == 0 else [(boundary[q], 0.0)]

    prons = _pronunciations(lat, lexicon)
    for k, (q, q2, _, word) in enumerate(lat.arcs.tolist()):
        w_lat = -lattice_lm_scale * graph_costs[k]
        for phones, prob in prons[word]:
            for src, extra in sources(q):
                cur, w, out = src, extra + math.log(prob) + w_lat, word
                for ph in phones[:-1]:
                    nxt = new_state()
                    arcs.append((cur, nxt, ph, w, out))
                    cur, w, out = nxt, 0.0, 0
                last = phones[-1]
                if not use_sil or last in lexicon.silence_phones:
                    arcs.append((cur, boundary[q2], last, w, out))
                else:
                    arcs.append((cur, boundary[q2], last, w + lp_nosil, out))
                    arcs.append((cur, pending_sil[q2], last, w + lp_sil, out))
    for q in np.nonzero(lat.is_final())[0].tolist():
        w_final = -lattice_lm_scale * (final_graph[q] + shift)
        for s, extra in sources(q):
            finals[s] = extra + w_final
    return PhoneGraph(num_states, 0, arcs, finals)


def _pronunciations(lat: Lattice, lexicon: ChainLexicon) -> Dict[int, List[Tuple[Tuple[int, ...], float]]]:
    out = {}
    for word in np.unique(lat.arcs[:, 3]).tolist():
        prons = lexicon.prons.get(word)
        if not prons:
            if lexicon.oov is None or not lexicon.prons.get(lexicon.words.get(lexicon.oov)):
                raise FrugalError(f"lattice word id {word} has no pronunciation in the lexicon (and no OOV word)")
            prons = lexicon.prons[lexicon.words[lexicon.oov]]
        out[word] = prons
    return out


class LatticeNumeratorBuilder:
    """Numerators from supervision lattices (see the module docstring), with the lexicon,
    pdf map and normalisation of a flat-start `NumeratorBuilder`."""

    def __init__(self, builder: NumeratorBuilder, lattice_lm_scale: float = DEFAULT_LATTICE_LM_SCALE,
                 prune_beam: Optional[float] = None, acoustic_scale: float = 1.0):
        self.builder = builder
        self.lattice_lm_scale = lattice_lm_scale
        self.prune_beam = prune_beam
        self.acoustic_scale = acoustic_scale

    def build(self, lat: Lattice) -> NumeratorGraph:
        """The numerator of one lattice; a graph without a final state when the lattice has
        no path or the normalisation removes every path."""
        words = word_lattice(lat, self.prune_beam, self.acoustic_scale)
        phone_graph = lattice_phone_graph(words, self.builder.lexicon, self.lattice_lm_scale)
        g = expand_to_pdfs(phone_graph, self.builder.pdf_map, transition_probs=False)
        if self.builder.norm is not None:
            g = compose_with_den(g, self.builder.norm)
        return to_numerator(g)

    def build_batch(self, lats: Sequence[Lattice]) -> NumeratorGraphs:
        return NumeratorGraphs.from_graphs([self.build(lat) for lat in lats])


def frame_label_posteriors(lat: Lattice, graph_scale: float = 1.0, acoustic_scale: float = 1.0
                           ) -> List[Dict[int, float]]:
    """Per frame, {input label: posterior} summed over the lattice's arcs (and final
    alignments) that have that label at that frame (Kaldi's lattice-to-post)."""
    alpha, beta, total = lat.forward_backward(graph_scale, acoustic_scale)
    if total == -math.inf:
        return []
    frames = lat.state_frames()
    final_frames = {s: (len(lat.final_alignments.get(s, ())) if lat.is_compact else 0)
                    for s in np.nonzero(lat.is_final())[0].tolist()}
    num_frames = int(max((frames[s] + n for s, n in final_frames.items()), default=0))
    post: List[Dict[int, float]] = [dict() for _ in range(num_frames)]

    def add(start: int, labels, p: float) -> None:
        for i, label in enumerate(labels):
            post[start + i][label] = post[start + i].get(label, 0.0) + p

    arc_post = lat.arc_posteriors(graph_scale, acoustic_scale)
    for k, (src, _, ilabel, _) in enumerate(lat.arcs.tolist()):
        labels = lat.alignments[k] if lat.is_compact else ((ilabel,) if ilabel else ())
        if labels and arc_post[k] > 0:
            add(int(frames[src]), labels, float(arc_post[k]))
    if lat.is_compact:
        final_costs = lat.final_costs(graph_scale, acoustic_scale)
        for s, ali in lat.final_alignments.items():
            add(int(frames[s]), ali, math.exp(alpha[s] - final_costs[s] - total))
    return post


def best_path_frame_weights(lat: Lattice, graph_scale: float = 1.0, acoustic_scale: float = 1.0) -> torch.Tensor:
    """Float32 [T]: each frame's posterior of the best path's label there (see the module
    docstring); an empty tensor for a lattice without a path."""
    best = lat.best_path(graph_scale, acoustic_scale)
    if best is None:
        return torch.zeros(0)
    post = frame_label_posteriors(lat, graph_scale, acoustic_scale)
    if len(post) != len(best.ilabels):
        raise ValueError(f"lattice paths differ in length ({len(post)} vs {len(best.ilabels)} frames)")
    weights = [min(1.0, post[t].get(label, 0.0)) for t, label in enumerate(best.ilabels)]
    return torch.tensor(weights, dtype=torch.float32)


@dataclass
class LatticeSupervisionOptions:
    """How supervision lattices become LF-MMI supervision (Kaldi's semi-supervised egs)."""

    lattice_lm_scale: float = DEFAULT_LATTICE_LM_SCALE
    prune_beam: Optional[float] = DEFAULT_PRUNE_BEAM  # None: no pruning
    acoustic_scale: float = DEFAULT_ACOUSTIC_SCALE
    frame_weights: bool = False  # best-path frame weights as derivative weights
    weight: float = 1.0  # scale of these cuts' gradient (Kaldi's unsup egs weight)

    def validate(self) -> None:
        if self.lattice_lm_scale < 0:
            raise FrugalError(f"lattice LM scale {self.lattice_lm_scale}: must be >= 0")
        if self.prune_beam is not None and self.prune_beam <= 0:
            raise FrugalError(f"lattice prune beam {self.prune_beam}: must be > 0 (or none)")
        if self.acoustic_scale <= 0:
            raise FrugalError(f"lattice acoustic scale {self.acoustic_scale}: must be > 0")
        if self.weight < 0:
            raise FrugalError(f"lattice supervision weight {self.weight}: must be >= 0")


def read_supervision_lattices(paths: Sequence[PathLike], option: str = "--supervision-lattices"
                               ) -> Dict[str, Lattice]:
    """Cut id -> lattice from lattice files (binary ``.pt`` or Kaldi text) and directories
    of ``lat.*.pt`` (a decode or combine-lattices directory). A cut in two files, a missing
    path or a directory without lattices raise FrugalError naming ``option``."""
    out: Dict[str, Lattice] = {}
    source: Dict[str, Path] = {}
    for path in map(Path, paths):
        if path.is_dir():
            files = sorted(path.glob("lat.*.pt"), key=_job_number)
            if not files:
                raise FrugalError(f"{option} {path}: no lat.*.pt lattice files in this directory")
        elif path.is_file():
            files = [path]
        else:
            raise FrugalError(f"{option} {path}: no such file or directory")
        for f in files:
            for cut_id, lat in read_lattices(f).items():
                if cut_id in out:
                    raise FrugalError(f"{option}: cut {cut_id} has a lattice in {source[cut_id]} and in {f}")
                out[cut_id] = lat
                source[cut_id] = f
    return out


def _job_number(path: Path) -> Tuple[int, str]:
    """lat.J.pt sorts by J (lat.2.pt before lat.10.pt)."""
    middle = path.name[len("lat."):-len(".pt")]
    return (int(middle), "") if middle.isdigit() else (-1, middle)


class LatticeSupervision:
    """Numerators and frame weights of lattice-supervised cuts, each built once (see the
    module docstring); ``build_seconds`` is the time spent building them so far."""

    def __init__(self, lattices: Mapping[str, Lattice], builder: NumeratorBuilder,
                 options: Optional[LatticeSupervisionOptions] = None) -> None:
        self.options = options or LatticeSupervisionOptions()
        self.options.validate()
        self.numerators = LatticeNumeratorBuilder(builder, self.options.lattice_lm_scale,
                                                  self.options.prune_beam, self.options.acoustic_scale)
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
                weights = best_path_frame_weights(lat, 1.0, self.options.acoustic_scale)
                if weights.numel() == 0:  # no path: the loss leaves the cut out anyway
                    weights = None
            self.build_seconds += time.perf_counter() - t0
            entry = self._built[cut_id] = (num, weights)
            del self._pending[cut_id]
        return entry


__all__ = ["LatticeNumeratorBuilder", "LatticeSupervision", "LatticeSupervisionOptions", "read_supervision_lattices",
           "lattice_phone_graph",
           "word_lattice", "frame_label_posteriors", "best_path_frame_weights", "DEFAULT_LATTICE_LM_SCALE",
           "DEFAULT_PRUNE_BEAM", "DEFAULT_ACOUSTIC_SCALE"]
