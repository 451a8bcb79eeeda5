"""Score sentences with a neural LM (frugal train-nnlm): natural-log probs, with MC-dropout samples.

Prints one line a sentence: ``uttid logprob`` (``--no-uttid``: ``logprob``), where logprob is
ln P(w1 .. wn </s> | <s>) with dropout off. With ``--dropout-samples K`` the line holds K
log-probs instead, each from its own dropout masks (reproducible with ``--seed``). Words
outside the LM's vocabulary are scored as its unknown word. The perplexity goes to the log.
"""
from __future__ import annotations

import argparse
import logging
from typing import Optional

import torch

from frugal.errors import FrugalError
from frugal.lm.neural import NeuralLm
from frugal.lm.text import read_sentences

log = logging.getLogger("frugal.nnlm_score")


def read_uttids(path: str):
    with open(path, encoding="utf-8") as f:
        return [line.split()[0] for line in f if line.split()]


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="frugal nnlm-score", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="checkpoint of frugal train-nnlm")
    parser.add_argument("--text", required=True, help="text, 'uttid w1 w2 ...' a line")
    parser.add_argument("--no-uttid", action="store_true", help="lines have no utterance id")
    parser.add_argument("--dropout-samples", type=int, default=0,
                        help="K > 0: K log-probs a sentence, each with fresh dropout masks")
    parser.add_argument("--seed", type=int, help="seed of the dropout masks (default: random)")
    parser.add_argument("--max-tokens", type=int, default=20000, help="padded tokens per forward pass")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--num-threads", type=int, default=1,
                        help="CPU threads (a small model runs fastest on one; 0: torch's default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    if args.dropout_samples < 0:
        raise FrugalError("--dropout-samples must be >= 0")
    if args.max_tokens < 1:
        raise FrugalError("--max-tokens must be >= 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise FrugalError(f"--device {args.device}: CUDA is not available")
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    lm = NeuralLm.load(args.model, args.device)
    sentences = read_sentences(args.text, has_uttid=not args.no_uttid)
    keys = None if args.no_uttid else read_uttids(args.text)
    if args.dropout_samples:
        scores = lm.sentence_log_probs(sentences, dropout=True, seed=args.seed,
                                       num_samples=args.dropout_samples, max_tokens=args.max_tokens).T
    else:
        scores = lm.sentence_log_probs(sentences, max_tokens=args.max_tokens).unsqueeze(1)
    lines = []
    for i, row in enumerate(scores.tolist()):
        values = " ".join(f"{x:.6f}" for x in row)
        lines.append(values if keys is None else f"{keys[i]} {values}")
    if lines:
        print("\n".join(lines))
    if sentences:
        log.info("%s: %s", args.text, lm.perplexity(sentences).summary())
    return 0
