"""Training objectives: LF-MMI (chain) with its regularisers, CTC (token sequences or graph CTC)."""
from frugal.losses.ctc import ctc_expand, ctc_loss, graph_ctc_loss, lexicon_ctc_graphs, token_acceptor
from frugal.losses.lfmmi import lfmmi_loss, numerator_log_likelihood

__all__ = ["lfmmi_loss", "numerator_log_likelihood", "ctc_loss", "graph_ctc_loss",
           "lexicon_ctc_graphs", "ctc_expand", "token_acceptor"]
