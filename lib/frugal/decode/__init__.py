"""Decoding: drivers, lattices, n-best lists, alignment, scoring, confidences."""
from frugal.decode.decoder import DecodeResult, Decoder, DecoderConfig, DecodingGraph
from frugal.decode.lattice import Lattice, LatticePath
from frugal.decode.lattice_io import read_lattices, write_lattices
from frugal.decode.lattice_ops import (BackoffLm, determinize_lattice, lattice_to_ctm, lm_rescore, nbest,
                                       oracle_path, word_posteriors)

__all__ = [
    "Decoder", "DecoderConfig", "DecodingGraph", "DecodeResult",
    "Lattice", "LatticePath", "read_lattices", "write_lattices",
    "determinize_lattice", "nbest", "oracle_path", "word_posteriors", "lattice_to_ctm",
    "BackoffLm", "lm_rescore",
]
