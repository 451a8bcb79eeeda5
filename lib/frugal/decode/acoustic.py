"""The acoustic side of decoding: a trained model's frame scores, and its fit with a graph.

A chain (LF-MMI) model's output is used as log-likelihoods as it is (Kaldi's chain
decoding); a CTC model's goes through a log-softmax. Which one a checkpoint holds, and the
fingerprint of the den graph it was trained with (`frugal.graph.fingerprint`), are in the
checkpoint (`frugal.train` writes them); the decoding graph's fingerprint and its words.txt
hash are in GRAPH.json (`frugal compile-graph`). `check_graph_matches_model` compares them
by content, so that the check holds wherever the tool runs from.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch

from frugal.decode.graph import DecodingGraph
from frugal.dirs import GraphFile, load_checkpoint
from frugal.errors import FrugalError
from frugal.fsa.openfst import read_fst
from frugal.graph.fingerprint import checkpoint_fingerprint, file_sha256, first_difference, graph_fingerprint, show
from frugal.models import model_from_checkpoint

log = logging.getLogger(__name__)

OBJECTIVES = ("lfmmi", "ctc")


@dataclass
class AcousticModel:
    """A trained model in eval mode with what decoding needs to know of its checkpoint."""

    model: torch.nn.Module
    objective: str          # "lfmmi" or "ctc"
    path: str
    den_graph: str = ""     # the den graph it was trained with ("" for CTC or when unknown)
    fingerprint: Optional[Dict] = None  # what a graph must match; None: unknown (an old checkpoint)
    cmvn: str = "none"      # the feature normalisation it was trained on (frugal.data.cmvn)

    @property
    def num_outputs(self) -> int:
        return int(self.model.model_info()["config"]["num_pdfs"])

    @torch.no_grad()
    def log_likelihoods(self, features: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, T', D) frame scores for the decoder and their lengths T' (output frame rate)."""
        out, _xent, out_lengths = self.model(features, lengths)
        if self.objective == "ctc":
            out = out.log_softmax(-1)
        return out.float(), out_lengths


def load_acoustic_model(checkpoint: str, device: str = "cpu") -> AcousticModel:
    """The model of a checkpoint (final.pt or an epoch checkpoint); one that does not name
    its objective is taken as LF-MMI, frugal train's default."""
    state = load_checkpoint(checkpoint)
    objective = state.get("objective", "lfmmi")
    if objective not in OBJECTIVES:
        raise FrugalError(f"{checkpoint}: a {objective} model cannot be decoded with a graph "
                          f"(decodable: {', '.join(OBJECTIVES)})")
    model = model_from_checkpoint(state, where=str(checkpoint))
    fingerprint, den_graph = checkpoint_fingerprint(state, checkpoint)
    return AcousticModel(model.to(device).eval(), objective, str(checkpoint), den_graph, fingerprint,
                         state.get("cmvn", "none"))


def load_graph(path: str, device: str = "cpu") -> DecodingGraph:
    return DecodingGraph.from_openfst(read_fst(path), device)


def check_output_range(graph: DecodingGraph, graph_path: str, am: AcousticModel) -> None:
    """The graph reads output columns (pdf or token id = input label - 1) up to
    ``graph.max_label``: it must be below the model's number of outputs, or the search
    would index past the scores."""
    if graph.max_label >= am.num_outputs:
        raise FrugalError(f"graph {graph_path} reads pdf/token ids up to {graph.max_label} but model "
                          f"{am.path} has only {am.num_outputs} outputs: they were not built for each other")


def check_graph_matches_model(graph: DecodingGraph, graph_path: str, am: AcousticModel,
                              words: Optional[str] = None, skip_checks: bool = False) -> None:
    """One-line FrugalError, naming both files, when the graph cannot read the model's output.

    - GRAPH.json (frugal compile-graph) must exist; its topology must suit the objective
      (chain for LF-MMI, ctc for CTC);
    - a chain graph's context, HMM states, pdf count and pdf map hash must equal those of
      the den graph the model was trained with (the checkpoint's fingerprint), and its
      num_pdfs the model's number of outputs;
    - ``words`` must be the words.txt the graph was compiled with (its SHA-256);
    - last, `check_output_range`, which ``skip_checks`` does not skip (it would crash the
      search); with ``skip_checks`` the others only warn.

    The fingerprints come first: they name the field that differs, where the output range
    only says that something does. Where a side records nothing to compare (checkpoints and
    graphs from before fingerprints), a warning says so.
    """
    def refuse(message: str, hint: str = "") -> None:
        if not skip_checks:
            raise FrugalError(message + hint)
        log.warning("%s (--skip-checks: decoding anyway)", message)

    num_outputs, model_path = am.num_outputs, am.path
    gf = GraphFile(graph_path)
    if not gf.info_path.is_file():
        refuse(f"graph {graph_path} has no metadata {gf.info_path} (written by frugal compile-graph): "
               f"cannot check that it suits model {model_path}", "; --skip-checks decodes anyway")
        return check_output_range(graph, graph_path, am)
    info = gf.info
    topo = info.get("topo")
    expected = "chain" if am.objective == "lfmmi" else "ctc"
    if topo is not None and topo != expected:
        refuse(f"graph {graph_path} has topology {topo} but model {model_path} was trained "
               f"with {am.objective} (needs a {expected} graph)")
    elif topo == "chain" or (topo is None and am.objective == "lfmmi"):
        _check_fingerprints(graph_path, graph_fingerprint(gf), am, refuse)
        if "num_pdfs" in info and int(info["num_pdfs"]) != num_outputs:
            refuse(f"graph {graph_path} has {info['num_pdfs']} pdfs but model {model_path} has "
                   f"{num_outputs} outputs: they were not built for each other")
    if words is not None:
        _check_words(gf, graph_path, words, refuse)
    check_output_range(graph, graph_path, am)


def _check_fingerprints(graph_path: str, graph_fp: Dict, am: AcousticModel, refuse) -> None:
    if am.fingerprint is None:
        log.warning("model %s records no den graph fingerprint and its den graph %s is not found from here: "
                    "cannot check that graph %s has its context, HMM states and pdf map", am.path,
                    am.den_graph or "(unknown)", graph_path)
        return
    # 1- and 2-state pdf maps of a lang have equally many pdfs: the topology fields tell them apart.
    diff = first_difference(am.fingerprint, graph_fp)
    if diff is not None:
        name, ours, theirs = diff
        refuse(f"graph {graph_path} has {name} {show(name, theirs)} but model {am.path} was trained on den "
               f"graph {am.den_graph} with {name} {show(name, ours)}: they were not built for each other")
    elif "pdf_map_sha256" not in am.fingerprint or "pdf_map_sha256" not in graph_fp:
        log.warning("graph %s or model %s records no pdf map: cannot check that their pdf ids mean the same",
                    graph_path, am.path)


def _check_words(gf: GraphFile, graph_path: str, words: str, refuse) -> None:
    recorded = gf.info.get("words_sha256")
    if recorded is None:
        log.warning("graph %s: %s records no words.txt hash (compiled before frugal recorded it): cannot check "
                    "that %s is the graph's words.txt", graph_path, gf.info_path, words)
        return
    digest = file_sha256(words)
    if digest != recorded:
        refuse(f"words file {words} is not the words.txt graph {graph_path} was compiled with (sha256 "
               f"{show('sha256', digest)}, the graph's {show('sha256', recorded)}): every word would be wrong")
