"""The acoustic side of decoding: a trained model's frame scores, and its fit with a graph.

A chain (LF-MMI) model's output is used as log-likelihoods as it is (Kaldi's chain
decoding); a CTC model's goes through a log-softmax. Which one a checkpoint holds, and the
den graph it was trained with, are in the checkpoint (`frugal.train` writes them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Tuple

import torch

from frugal.decode.graph import DecodingGraph
from frugal.dirs import GraphFile, load_checkpoint
from frugal.errors import FrugalError
from frugal.fsa.openfst import read_fst
from frugal.models import model_from_checkpoint

OBJECTIVES = ("lfmmi", "ctc")


@dataclass
class AcousticModel:
    """A trained model in eval mode with what decoding needs to know of its checkpoint."""

    model: torch.nn.Module
    objective: str          # "lfmmi" or "ctc"
    path: str
    den_graph: str = ""     # the den graph it was trained with ("" for CTC or when unknown)
    den_info: Dict = field(default_factory=dict)  # that den graph's topology, as training recorded it

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
    return AcousticModel(model.to(device).eval(), objective, str(checkpoint), str(state.get("den_graph", "") or ""),
                         dict(state.get("den_info", {}) or {}))


def load_graph(path: str, device: str = "cpu") -> DecodingGraph:
    return DecodingGraph.from_openfst(read_fst(path), device)


def check_graph_matches_model(graph: DecodingGraph, graph_path: str, am: AcousticModel) -> None:
    """One-line FrugalError, naming both files, when the graph cannot read the model's output.

    - the graph reads output columns (pdf or token id = input label - 1) up to
      ``graph.max_label``: it must be below the model's number of outputs;
    - with GRAPH.json of frugal compile-graph: its topology must suit the objective
      (chain for LF-MMI, ctc for CTC) and a chain graph's num_pdfs must equal the model's;
    - a chain graph's context and HMM states must equal those of the model's den graph
      (recorded in the checkpoint, or in the den graph's JSON for older checkpoints);
    - a chain graph's pdf_map.txt must equal the den graph's (both come from the same
      tree-less PdfMap of the lang's phones, so they differ only when the graph and the
      model were built from different lang directories or topologies).
    """
    num_outputs, model_path = am.num_outputs, am.path
    if graph.max_label >= num_outputs:
        raise FrugalError(f"graph {graph_path} reads pdf/token ids up to {graph.max_label} but model "
                          f"{model_path} has only {num_outputs} outputs: they were not built for each other")
    gf = GraphFile(graph_path)
    info = gf.info
    topo = info.get("topo")
    if topo is not None:
        expected = "chain" if am.objective == "lfmmi" else "ctc"
        if topo != expected:
            raise FrugalError(f"graph {graph_path} has topology {topo} but model {model_path} was trained "
                              f"with {am.objective} (needs a {expected} graph)")
        if topo == "chain" and int(info.get("num_pdfs", num_outputs)) != num_outputs:
            raise FrugalError(f"graph {graph_path} has {info['num_pdfs']} pdfs but model {model_path} has "
                              f"{num_outputs} outputs: they were not built for each other")
    if am.objective != "lfmmi" or topo not in (None, "chain"):
        return
    den = GraphFile(am.den_graph) if am.den_graph else None
    den_info = am.den_info or (den.info if den is not None else {})
    if topo == "chain":
        # The pdf maps of 1- and 2-state topologies look alike (two pdfs a phone), so the
        # topology is compared as compile-graph and make-den-graph wrote it down.
        for name in ("context", "hmm_states"):
            if name in info and name in den_info and info[name] != den_info[name]:
                raise FrugalError(f"graph {graph_path} has {name} {info[name]} but model {model_path} "
                                  f"was trained on den graph {am.den_graph} with {name} {den_info[name]}: "
                                  f"compile the graph with the den graph's topology")
    graph_map = gf.pdf_map_text()
    den_map = den_info.get("pdf_map") or (den.pdf_map_text() if den is not None else None)
    if graph_map is not None and den_map is not None and graph_map != den_map:
        raise FrugalError(f"graph {graph_path}: its {gf.pdf_map_path} differs from the pdf map of model "
                          f"{model_path}'s den graph {am.den_graph}: pdf ids do not mean the same")
