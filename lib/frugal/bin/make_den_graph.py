"""Build the LF-MMI denominator graph (den.pt) from training transcripts through the lexicon.

Kaldi's flat-start recipe: transcripts -> phone sequences (most probable pronunciation,
random optional silence) -> un-smoothed phone n-gram LM (chain-est-phone-lm) -> biphone
context and chain HMM topology -> den graph with leaky-HMM initial probabilities.
Each ``--cuts FILE[:WEIGHT]`` is a lhotse cut (or supervision) manifest whose supervision
texts are counted WEIGHT times (e.g. supervised:1.5 unsupervised:1.0). Writes OUTPUT
(torch file read by frugal.graph.chain.ChainDenGraph.load), and beside it phone_lm.fst,
pdf_map.txt and OUTPUT.json (sizes, options, times).
"""
from __future__ import annotations

import argparse
import gzip
import json
import logging
import time
from pathlib import Path
from typing import List, Optional

from frugal.bin.make_phone_lm import parse_source
from frugal.errors import FrugalError, where
from frugal.fileio import atomic_write_text
from frugal.graph.chain import (ChainLexicon, den_graph_info, make_den_graph,
                                phone_lm_training_sequences)
from frugal.graph.hmm_topo import HmmTopology, PdfMap
from frugal.lm.phone_lm import estimate_phone_lm

log = logging.getLogger("frugal.make_den_graph")


def read_transcripts(path: str) -> List[List[str]]:
    """Supervision texts (split into words) of a lhotse cut or supervision manifest."""
    if not Path(path).is_file():
        raise FrugalError(f"--cuts {path}: no such file")
    opener = gzip.open if path.endswith(".gz") else open
    texts = []
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                raise FrugalError(f"{where(path, n)}: not JSON: {e}") from None
            sups = item.get("supervisions", [item] if "text" in item else [])
            for s in sups:
                if s.get("text"):
                    texts.append(s["text"].split())
    return texts


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="frugal make-den-graph", description=__doc__.split("\n")[0],
                                epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--lang", required=True, help="lang directory (frugal prepare-lang)")
    p.add_argument("--cuts", nargs="+", required=True, metavar="MANIFEST[:WEIGHT]",
                   help="manifests whose supervision texts train the phone LM, each with an optional weight")
    p.add_argument("--output", required=True, help="den graph file, e.g. exp/chain/den.pt")
    p.add_argument("--ngram-order", type=int, default=4)
    p.add_argument("--no-prune-ngram-order", type=int, default=3)
    p.add_argument("--num-extra-states", type=int, default=2000,
                   help="phone LM states allowed beyond those of --no-prune-ngram-order")
    p.add_argument("--hmm-states", type=int, choices=[1, 2], default=1,
                   help="1 = chain topology (forward + self-loop pdf a phone); 2 = two states, one pdf each")
    p.add_argument("--context", choices=["biphone", "mono"], default="biphone")
    p.add_argument("--edge-sil-prob", type=float, default=0.8,
                   help="probability of silence at the start and end of a phone LM training sentence")
    p.add_argument("--between-sil-prob", type=float, default=0.2,
                   help="probability of silence between words in phone LM training sentences")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the silence insertion (source k uses SEED + k)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for name in ("edge_sil_prob", "between_sil_prob"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise FrugalError(f"--{name.replace('_', '-')}: must be in [0, 1]")
    t0 = time.perf_counter()
    lexicon = ChainLexicon.from_lang_dir(args.lang)
    prons = lexicon.prons_by_word()
    sources = []
    for k, spec in enumerate(args.cuts):
        path, weight = parse_source(spec)
        texts = read_transcripts(path)
        seqs = phone_lm_training_sequences(texts, prons, lexicon.sil_phone, args.edge_sil_prob,
                                           args.between_sil_prob, lexicon.oov, args.seed + k)
        log.info("%s: %d transcripts, weight %g", path, len(seqs), weight)
        sources.append((weight, seqs))
    lm = estimate_phone_lm(sources, args.ngram_order, args.no_prune_ngram_order, args.num_extra_states)
    topology = HmmTopology(num_states=args.hmm_states, separate_self_loop_pdf=args.hmm_states == 1)
    phones = sorted(i for w, i in lexicon.phones if i != 0 and not w.startswith("#"))
    pdf_map = PdfMap(phones, topology, 2 if args.context == "biphone" else 1)
    den = make_den_graph(lm, pdf_map, phones)
    out = Path(args.output)
    den.save(out)
    lm.write_fst(out.parent / "phone_lm.fst")
    pdf_map.write(out.parent / "pdf_map.txt", lexicon.phones)
    info = den_graph_info(den, lm)
    info.update(lang=str(args.lang), cuts=args.cuts, ngram_order=args.ngram_order,
                no_prune_ngram_order=args.no_prune_ngram_order, num_extra_states=args.num_extra_states,
                context=args.context, edge_sil_prob=args.edge_sil_prob,
                between_sil_prob=args.between_sil_prob, seed=args.seed,
                seconds=round(time.perf_counter() - t0, 3))
    atomic_write_text(f"{out}.json", json.dumps(info, indent=1) + "\n")
    log.info("wrote %s: %d states, %d arcs, %d pdfs (phone LM %d states, %d arcs)", out,
             info["den_states"], info["den_arcs"], info["num_pdfs"], info["phone_lm_states"],
             info["phone_lm_arcs"])
    return 0
