"""Training objectives: LF-MMI (chain) with its regularisers, CTC (token sequences or graph CTC),
and the RNN-T losses of pruned transducer training (full, simple, pruned)."""
from frugal.losses.ctc import ctc_expand, ctc_loss, graph_ctc_loss, lexicon_ctc_graphs, token_acceptor
from frugal.losses.lfmmi import lfmmi_loss, numerator_log_likelihood
from frugal.losses.rnnt import (do_rnnt_pruning, get_rnnt_prune_ranges, make_boundary, rnnt_loss,
                                rnnt_loss_pruned, rnnt_loss_simple)

__all__ = ["lfmmi_loss", "numerator_log_likelihood", "ctc_loss", "graph_ctc_loss",
           "lexicon_ctc_graphs", "ctc_expand", "token_acceptor", "rnnt_loss", "rnnt_loss_simple",
           "rnnt_loss_pruned", "get_rnnt_prune_ranges", "do_rnnt_pruning", "make_boundary"]
