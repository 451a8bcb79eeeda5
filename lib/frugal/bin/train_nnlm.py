"""Train the causal TCN word LM (neural LM for LM-uncertainty supervision lattices).

The text has one sentence a line, ``uttid w1 w2 ...`` (a Kaldi ``text`` file) or plain
words with ``--no-uttid``. The vocabulary is the lang dir's words.txt (unknown words become
its oov.txt word) or, without ``--lang``, the training words seen ``--min-count`` times plus
``<unk>``. Training keeps the epoch with the best ``--dev-text`` perplexity.
"""
from __future__ import annotations

import argparse
import logging
from typing import Optional

import torch

from frugal.errors import FrugalError
from frugal.lm.neural import TcnLmConfig, TrainOptions, Vocabulary, train_tcn_lm
from frugal.lm.text import read_sentences

log = logging.getLogger("frugal.train_nnlm")


def read_nonempty(path: str, has_uttid: bool):
    sentences = read_sentences(path, has_uttid)
    if not sentences:
        raise FrugalError(f"{path}: no sentences")
    return sentences


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="frugal train-nnlm", description=__doc__.split("\n")[0])
    parser.add_argument("--text", required=True, help="training text")
    parser.add_argument("--dev-text", required=True, help="held-out text for early stopping")
    parser.add_argument("--no-uttid", action="store_true", help="lines have no utterance id")
    parser.add_argument("--lang", help="lang dir (frugal prepare-lang): vocabulary from its words.txt")
    parser.add_argument("--min-count", type=int, default=1,
                        help="without --lang: training words seen fewer times become <unk>")
    parser.add_argument("--output", required=True, help="checkpoint to write, e.g. exp/nnlm/model.pt")
    parser.add_argument("--layers", type=int, default=3, help="causal conv layers (dilations 1, 2, 4, ...)")
    parser.add_argument("--embed-dim", type=int, default=128)
    parser.add_argument("--hidden-dim", type=int, default=256)
    parser.add_argument("--kernel-size", type=int, default=3)
    parser.add_argument("--dropout", type=float, default=0.2, help="after the embedding and every layer")
    parser.add_argument("--no-tie-embeddings", action="store_true",
                        help="a separate output matrix instead of the input embeddings")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    parser.add_argument("--max-tokens", type=int, default=512, help="padded tokens per batch")
    parser.add_argument("--patience", type=int, default=2,
                        help="epochs without a better dev perplexity before stopping (each halves the lr)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--num-threads", type=int, default=1,
                        help="CPU threads (a small model trains fastest on one; 0: torch's default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    for name in ("epochs", "max_tokens", "patience"):
        if getattr(args, name) < 1:
            raise FrugalError(f"--{name.replace('_', '-')} must be >= 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise FrugalError(f"--device {args.device}: CUDA is not available")
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    config = TcnLmConfig(num_layers=args.layers, embed_dim=args.embed_dim, hidden_dim=args.hidden_dim,
                         kernel_size=args.kernel_size, dropout=args.dropout,
                         tie_embeddings=not args.no_tie_embeddings)
    config.validate()
    has_uttid = not args.no_uttid
    train = read_nonempty(args.text, has_uttid)
    dev = read_nonempty(args.dev_text, has_uttid)
    if args.lang:
        vocab = Vocabulary.from_lang_dir(args.lang)
    else:
        vocab = Vocabulary.from_sentences(train, args.min_count)
    oovs = sum(w not in vocab for s in train for w in s)
    log.info("%s: %d sentences, %d words, %d of them outside the vocabulary (-> %s)",
             args.text, len(train), sum(len(s) for s in train), oovs, vocab.unk)
    options = TrainOptions(epochs=args.epochs, lr=args.lr, max_tokens=args.max_tokens,
                           patience=args.patience, seed=args.seed, device=args.device)
    lm = train_tcn_lm(train, dev, vocab, config, options)
    lm.save(args.output)
    log.info("wrote %s", args.output)
    return 0
