"""n-gram language models: the phone LM of the LF-MMI denominator, word ARPA LMs.

- ``phone_lm``: Kaldi chain-est-phone-lm semantics (un-smoothed, hard backoff to a state budget).
- ``kneser_ney``: interpolated modified Kneser-Ney word LMs with count-cutoff and
  relative-entropy (Stolcke) pruning.
- ``arpa``: the back-off model, ARPA reading/writing, SRILM-style perplexity.
"""
from frugal.lm.arpa import ArpaLm, Perplexity, perplexity, read_arpa
from frugal.lm.kneser_ney import estimate_kn, kn_discounts, prune, to_arpa, train_kn_lm
from frugal.lm.phone_lm import PhoneLm, estimate_phone_lm

__all__ = ["ArpaLm", "Perplexity", "perplexity", "read_arpa", "estimate_kn", "kn_discounts", "prune",
           "to_arpa", "train_kn_lm", "PhoneLm", "estimate_phone_lm"]

# The neural (TCN) word LM for LM-uncertainty supervision: see frugal.lm.neural.
from frugal.lm.neural import NeuralLm, TcnLmConfig, Vocabulary  # noqa: E402
from frugal.lm.neural_train import TrainOptions, train_tcn_lm  # noqa: E402

__all__ += ["NeuralLm", "TcnLmConfig", "TrainOptions", "Vocabulary", "train_tcn_lm"]
