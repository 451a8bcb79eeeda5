"""Train the causal TCN word LM (neural LM for LM-uncertainty supervision lattices).

The text has one sentence a line, ``uttid w1 w2 ...`` (a Kaldi ``text`` file) or plain
words with ``--no-uttid``. The vocabulary is the lang dir's words.txt (unknown words become
its oov.txt word) or, without ``--lang``, the training words seen ``--min-count`` times plus
``<unk>``. Training keeps the epoch with the best ``--dev-text`` perplexity.
"""
from __future__ import annotations

from frugal.lm.neural import TcnLmConfig
from frugal.lm.neural_train import TrainOptions, train_nnlm


def add_arguments(p) -> None:
    p.add_argument("--text", required=True, help="training text")
    p.add_argument("--dev-text", required=True, help="held-out text for early stopping")
    p.add_argument("--no-uttid", action="store_true", help="lines have no utterance id")
    p.add_argument("--lang", help="lang dir (frugal prepare-lang): vocabulary from its words.txt")
    p.add_argument("--min-count", type=int, default=1,
                   help="without --lang: training words seen fewer times become <unk>")
    p.add_argument("--output", required=True, help="checkpoint to write, e.g. exp/nnlm/model.pt")
    p.add_argument("--layers", dest="num_layers", type=int, default=3,
                   help="causal conv layers (dilations 1, 2, 4, ...)")
    p.add_argument("--embed-dim", type=int, default=128)
    p.add_argument("--hidden-dim", type=int, default=256)
    p.add_argument("--kernel-size", type=int, default=3)
    p.add_argument("--dropout", type=float, default=0.2, help="after the embedding and every layer")
    p.add_argument("--no-tie-embeddings", action="store_true",
                   help="a separate output matrix instead of the input embeddings")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    p.add_argument("--max-tokens", type=int, default=512, help="padded tokens per batch")
    p.add_argument("--patience", type=int, default=2,
                   help="epochs without a better dev perplexity before stopping (each halves the lr)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--num-threads", type=int, default=1,
                   help="CPU threads (a small model trains fastest on one; 0: torch's default)")


def run(args) -> None:
    config = TcnLmConfig(num_layers=args.num_layers, embed_dim=args.embed_dim, hidden_dim=args.hidden_dim,
                         kernel_size=args.kernel_size, dropout=args.dropout, tie_embeddings=not args.no_tie_embeddings)
    options = TrainOptions(epochs=args.epochs, lr=args.lr, max_tokens=args.max_tokens, patience=args.patience,
                           seed=args.seed, device=args.device)
    train_nnlm(args.text, args.dev_text, args.output, config, options, args.lang, args.min_count, not args.no_uttid,
               args.num_threads)
