"""Toy decoding graphs for the decoder and lattice tests: a random lexicon and bigram LM,
compiled to HLG (CTC) or HCLG (chain) by frugal's graph compiler, and frame scores."""
from __future__ import annotations

import math
import random
from pathlib import Path
from typing import List, Tuple

import kaldifst
import numpy as np
import torch

from frugal.bin.main import main as frugal_main
from frugal.graph.compile import LangDir, compile_hclg, compile_hlg, make_grammar_fst

PHONES = ["AA", "B", "D", "EH", "F", "IY", "K", "L", "M", "OW"]


def random_lexicon_and_arpa(rng: random.Random, num_words: int, num_bigrams: int) -> Tuple[str, str]:
    words = [f"w{i}" for i in range(num_words)]
    lexicon = "".join(f"{w} {' '.join(rng.choice(PHONES) for _ in range(rng.randint(1, 3)))}\n" for w in words)
    vocab = ["</s>", "<s>"] + words
    unigrams = [(-rng.uniform(0.5, 2.0) if w != "<s>" else -99.0, w, -rng.uniform(0.1, 0.8)) for w in vocab]
    pairs = set()
    while len(pairs) < num_bigrams:
        pairs.add((rng.choice(["<s>"] + words), rng.choice(words + ["</s>"])))
    lines = ["\\data\\", f"ngram 1={len(unigrams)}", f"ngram 2={len(pairs)}", "", "\\1-grams:"]
    lines += [f"{p:.4f} {w} {bo:.4f}" if w != "</s>" else f"{p:.4f} {w}" for p, w, bo in unigrams]
    lines += ["", "\\2-grams:"] + [f"{-rng.uniform(0.1, 1.0):.4f} {h} {w}" for h, w in sorted(pairs)]
    return lexicon, "\n".join(lines + ["", "\\end\\", ""])


def make_lang(tmp: Path, seed: int = 0, num_words: int = 20, num_bigrams: int = 40):
    rng = random.Random(seed)
    lexicon, arpa = random_lexicon_and_arpa(rng, num_words, num_bigrams)
    (tmp / "lexicon.txt").write_text(lexicon)
    (tmp / "lm.arpa").write_text(arpa)
    assert frugal_main(["prepare-lang", "--lexicon", str(tmp / "lexicon.txt"),
                        "--output-dir", str(tmp / "lang"), "--sil-prob", "0.3"]) == 0
    lang = LangDir.read(tmp / "lang")
    G = make_grammar_fst(tmp / "lm.arpa", lang.path / "words.txt")
    return lang, G


def make_hlg(tmp: Path, seed: int = 0, **kw):
    lang, G = make_lang(tmp, seed, **kw)
    return lang, compile_hlg(lang, G)


def make_hclg(tmp: Path, seed: int = 0, **kw):
    lang, G = make_lang(tmp, seed, **kw)
    hclg, pdf_map = compile_hclg(lang, G)
    return lang, hclg, pdf_map.num_pdfs


def structured_scores(num_columns: int, lengths: List[int], seed: int, peak: float = 4.0) -> torch.Tensor:
    """Log-softmax of random logits with a random "true" column per short segment boosted,
    so that paths differ clearly but not by everything (like a half-trained network)."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    logits = torch.randn(len(lengths), T, num_columns, generator=g)
    seg = torch.randint(0, num_columns, (len(lengths), (T + 2) // 3), generator=g)
    idx = seg.repeat_interleave(3, dim=1)[:, :T]
    logits.scatter_add_(2, idx[..., None], torch.full((len(lengths), T, 1), peak))
    return torch.log_softmax(logits, dim=-1)


def scores_fst(loglik: np.ndarray, acoustic_scale: float) -> kaldifst.StdVectorFst:
    """A linear-in-time acceptor: frame t reads column d (label d + 1) with cost -scale * loglik."""
    T, D = loglik.shape
    lines = []
    for t in range(T):
        for d in range(D):
            lines.append(f"{t} {t + 1} {d + 1} {d + 1} {-acoustic_scale * float(loglik[t, d])!r}")
    lines.append(f"{T} 0")
    if T == 0:
        lines = ["0 0"]
    return kaldifst.compile("\n".join(lines) + "\n", keep_state_numbering=True)


def reference_best(graph: kaldifst.StdVectorFst, loglik: np.ndarray, acoustic_scale: float):
    """(word ids, total cost) of the shortest path of scores o graph (OpenFst)."""
    F = scores_fst(loglik, acoustic_scale)
    kaldifst.arcsort(F, sort_type="olabel")
    composed = kaldifst.compose(F, graph)
    if composed.num_states == 0:
        return None, math.inf
    ok, _, words, weight = kaldifst.get_linear_symbol_sequence(kaldifst.shortest_path(composed))
    assert ok
    return list(words), weight.value
