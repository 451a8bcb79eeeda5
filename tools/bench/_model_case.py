"""A real decoding case for decode_bench.py: a trained chain model's outputs on real cuts, and
a trigram HCLG over a few thousand words, built with frugal's own commands.

The vocabulary is the model's lexicon plus CMUdict words spelt only with the lexicon's
phones (drawn with a seed), so the graph has the model's phone set and pdf map. The LM text
is the given transcripts (so the cuts' own words are in it) plus sentences drawn from a
Zipf unigram over the whole vocabulary, as a task's LM has many more n-grams than its
test sentences use; `frugal make-word-lm` estimates the trigram and `--max-ngrams` caps it.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import List, Tuple

import torch

from frugal.bin.main import main as frugal_main
from frugal.data.cuts import load_cuts, read_transcripts
from frugal.data.dataset import FeatureDataset
from frugal.decode.acoustic import load_acoustic_model
from frugal.lang.cmudict_lexicon import cmudict_lexicon, load_cmudict


def _run(*argv: str) -> None:
    if frugal_main(list(argv)) != 0:
        raise SystemExit(f"decode_bench: frugal {argv[0]} failed")


def big_lexicon(lexicon: Path, num_words: int, seed: int) -> Tuple[str, List[str]]:
    """The lexicon's lines plus CMUdict words (upper case, stress removed) in its phones,
    up to ``num_words`` words; returns the text and the vocabulary's regular words."""
    lines = [line for line in lexicon.read_text().splitlines() if line.strip()]
    words = {line.split()[0] for line in lines}
    phones = {p for line in lines for p in line.split()[1:]}
    cmu = load_cmudict()
    candidates = sorted(w.upper() for w in cmu if w.isalpha() and w.upper() not in words)
    extra, _ = cmudict_lexicon(candidates, cmu=cmu)
    ok = [w for w in extra.words() if all(ph in phones for p in extra.prons_of(w) for ph in p.phones)]
    need = max(0, num_words - len(words))
    if need > len(ok):
        raise SystemExit(f"decode_bench: CMUdict has only {len(ok)} words in the lexicon's phones, "
                         f"{need} wanted")
    chosen = set(random.Random(seed).sample(ok, need))
    lines += [f"{w} {' '.join(p.phones)}" for w in sorted(chosen) for p in extra.prons_of(w)]
    vocab = sorted(w for w in words | chosen if not w.startswith("<"))
    return "\n".join(lines) + "\n", vocab


def lm_text(transcripts: List[List[str]], vocab: List[str], sentences: int, seed: int) -> str:
    rng = random.Random(seed)
    order = vocab[:]
    rng.shuffle(order)
    zipf = [1.0 / (r + 1) for r in range(len(order))]
    lines = [" ".join(t) for t in transcripts if t]
    for _ in range(sentences):
        lines.append(" ".join(rng.choices(order, zipf, k=rng.randint(3, 14))))
    return "\n".join(lines) + "\n"


def build_graph(tmp: Path, lang: Path, den_graph: Path, lm_cuts: Path, num_words: int, sentences: int,
                max_ngrams: int, sil_prob: float, seed: int) -> Tuple[Path, int]:
    """HCLG.fst of the big vocabulary and its trigram; returns its path and vocabulary size."""
    text, vocab = big_lexicon(lang / "lexicon.txt", num_words, seed)
    (tmp / "lexicon.txt").write_text(text)
    _run("prepare-lang", "--lexicon", str(tmp / "lexicon.txt"), "--output-dir", str(tmp / "lang"),
         "--sil-phone", "SIL", "--sil-prob", str(sil_prob))
    if (tmp / "lang" / "phones.txt").read_text() != (lang / "phones.txt").read_text():
        raise SystemExit(f"decode_bench: the big lexicon's phones.txt differs from {lang}/phones.txt")
    transcripts = list(read_transcripts(lm_cuts).values())
    (tmp / "lm.txt").write_text(lm_text(transcripts, vocab, sentences, seed))
    (tmp / "vocab.txt").write_text("\n".join(vocab) + "\n")
    _run("make-word-lm", "--text", str(tmp / "lm.txt"), "--no-uttid", "--order", "3", "--vocab",
         str(tmp / "vocab.txt"), "--max-ngrams", str(max_ngrams), "--output", str(tmp / "lm.arpa"))
    _run("compile-graph", "--lang", str(tmp / "lang"), "--arpa", str(tmp / "lm.arpa"), "--topo", "chain",
         "--den-graph", str(den_graph), "--output", str(tmp / "graph" / "HCLG.fst"))
    return tmp / "graph" / "HCLG.fst", len(vocab)


def model_scores(model: Path, cuts: Path, max_utts: int) -> Tuple[List[torch.Tensor], List[str]]:
    """The model's log-likelihoods [T, num_pdfs] per cut (the first ``max_utts`` cuts)."""
    am = load_acoustic_model(str(model))
    cut_list = list(load_cuts(cuts))[:max_utts]
    dataset = FeatureDataset()
    scores = []
    with torch.no_grad():
        for start in range(0, len(cut_list), 8):
            batch = dataset[cut_list[start:start + 8]]
            s, lengths = am.log_likelihoods(batch["features"], batch["feature_lens"])
            scores += [s[i, :int(n)].contiguous() for i, n in enumerate(lengths)]
    return scores, [c.id for c in cut_list]
