"""Semi-supervised learning: dropout sampling, uncertainty measures, supervision building."""
from frugal.semisup.lattices import (NbestErrorRates, NbestRescoreConfig, am_lm_supervision, am_supervision,
                                     combine_lattices, lm_supervision, nbest_error_rates, nnlm_rescore,
                                     normalize_lattice, regular_supervision, supervision_report,
                                     supervision_table, union_lattices)
from frugal.semisup.supervision import LatticeNumeratorBuilder, best_path_frame_weights, lattice_phone_graph

__all__ = ["NbestErrorRates", "NbestRescoreConfig", "am_lm_supervision", "am_supervision", "combine_lattices",
           "lm_supervision", "nbest_error_rates", "nnlm_rescore", "normalize_lattice", "regular_supervision",
           "supervision_report", "supervision_table", "union_lattices",
           "LatticeNumeratorBuilder", "best_path_frame_weights", "lattice_phone_graph"]
