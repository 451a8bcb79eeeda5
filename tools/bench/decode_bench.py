#!/usr/bin/env python3
"""Decoding speed: frugal's batched beam search vs Kaldi's FasterDecoder and LatticeSimpleDecoder.

All three decoders search the same graph with the same frame scores and beams, and decode
the same utterances: Kaldi's one by one, frugal's in batches of each --batch-sizes.

With --model (a trained chain model), --cuts (its feature cuts), --lang, --den-graph and
--lm-cuts, the case is real: the model's outputs on the cuts, and a trigram HCLG over
--num-words words built for the benchmark (`_model_case.py`: the model's lexicon plus
CMUdict words in its phones; LM text: --lm-cuts's transcripts plus --sentences random ones).
Without them the graph is generated (HLG from a random lexicon and bigram LM, or HCLG) and
the scores favour a random path through it (its columns get a boost, the rest is noise),
like a half-trained network. Prints one table: per decoder (and batch size) the best seconds (--clock) of
--repeat runs, the real-time factor (decoding time / audio time, audio time = frames x
--frame-shift), and the time relative to FasterDecoder and to LatticeSimpleDecoder; then
how often the 1-best word sequences agree.

  tools/bench/decode_bench.py --model M.pt --cuts CUTS --lang LANG --den-graph DEN --lm-cuts CUTS
                              [--num-words 3000] [--utts 100] [--sentences 20000] [--max-ngrams 200000]
  tools/bench/decode_bench.py [--graph hlg|hclg] [--num-words 1000] [--utts 32] [--frames 300]
                              [--batch-sizes 1,8,32] [--repeat 2] [--clock wall|cpu]
                              [--search auto|compiled|timed|dense|sparse]
                              [--device cpu|cuda] [--threads 1]
"""
from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

import kaldi_decoder
import numpy as np
import torch

from frugal.bin.main import main as frugal_main
from frugal.decode.decoder import Decoder, DecoderConfig
from frugal.decode.search_common import SEARCHES
from frugal.decode.graph import DecodingGraph
from frugal.fsa.openfst import read_fst
from frugal.graph.compile import compile_hclg, compile_hlg, make_grammar_fst
from frugal.lang.lang import Lang

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _model_case import build_graph, model_scores  # noqa: E402

PHONES = [f"P{i}" for i in range(30)]


def make_graph(tmp: Path, kind: str, num_words: int, num_bigrams: int, seed: int):
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(num_words)]
    (tmp / "lexicon.txt").write_text("".join(
        f"{w} {' '.join(rng.choice(PHONES) for _ in range(rng.randint(2, 6)))}\n" for w in words))
    vocab = ["</s>", "<s>"] + words
    lines = ["\\data\\", f"ngram 1={len(vocab)}", f"ngram 2={num_bigrams}", "", "\\1-grams:"]
    lines += [f"{-99 if w == '<s>' else -rng.uniform(2, 4):.4f} {w}" + ("" if w == "</s>" else f" {-rng.uniform(0.1, 0.8):.4f}")
              for w in vocab]
    pairs = set()
    while len(pairs) < num_bigrams:
        pairs.add((rng.choice(["<s>"] + words), rng.choice(words + ["</s>"])))
    lines += ["", "\\2-grams:"] + [f"{-rng.uniform(0.3, 1.5):.4f} {h} {w}" for h, w in sorted(pairs)]
    (tmp / "lm.arpa").write_text("\n".join(lines + ["", "\\end\\", ""]))
    assert frugal_main(["prepare-lang", "--lexicon", str(tmp / "lexicon.txt"), "--output-dir", str(tmp / "lang")]) == 0
    lang = Lang(tmp / "lang")
    G = make_grammar_fst(tmp / "lm.arpa", lang.path / "words.txt")
    if kind == "hlg":
        fst = compile_hlg(lang, G)
        return fst, DecodingGraph.from_openfst(fst).max_label + 1
    fst, pdf_map = compile_hclg(lang, G)
    return fst, pdf_map.num_pdfs


def path_scores(graph: DecodingGraph, num_columns: int, lengths, seed: int, peak: float) -> torch.Tensor:
    """Log-softmax of noise plus ``peak`` on the columns of a random path through the graph."""
    rng = np.random.default_rng(seed)
    emit, eps = graph.emit, graph.eps
    e_start, e_dst, e_lab = emit.start.cpu().numpy(), emit.dst.cpu().numpy(), emit.label.cpu().numpy()
    p_start, p_dst = eps.start.cpu().numpy(), eps.dst.cpu().numpy()
    T = max(lengths)
    logits = rng.normal(size=(len(lengths), T, num_columns)).astype(np.float32)
    for u in range(len(lengths)):
        s, t = 0, 0
        while t < T:
            n_e, n_p = e_start[s + 1] - e_start[s], p_start[s + 1] - p_start[s]
            if n_p and (n_e == 0 or rng.random() < 0.3):
                s = p_dst[p_start[s] + rng.integers(n_p)]
                continue
            if n_e == 0:
                s = 0
                continue
            a = e_start[s] + rng.integers(n_e)
            logits[u, t, e_lab[a]] += peak
            s, t = e_dst[a], t + 1
    return torch.log_softmax(torch.from_numpy(logits), dim=-1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, help="a trained chain model (final.pt): the real case")
    p.add_argument("--cuts", type=Path, help="real case: feature cuts to decode (the first --utts)")
    p.add_argument("--lang", type=Path, help="real case: the model's lang dir (its lexicon.txt, phones.txt)")
    p.add_argument("--den-graph", type=Path, help="real case: the model's den graph (for its pdf map)")
    p.add_argument("--lm-cuts", type=Path, help="real case: cuts whose transcripts go into the LM text")
    p.add_argument("--sentences", type=int, default=20000, help="real case: random LM sentences")
    p.add_argument("--max-ngrams", type=int, default=200000, help="real case: the trigram's size cap")
    p.add_argument("--sil-prob", type=float, default=0.5, help="real case: L.fst's optional silence")
    p.add_argument("--graph", choices=["hlg", "hclg"], default="hlg")
    p.add_argument("--num-words", type=int, default=1000)
    p.add_argument("--num-bigrams", type=int, default=5000)
    p.add_argument("--utts", type=int, default=32)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--batch-sizes", default="1,8,32", help="utterances per frugal decode call, comma-separated")
    p.add_argument("--repeat", type=int, default=2, help="rounds, each running every decoder once; the best time counts")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall-clock time, or this process's CPU time (steadier on a shared machine)")
    p.add_argument("--search", choices=list(SEARCHES), default="auto", help="frugal's search")
    p.add_argument("--beam", type=float, default=12.0)
    p.add_argument("--max-active", type=int, default=3000)
    p.add_argument("--lattice-beam", type=float, default=6.0)
    p.add_argument("--acoustic-scale", type=float, default=1.0)
    p.add_argument("--peak", type=float, default=3.0, help="boost of the true path's columns")
    p.add_argument("--frame-shift", type=float, default=0.03, help="seconds per frame, for the RTF")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (Kaldi's decoders use one)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    real = [args.model, args.cuts, args.lang, args.den_graph, args.lm_cuts]
    if any(real) and not all(real):
        p.error("the real case needs --model, --cuts, --lang, --den-graph and --lm-cuts")
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            path, vocab = build_graph(Path(tmp), args.lang, args.den_graph, args.lm_cuts, args.num_words,
                                      args.sentences, args.max_ngrams, args.sil_prob, args.seed)
            fst = read_fst(path)
            utt_scores, _ = model_scores(args.model, args.cuts, args.utts)
            what = f"HCLG of {vocab} words (trigram, {args.model} on {len(utt_scores)} cuts of {args.cuts})"
        else:
            fst, num_columns = make_graph(Path(tmp), args.graph, args.num_words, args.num_bigrams, args.seed)
            what = f"{args.graph.upper()} (generated)"
    graph = DecodingGraph.from_openfst(fst)
    if args.model:
        lengths = [int(s.shape[0]) for s in utt_scores]
        scores = torch.nn.utils.rnn.pad_sequence(utt_scores, batch_first=True)
        args.utts = len(lengths)
    else:
        lengths = [args.frames] * args.utts
        scores = path_scores(graph, num_columns, lengths, args.seed, args.peak)
    print(f"graph: {what}: {graph.num_states} states, {graph.emit.dst.numel()} emitting + "
          f"{graph.eps.dst.numel()} non-emitting arcs; {scores.shape[-1]} columns; {args.utts} utts, "
          f"{sum(lengths)} frames; beam {args.beam}, max-active {args.max_active}, lattice-beam {args.lattice_beam}, "
          f"acoustic scale {args.acoustic_scale}; device {args.device}, {args.threads} torch thread(s); "
          f"{args.clock} clock, best of {args.repeat}")
    audio = sum(lengths) * args.frame_shift
    cfg = DecoderConfig(beam=args.beam, max_active=args.max_active, lattice_beam=args.lattice_beam,
                        acoustic_scale=args.acoustic_scale, search=args.search)
    decoder = Decoder(graph.to(args.device), cfg)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    clock = time.perf_counter if args.clock == "wall" else time.process_time

    def run_frugal(lattice: bool, batch_size: int):
        warm = min(batch_size, args.utts)
        decoder.decode(scores[:warm, :10].to(args.device), torch.tensor([10] * warm), lattice=lattice)  # warm-up
        sync()
        t0 = clock()
        out = []
        for b in range(0, args.utts, batch_size):
            batch = scores[b:b + batch_size].to(args.device)
            out += decoder.decode(batch, torch.tensor(lengths[b:b + batch_size]), lattice=lattice)
        sync()
        return clock() - t0, out

    def run_kaldi(make):
        dec = make()
        feats = [np.ascontiguousarray(args.acoustic_scale * scores[u, :lengths[u]].numpy()) for u in range(args.utts)]
        t0 = clock()
        out = []
        for f in feats:
            dec.decode(kaldi_decoder.DecodableCtc(f))
            out.append(dec.get_raw_lattice() if isinstance(dec, kaldi_decoder.LatticeSimpleDecoder)
                       else dec.get_best_path())
        return clock() - t0, out

    # Every decoder runs once per round, so a slow spell of a shared machine hits all of
    # them alike; the best time of each over the rounds counts.
    runs = [("kaldi FasterDecoder", 1, lambda: run_kaldi(lambda: kaldi_decoder.FasterDecoder(
                fst, kaldi_decoder.FasterDecoderOptions(beam=args.beam, max_active=args.max_active)))),
            ("kaldi LatticeSimpleDecoder", 1, lambda: run_kaldi(lambda: kaldi_decoder.LatticeSimpleDecoder(
                fst, kaldi_decoder.LatticeSimpleDecoderConfig(beam=args.beam, lattice_beam=args.lattice_beam))))]
    for bs in batch_sizes:
        runs += [("frugal 1-best", bs, lambda bs=bs: run_frugal(False, bs)),
                 ("frugal lattice", bs, lambda bs=bs: run_frugal(True, bs))]
    times, outputs = [[] for _ in runs], [None] * len(runs)
    for _ in range(args.repeat):
        for i, (_, _, run) in enumerate(runs):
            t, out = run()
            times[i].append(t)
            outputs[i] = outputs[i] or out
    rows = [(name, str(bs), min(t)) for (name, bs, _), t in zip(runs, times)]
    t_k1, t_kl = rows[0][2], rows[1][2]
    kres, res1, resl = outputs[0], outputs[2], outputs[3]

    from frugal.lattice.lattice import Lattice
    agree = frugal_better = kaldi_better = 0
    for r, (ok, lat) in zip(res1, kres):
        best = Lattice.from_kaldifst(lat).best_path() if ok else None
        if best is not None and best.words == r.words:
            agree += 1
        elif best is None or r.total_cost(args.acoustic_scale) < best.total_cost() - 1e-3:
            frugal_better += 1  # Kaldi's search lost a better path (Kaldi's costs are already scaled)
        else:
            kaldi_better += 1
    lat_arcs = sum(r.lattice.num_arcs for r in resl) / len(resl)

    print(f"{'decoder':28s} {'batch':>5s} {'seconds':>9s} {'RTF':>8s} {'ms/frame/utt':>13s} "
          f"{'vs FasterDecoder':>17s} {'vs LatticeSimple':>17s}")
    for name, bs, t in rows:
        print(f"{name:28s} {bs:>5s} {t:9.3f} {t / audio:8.4f} {1000 * t / sum(lengths):13.4f} "
              f"{t / t_k1:16.2f}x {t / t_kl:16.2f}x")
    print(f"1-best agreement with FasterDecoder: {agree}/{args.utts} (where they differ, the lower-cost path is "
          f"frugal's {frugal_better} times, Kaldi's {kaldi_better} times); frugal lattices: {lat_arcs:.0f} arcs/utt "
          f"after lattice-beam pruning")
    timed = ", ".join(f"{k} {1000 * decoder.search_seconds[k] / decoder.search_frames[k]:.3f} ms"
                      for k in decoder.search_frames if decoder.search_frames[k])
    print(f"frugal search: {args.search}; per utterance-frame over all calls: {timed}; next call: {decoder.kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
