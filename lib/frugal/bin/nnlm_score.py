"""Score sentences with a neural LM (frugal train-nnlm): natural-log probs, with MC-dropout samples.

Prints one line a sentence: ``uttid logprob`` (``--no-uttid``: ``logprob``), where logprob is
ln P(w1 .. wn </s> | <s>) with dropout off. With ``--dropout-samples K`` the line holds K
log-probs instead, each from its own dropout masks (reproducible with ``--seed``). Words
outside the LM's vocabulary are scored as its unknown word. The perplexity goes to the log.
"""
from __future__ import annotations

import torch

from frugal.lm.neural import score_text


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="checkpoint of frugal train-nnlm")
    p.add_argument("--text", required=True, help="text, 'uttid w1 w2 ...' a line")
    p.add_argument("--no-uttid", action="store_true", help="lines have no utterance id")
    p.add_argument("--dropout-samples", type=int, default=0,
                   help="K > 0: K log-probs a sentence, each with fresh dropout masks")
    p.add_argument("--seed", type=int, help="seed of the dropout masks (default: random)")
    p.add_argument("--max-tokens", type=int, default=20000, help="padded tokens per forward pass")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--num-threads", type=int, default=1,
                   help="CPU threads (a small model runs fastest on one; 0: torch's default)")


def run(args) -> None:
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    lines = score_text(args.model, args.text, not args.no_uttid, args.dropout_samples, args.seed, args.max_tokens,
                       args.device)
    if lines:
        print("\n".join(lines))
