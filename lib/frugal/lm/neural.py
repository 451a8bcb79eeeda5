"""A neural word LM for "LM uncertainty": a causal temporal convolutional network (TCN).

The thesis (Vyas 2022, ch. 3) rescores the dropout-off decoding lattice N times with a
word LM whose dropout stays on, and combines the rescored lattices into a supervision
that carries the LM's uncertainty. Its LM is a 3-layer TCN; this module is that model,
and its (Monte-Carlo dropout) scoring; `frugal.lm.neural_train` trains it.

Model: ``<s> w1 .. wn`` is embedded, then ``num_layers`` residual layers of dilated causal
1-D convolutions (dilation 1, 2, 4, ...: the receptive field is
``1 + (kernel_size - 1) * (2**num_layers - 1)`` words) predict ``w1 .. wn </s>``, each
position from the words before it only (the convolutions pad on the left only).
Dropout follows the embedding and every layer. The softmax covers every word of the
vocabulary, ``</s>`` and the unknown word, but not ``<s>``, which is never predicted.

Monte-Carlo dropout draws its masks from an explicit ``torch.Generator`` instead of the
global RNG, so a seed reproduces a sample exactly and scoring leaves the caller's RNG alone.
Every element of every batch row gets its own mask, so repeating a batch K times in one
forward pass gives K independent dropout samples.

Checkpoints hold only tensors and primitive containers (``torch.load(weights_only=True)``):
``{"kind": "FrugalNeuralLm", "config": {...}, "vocab": [words], "unk": word,
"state_dict": {...}, "train_info": {...}}``.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from frugal.errors import BadValue, FrugalError
from frugal.fileio import PathLike, load_weights_only, save_weights_only
from frugal.lang.lang import Lang
from frugal.lm.arpa import BOS, EOS, UNK
from frugal.lm.text import read_sentences

log = logging.getLogger(__name__)

CHECKPOINT_KIND = "FrugalNeuralLm"


class Vocabulary:
    """Word <-> index. Index 0 is ``<s>`` (input only), 1 is ``</s>``; output j is word j + 1."""

    def __init__(self, words: Sequence[str], unk: str):
        words = list(words)
        if words[:2] != [BOS, EOS] or unk not in words[2:]:
            raise ValueError("a vocabulary starts with <s>, </s> and contains its unknown word")
        if len(set(words)) != len(words):
            raise ValueError("words of a vocabulary must be distinct")
        self.words = words
        self.unk = unk
        self._index = {w: i for i, w in enumerate(words)}
        self.unk_index = self._index[unk]

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self._index

    def index(self, word: str) -> int:
        return self._index.get(word, self.unk_index)

    def encode(self, sentence: Sequence[str]) -> List[int]:
        return [self._index.get(w, self.unk_index) for w in sentence]

    @property
    def output_words(self) -> List[str]:
        """The words of the softmax, in column order (``</s>`` first)."""
        return self.words[1:]

    @classmethod
    def from_words(cls, words: Sequence[str], unk: str = UNK) -> "Vocabulary":
        """``<s>``, ``</s>``, ``unk``, then ``words`` (sorted, specials dropped)."""
        rest = sorted(set(words) - {BOS, EOS, unk})
        return cls([BOS, EOS, unk] + rest, unk)

    @classmethod
    def from_sentences(cls, sentences: Sequence[Sequence[str]], min_count: int = 1,
                       unk: str = UNK) -> "Vocabulary":
        """The words seen at least ``min_count`` times."""
        counts: Dict[str, int] = {}
        for s in sentences:
            for w in s:
                counts[w] = counts.get(w, 0) + 1
        return cls.from_words([w for w, c in counts.items() if c >= min_count], unk)

    @classmethod
    def from_lang_dir(cls, lang_dir: PathLike) -> "Vocabulary":
        """The words of ``words.txt`` (without ``<eps>`` and ``#k``); the unknown word from oov.txt."""
        lang = Lang(lang_dir, need=("words.txt",))
        table = lang.words
        words = [w for w in table.symbols() if w != "<eps>" and not w.startswith("#")]
        unk = UNK
        oov_txt = lang.dir.file("oov.txt")
        if oov_txt.is_file():
            lines = oov_txt.read_text(encoding="utf-8").split()
            if len(lines) != 1:
                raise FrugalError(f"{oov_txt}: expected one word")
            unk = lines[0]
            if unk not in table:
                raise FrugalError(f"{oov_txt}: OOV word {unk!r} is not in {lang.dir.file('words.txt')}")
        return cls.from_words(words, unk)


@dataclass
class TcnLmConfig:
    num_layers: int = 3
    embed_dim: int = 128
    hidden_dim: int = 256
    kernel_size: int = 3
    dropout: float = 0.2
    tie_embeddings: bool = True

    def validate(self) -> None:
        for name in ("num_layers", "embed_dim", "hidden_dim", "kernel_size"):
            if getattr(self, name) < 1:
                raise BadValue(name, getattr(self, name), "must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise BadValue("dropout", self.dropout, "must be in [0, 1)")

    @property
    def receptive_field(self) -> int:
        return 1 + (self.kernel_size - 1) * (2 ** self.num_layers - 1)


def sampled_dropout(x: torch.Tensor, p: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Inverted dropout with masks from ``generator``; the identity when ``generator`` is None."""
    if generator is None or p == 0.0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= p
    return x * keep / (1.0 - p)


class CausalConvLayer(nn.Module):
    """``out = skip(x) + relu(conv(x))`` with a dilated conv that sees only the past."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int, dilation: int):
        super().__init__()
        self.left_context = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(in_dim, out_dim, kernel_size, dilation=dilation)
        self.skip = nn.Conv1d(in_dim, out_dim, 1, bias=False) if in_dim != out_dim else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, T) -> (B, C_out, T); output t depends on inputs <= t only."""
        y = torch.relu(self.conv(F.pad(x, (self.left_context, 0))))
        return (x if self.skip is None else self.skip(x)) + y


class TcnLm(nn.Module):
    """Inputs (B, T) vocabulary indices from ``<s>`` on; output (B, T, V - 1) log-probs."""

    def __init__(self, vocab_size: int, config: TcnLmConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(vocab_size, config.embed_dim)
        dims = [config.embed_dim] + [config.hidden_dim] * config.num_layers
        self.layers = nn.ModuleList(
            CausalConvLayer(dims[i], dims[i + 1], config.kernel_size, dilation=2 ** i)
            for i in range(config.num_layers))
        self.norm = nn.LayerNorm(config.hidden_dim)
        if config.tie_embeddings:
            # Output j is vocabulary word j + 1: the embedding rows without <s>.
            self.to_embed = nn.Linear(config.hidden_dim, config.embed_dim)
            self.output_bias = nn.Parameter(torch.zeros(vocab_size - 1))
        else:
            self.output = nn.Linear(config.hidden_dim, vocab_size - 1)
        nn.init.normal_(self.embedding.weight, std=config.embed_dim ** -0.5)

    def forward(self, inputs: torch.Tensor, dropout_rng: Optional[torch.Generator] = None) -> torch.Tensor:
        """Log-probs of the next word at every position; dropout only when ``dropout_rng`` is given."""
        p = self.config.dropout
        x = sampled_dropout(self.embedding(inputs), p, dropout_rng).transpose(1, 2)
        for layer in self.layers:
            x = sampled_dropout(layer(x), p, dropout_rng)
        h = self.norm(x.transpose(1, 2))
        if self.config.tie_embeddings:
            logits = F.linear(self.to_embed(h), self.embedding.weight[1:], self.output_bias)
        else:
            logits = self.output(h)
        return logits.log_softmax(dim=-1)


def length_batches(lengths: Sequence[int], max_tokens: int, order: Sequence[int]) -> List[List[int]]:
    """Cut ``order`` (indices sorted by length) into batches of at most ``max_tokens`` padded tokens.

    A single sentence longer than ``max_tokens`` is a batch of its own.
    """
    batches: List[List[int]] = []
    batch: List[int] = []
    longest = 0
    for i in order:
        n = lengths[i]
        if batch and max(longest, n) * (len(batch) + 1) > max_tokens:
            batches.append(batch)
            batch, longest = [], 0
        batch.append(i)
        longest = max(longest, n)
    if batch:
        batches.append(batch)
    return batches


def pad_batch(encoded: Sequence[Sequence[int]], device: torch.device):
    """Inputs ``<s> w1..wn`` and targets ``w1..wn </s>`` (output indices), padded at the end.

    The padding (index 0) follows the last position of a sentence, which cannot see it.
    """
    T = max(len(s) for s in encoded) + 1
    inputs = torch.zeros((len(encoded), T), dtype=torch.long)
    targets = torch.zeros((len(encoded), T), dtype=torch.long)
    mask = torch.zeros((len(encoded), T), dtype=torch.bool)
    for b, s in enumerate(encoded):
        n = len(s)
        inputs[b, 1:n + 1] = torch.tensor(s, dtype=torch.long)
        targets[b, :n] = torch.tensor(s, dtype=torch.long) - 1
        targets[b, n] = 0  # </s>: vocabulary index 1, output index 0
        mask[b, :n + 1] = True
    return inputs.to(device), targets.to(device), mask.to(device)


def score_encoded(model: TcnLm, encoded: Sequence[Sequence[int]], max_tokens: int,
                  dropout_rng: Optional[torch.Generator] = None, num_samples: int = 1) -> torch.Tensor:
    """(num_samples, N) float64 sentence log-probs of encoded sentences, in their order.

    Sentences of similar length share a batch; with several samples each batch is repeated
    ``num_samples`` times in one forward pass (every row draws its own dropout masks).
    """
    lengths = [len(s) + 1 for s in encoded]
    device = model.embedding.weight.device
    out = torch.zeros(num_samples, len(encoded), dtype=torch.float64)
    order = sorted(range(len(encoded)), key=lambda i: lengths[i])
    for batch in length_batches(lengths, max(1, max_tokens // num_samples), order):
        inputs, targets, mask = pad_batch([encoded[i] for i in batch], device)
        if num_samples > 1:
            inputs, targets, mask = (x.repeat(num_samples, 1) for x in (inputs, targets, mask))
        lp = model(inputs, dropout_rng).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        out[:, batch] = (lp.double() * mask).sum(dim=1).view(num_samples, len(batch)).cpu()
    return out


@dataclass
class NeuralLmPerplexity:
    """Natural-log totals; every word is scored (OOVs as the unknown word) and counted."""

    num_sentences: int
    num_words: int
    num_oovs: int
    log_prob: float

    @property
    def perplexity(self) -> float:
        """Over the words and the sentence ends."""
        n = self.num_words + self.num_sentences
        return math.exp(-self.log_prob / n) if n else math.nan

    def summary(self) -> str:
        return (f"{self.num_sentences} sentences, {self.num_words} words, {self.num_oovs} OOVs "
                f"(scored as the unknown word); logprob(ln)= {self.log_prob:.6g} "
                f"ppl= {self.perplexity:.6g}")


class NeuralLm:
    """A trained TCN LM with its vocabulary: sentence scoring with or without MC dropout."""

    def __init__(self, model: TcnLm, vocab: Vocabulary, train_info: Optional[Dict] = None):
        self.model = model.eval()
        self.vocab = vocab
        self.train_info = dict(train_info or {})  # numbers and strings: kept epoch, dev ppl, ...

    @property
    def device(self) -> torch.device:
        return self.model.embedding.weight.device

    @property
    def config(self) -> TcnLmConfig:
        return self.model.config

    def to(self, device) -> "NeuralLm":
        self.model.to(device)
        return self

    def save(self, path: PathLike) -> None:
        d = {"kind": CHECKPOINT_KIND, "config": asdict(self.config), "vocab": list(self.vocab.words),
             "unk": self.vocab.unk,
             "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
             "train_info": dict(self.train_info)}
        save_weights_only(path, d)

    @staticmethod
    def load(path: PathLike, device="cpu") -> "NeuralLm":
        d = load_weights_only(path, "a frugal neural LM checkpoint (frugal train-nnlm)", ("kind", CHECKPOINT_KIND))
        try:
            known = {f.name for f in fields(TcnLmConfig)}
            config = TcnLmConfig(**{k: v for k, v in d["config"].items() if k in known})
            vocab = Vocabulary(d["vocab"], d["unk"])
            model = TcnLm(len(vocab), config)
            model.load_state_dict(d["state_dict"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            msg = str(e).splitlines()[0] if str(e) else ""
            raise FrugalError(f"{path}: damaged neural LM checkpoint ({type(e).__name__}: {msg})") from None
        return NeuralLm(model, vocab, d.get("train_info")).to(device)

    def _generator(self, seed: Optional[int]) -> torch.Generator:
        g = torch.Generator(device=self.device)
        if seed is None:
            g.seed()  # fresh masks on every call
        else:
            g.manual_seed(seed)
        return g

    @torch.no_grad()
    def sentence_log_probs(self, sentences: Sequence[Sequence[str]], dropout: bool = False,
                           seed: Optional[int] = None, num_samples: Optional[int] = None,
                           max_tokens: int = 20000) -> torch.Tensor:
        """ln P(w1 .. wn </s> | <s>) of each sentence (unknown words score as the unknown word).

        Returns (N,) float64, or (num_samples, N) when ``num_samples`` is given: each sample
        with its own dropout masks, computed by repeating the batch. ``dropout=False`` is the
        deterministic eval-mode model; ``dropout=True`` keeps eval mode but for dropout, with
        masks from a generator seeded with ``seed`` (a fresh random seed when None).
        """
        if num_samples is not None and num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if num_samples is not None and num_samples > 1 and not dropout:
            raise ValueError("several samples without dropout would all be equal: set dropout=True")
        rng = self._generator(seed) if dropout else None
        encoded = [self.vocab.encode(s) for s in sentences]
        out = score_encoded(self.model, encoded, max_tokens, rng, num_samples or 1)
        return out if num_samples is not None else out[0]

    @torch.no_grad()
    def next_word_log_probs(self, sentence: Sequence[str]) -> torch.Tensor:
        """(n + 1, len(vocab.output_words)): row i is ln P(. | <s> w1 .. wi) (dropout off)."""
        inputs = torch.tensor([[0] + self.vocab.encode(sentence)], device=self.device)
        return self.model(inputs)[0].double().cpu()

    def perplexity(self, sentences: Sequence[Sequence[str]]) -> NeuralLmPerplexity:
        log_prob = float(self.sentence_log_probs(sentences).sum())
        return NeuralLmPerplexity(len(sentences), sum(len(s) for s in sentences),
                                  sum(w not in self.vocab for s in sentences for w in s), log_prob)


def score_text(model: PathLike, text: PathLike, has_uttid: bool = True, dropout_samples: int = 0,
               seed: Optional[int] = None, max_tokens: int = 20000, device: str = "cpu") -> List[str]:
    """Lines ``uttid logprob`` (``logprob`` without uttids) of every sentence of ``text``:
    ln P(w1 .. wn </s> | <s>) with dropout off, or ``dropout_samples`` of them, each with
    its own dropout masks (reproducible with ``seed``). The perplexity goes to the log."""
    if dropout_samples < 0:
        raise BadValue("dropout_samples", dropout_samples, "must be >= 0")
    if max_tokens < 1:
        raise BadValue("max_tokens", max_tokens, "must be >= 1")
    check_device(device)
    lm = NeuralLm.load(model, device)
    sentences = read_sentences(text, has_uttid=has_uttid)
    keys = [line[0] for line in read_sentences(text, has_uttid=False)] if has_uttid else None
    if dropout_samples:
        scores = lm.sentence_log_probs(sentences, dropout=True, seed=seed, num_samples=dropout_samples,
                                       max_tokens=max_tokens).T
    else:
        scores = lm.sentence_log_probs(sentences, max_tokens=max_tokens).unsqueeze(1)
    lines = []
    for i, row in enumerate(scores.tolist()):
        values = " ".join(f"{x:.6f}" for x in row)
        lines.append(values if keys is None else f"{keys[i]} {values}")
    if sentences:
        log.info("%s: %s", text, lm.perplexity(sentences).summary())
    return lines


def check_device(device: str) -> None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BadValue("device", device, "CUDA is not available")
