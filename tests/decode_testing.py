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
from frugal.graph.compile import compile_hclg, compile_hlg, make_grammar_fst
from frugal.lang.lang import Lang

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
    lang = Lang(tmp / "lang")
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


def random_lattice(rng: random.Random, num_frames: int = 4, width: int = 3, num_words: int = 4,
                   num_ilabels: int = 5, word_prob: float = 0.4, eps_prob: float = 0.3):
    """A small random state-level lattice: ``width`` states per frame, emitting arcs between
    consecutive frames, some non-emitting arcs inside a frame; words on some arcs."""
    from frugal.lattice.lattice import Lattice
    layers = [[0]] + [[1 + t * width + k for k in range(width)] for t in range(num_frames)]
    num_states = 1 + num_frames * width
    arcs, weights = [], []

    def word():
        return rng.randint(1, num_words) if rng.random() < word_prob else 0

    for t in range(num_frames):
        for s in layers[t]:
            for d in rng.sample(layers[t + 1], rng.randint(1, 2)):
                arcs.append((s, d, rng.randint(1, num_ilabels), word()))
                weights.append((rng.uniform(0, 3), rng.uniform(0, 5)))
        layer = layers[t + 1]
        for i in range(len(layer) - 1):
            if rng.random() < eps_prob:
                arcs.append((layer[i], layer[rng.randint(i + 1, len(layer) - 1)], 0, rng.randint(1, num_words)))
                weights.append((rng.uniform(0, 2), 0.0))
    finals = np.full((num_states, 2), np.inf, dtype=np.float32)
    for s in layers[-1]:
        finals[s] = (rng.uniform(0, 2), 0.0)
    return Lattice(np.array(arcs), np.array(weights), finals).connect()


def enumerate_paths(lat):
    """Every successful path as (arcs, words, ilabels, graph cost, acoustic cost), float64."""
    out = []
    by_src = {}
    for k, (s, *_rest) in enumerate(lat.arcs.tolist()):
        by_src.setdefault(s, []).append(k)

    def walk(s, arcs):
        if np.isfinite(lat.finals[s]).all():
            g = sum(float(lat.weights[k, 0]) for k in arcs) + float(lat.finals[s, 0])
            a = sum(float(lat.weights[k, 1]) for k in arcs) + float(lat.finals[s, 1])
            words = [int(lat.arcs[k, 3]) for k in arcs if lat.arcs[k, 3]]
            if lat.is_compact:
                ilabels = [x for k in arcs for x in lat.alignments[k]] + list(lat.final_alignments.get(s, ()))
            else:
                ilabels = [int(lat.arcs[k, 2]) for k in arcs if lat.arcs[k, 2]]
            out.append((list(arcs), words, ilabels, g, a))
        for k in by_src.get(s, []):
            walk(int(lat.arcs[k, 1]), arcs + [k])

    walk(0, [])
    return out


def edit_distance(ref, hyp) -> int:
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[len(hyp)]


def arpa_sentence_cost(arpa: str, words) -> float:
    """-ln P(<s> words </s>) under a bigram ARPA text, by the backoff rule (independent of G)."""
    uni, bi, section = {}, {}, None
    for line in arpa.splitlines():
        f = line.split()
        if line.startswith("\\"):
            section = line.strip()
        elif f and section == "\\1-grams:":
            uni[f[1]] = (float(f[0]), float(f[2]) if len(f) > 2 else 0.0)
        elif f and section == "\\2-grams:":
            bi[(f[1], f[2])] = float(f[0])
    seq = ["<s>", *words, "</s>"]
    log10 = 0.0
    for h, w in zip(seq, seq[1:]):
        log10 += bi[(h, w)] if (h, w) in bi else uni[h][1] + uni[w][0]
    return -log10 * math.log(10)
