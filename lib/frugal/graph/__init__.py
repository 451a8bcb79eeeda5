"""Decoding and training graphs: L, G, HCLG/HLG, CTC and chain HMM topologies, numerator and den graphs."""
from frugal.graph.chain import ChainLexicon, NumeratorBuilder, NumeratorGraph, NumeratorGraphs
from frugal.graph.den_graph import ChainDenGraph, make_den_graph, phone_lm_training_sequences

__all__ = ["ChainDenGraph", "ChainLexicon", "NumeratorBuilder", "NumeratorGraph", "NumeratorGraphs",
           "make_den_graph", "phone_lm_training_sequences"]
