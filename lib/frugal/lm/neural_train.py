"""Training the causal TCN word LM of `frugal.lm.neural` (the thesis's LM for LM uncertainty)."""
from __future__ import annotations

import copy
import logging
import math
import random
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch
from torch import nn
from tqdm import tqdm

from frugal.errors import BadValue, FrugalError
from frugal.fileio import PathLike
from frugal.lm.neural import (NeuralLm, TcnLm, TcnLmConfig, Vocabulary, pad_batch, check_device, length_batches,
                              score_encoded)
from frugal.lm.text import read_sentences

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    epochs: int = 10
    lr: float = 3e-3
    max_tokens: int = 512       # padded tokens per batch
    patience: int = 2           # epochs without a better dev perplexity before stopping
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "cpu"


def _mean_log_prob(model: TcnLm, encoded: List[List[int]], max_tokens: int) -> float:
    """Per-token natural-log prob of ``encoded`` (dropout off), sentence ends included."""
    with torch.no_grad():
        total = float(score_encoded(model, encoded, max_tokens).sum())
    return total / sum(len(s) + 1 for s in encoded)


def train_tcn_lm(train: Sequence[Sequence[str]], dev: Sequence[Sequence[str]], vocab: Vocabulary,
                 config: Optional[TcnLmConfig] = None, options: Optional[TrainOptions] = None) -> NeuralLm:
    """Adam on the cross-entropy of ``train``; the model of the best dev perplexity is kept.

    When an epoch does not improve the dev perplexity the learning rate is halved, and after
    ``patience`` such epochs training stops. Batches hold sentences of similar length; their
    order, the initial weights and the dropout masks depend only on ``options.seed``, so on
    the CPU a seed reproduces the model exactly (with the same number of threads); on CUDA,
    cuDNN's convolution backward need not be deterministic.
    """
    config = config or TcnLmConfig()
    options = options or TrainOptions()
    config.validate()
    if not train:
        raise ValueError("no training sentences")
    if not dev:
        raise ValueError("no dev sentences")
    device = torch.device(options.device)
    with torch.random.fork_rng(devices=[]):  # initialise on the CPU, from the seed alone
        torch.random.default_generator.manual_seed(options.seed)
        model = TcnLm(len(vocab), config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr)
    dropout_rng = torch.Generator(device=device)
    dropout_rng.manual_seed(options.seed)
    order_rng = random.Random(options.seed)

    train_enc = [vocab.encode(s) for s in train]
    dev_enc = [vocab.encode(s) for s in dev]
    lengths = [len(s) + 1 for s in train_enc]
    log.info("vocabulary %d words; %d train sentences (%d tokens), %d dev sentences; "
             "%d parameters, receptive field %d words", len(vocab), len(train_enc), sum(lengths),
             len(dev_enc), sum(p.numel() for p in model.parameters()), config.receptive_field)

    best_ppl = math.exp(-_mean_log_prob(model, dev_enc, options.max_tokens))
    log.info("epoch 0: dev ppl %.2f (untrained; uniform would be %d)", best_ppl, len(vocab) - 1)
    best_state = copy.deepcopy(model.state_dict())
    best_epoch, bad_epochs = 0, 0
    for epoch in range(1, options.epochs + 1):
        # Shuffle within equal lengths, then the batch order.
        order = sorted(order_rng.sample(range(len(train_enc)), len(train_enc)), key=lambda i: lengths[i])
        batches = length_batches(lengths, options.max_tokens, order)
        order_rng.shuffle(batches)
        # Dropout is on exactly where the generator is passed: the module mode plays no part.
        total_lp, total_tokens = 0.0, 0
        for batch in tqdm(batches, desc=f"nnlm epoch {epoch}", unit="batch", disable=None):
            inputs, targets, mask = pad_batch([train_enc[i] for i in batch], device)
            lp = model(inputs, dropout_rng).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            tokens = int(mask.sum())
            loss = -(lp * mask).sum() / tokens
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), options.grad_clip)
            optimizer.step()
            total_lp += -loss.item() * tokens
            total_tokens += tokens
        train_ppl = math.exp(-total_lp / total_tokens)
        dev_ppl = math.exp(-_mean_log_prob(model, dev_enc, options.max_tokens))
        log.info("epoch %d: train ppl %.2f (dropout on), dev ppl %.2f, lr %.2g",
                 epoch, train_ppl, dev_ppl, optimizer.param_groups[0]["lr"])
        if dev_ppl < best_ppl:
            best_ppl, best_epoch, bad_epochs = dev_ppl, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
            continue
        bad_epochs += 1
        if bad_epochs >= options.patience:
            log.info("dev ppl did not improve for %d epochs: stopping", bad_epochs)
            break
        for group in optimizer.param_groups:
            group["lr"] /= 2
    model.load_state_dict(best_state)
    log.info("kept epoch %d: dev ppl %.2f", best_epoch, best_ppl)
    return NeuralLm(model, vocab, {"epoch": best_epoch, "dev_ppl": best_ppl, "seed": options.seed,
                                   "num_train_sentences": len(train_enc)})


def train_nnlm(text: PathLike, dev_text: PathLike, output: PathLike, config: TcnLmConfig, options: TrainOptions,
               lang_dir: Optional[PathLike] = None, min_count: int = 1, has_uttid: bool = True,
               num_threads: int = 1) -> NeuralLm:
    """Train on the sentences of ``text``, stop early on ``dev_text``, save to ``output``. The
    vocabulary is the lang dir's words.txt (unknown words become its oov.txt word) or, without
    one, the training words seen ``min_count`` times plus ``<unk>``."""
    for name in ("epochs", "max_tokens", "patience"):
        if getattr(options, name) < 1:
            raise BadValue(name, getattr(options, name), "must be >= 1")
    check_device(options.device)
    config.validate()
    if num_threads > 0:
        torch.set_num_threads(num_threads)
    train, dev = (read_sentences(path, has_uttid) for path in (text, dev_text))
    for path, sentences in ((text, train), (dev_text, dev)):
        if not sentences:
            raise FrugalError(f"{path}: no sentences")
    vocab = Vocabulary.from_lang_dir(lang_dir) if lang_dir else Vocabulary.from_sentences(train, min_count)
    oovs = sum(w not in vocab for s in train for w in s)
    log.info("%s: %d sentences, %d words, %d of them outside the vocabulary (-> %s)",
             text, len(train), sum(len(s) for s in train), oovs, vocab.unk)
    lm = train_tcn_lm(train, dev, vocab, config, options)
    lm.save(output)
    log.info("wrote %s", output)
    return lm
