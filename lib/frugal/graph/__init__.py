"""Decoding and training graphs over OpenFst (kaldifst): L, G, CTC and HMM topologies, context, HLG/HCLG."""
from frugal.graph.chain import (ChainDenGraph, ChainLexicon, NumeratorBuilder, NumeratorGraph,
                                NumeratorGraphs, make_den_graph, phone_lm_training_sequences)

__all__ = ["ChainDenGraph", "ChainLexicon", "NumeratorBuilder", "NumeratorGraph", "NumeratorGraphs",
           "make_den_graph", "phone_lm_training_sequences"]
