"""Semi-supervised learning: uncertainty measures, supervision lattices, the thesis's tables."""
from frugal.semisup.lattices import (NbestErrorRates, NbestRescoreConfig, combine_lattices, nbest_error_rates,
                                     nnlm_rescore, normalize_lattice, supervision_table, union_lattices)
from frugal.semisup.supervision import KINDS, SupervisionOptions, make_supervision, supervision_report

__all__ = ["KINDS", "NbestErrorRates", "NbestRescoreConfig", "SupervisionOptions", "combine_lattices",
           "make_supervision", "nbest_error_rates", "nnlm_rescore", "normalize_lattice", "supervision_report",
           "supervision_table", "union_lattices"]
