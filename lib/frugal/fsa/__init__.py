"""The k2-style FSA core in plain PyTorch: FSA tensors, dense intersection, Viterbi."""
from frugal.fsa.ctc import ctc_graph, ctc_graphs
from frugal.fsa.dense import DenseFsaVec
from frugal.fsa.fsa import Fsa, FsaVec, load_fsa
from frugal.fsa.intersect import BestPaths, arc_posteriors, best_paths, intersect_dense
from frugal.fsa.openfst import from_openfst, to_openfst

__all__ = [
    "Fsa", "FsaVec", "load_fsa", "DenseFsaVec",
    "intersect_dense", "arc_posteriors", "best_paths", "BestPaths",
    "from_openfst", "to_openfst", "ctc_graph", "ctc_graphs",
]
