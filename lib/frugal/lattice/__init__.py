"""Lattices: Kaldi-style (graph, acoustic) lattices, their I/O, determinisation, paths, rescoring."""
from frugal.lattice.determinize import determinize_lattice
from frugal.lattice.io import read_lattices, write_lattices
from frugal.lattice.lattice import Lattice, LatticePath
from frugal.lattice.paths import lattice_to_ctm, nbest, oracle_path, word_posteriors, word_sequences
from frugal.lattice.rescore import BackoffLm, lm_rescore

__all__ = [
    "Lattice", "LatticePath", "read_lattices", "write_lattices", "determinize_lattice",
    "nbest", "oracle_path", "word_posteriors", "word_sequences", "lattice_to_ctm", "BackoffLm", "lm_rescore",
]
