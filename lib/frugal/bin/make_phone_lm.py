"""Estimate the un-smoothed phone n-gram LM (phone_lm.fst) of the LF-MMI denominator graph.

Like Kaldi's chain-est-phone-lm with make_weighted_den_fst.sh's weighted sources:
each ``--phone-seqs FILE[:WEIGHT]`` holds lines ``uttid p1 p2 ...`` (phone symbols of
``--phones``, or integer ids when ``--phones`` is not given), counted WEIGHT times
(default 1; e.g. supervised:1.5 unsupervised:1.0 as in the thesis).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import List, Optional, Tuple

from frugal.errors import FrugalError, where
from frugal.lm.phone_lm import estimate_phone_lm

log = logging.getLogger("frugal.make_phone_lm")


def parse_source(spec: str) -> Tuple[str, float]:
    """``FILE`` or ``FILE:WEIGHT`` (a file name may itself contain ':' if no weight follows)."""
    path, sep, weight = spec.rpartition(":")
    if sep:
        try:
            return path, float(weight)
        except ValueError:
            pass
    return spec, 1.0


def read_phone_seqs(path: str, phones) -> List[List[int]]:
    seqs = []
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise FrugalError(f"cannot read {path}: {e.strerror}") from None
    with f:
        for n, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            ids = []
            for tok in fields[1:]:
                if phones is not None:
                    i = phones.get(tok)
                    if i is None:
                        raise FrugalError(f"{where(path, n)}: phone '{tok}' is not in --phones")
                elif tok.isdigit():
                    i = int(tok)
                else:
                    raise FrugalError(f"{where(path, n)}: '{tok}' is not an integer phone id "
                                      "(give --phones to read symbols)")
                if i <= 0:
                    raise FrugalError(f"{where(path, n)}: phone '{tok}' has id {i}; "
                                      "the phone LM needs ids > 0 (0 is epsilon)")
                ids.append(i)
            seqs.append(ids)
    return seqs


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="frugal make-phone-lm", description=__doc__.split("\n")[0])
    parser.add_argument("--phone-seqs", nargs="+", required=True, metavar="FILE[:WEIGHT]",
                        help="phone-sequence files (uttid p1 p2 ...), each with an optional weight")
    parser.add_argument("--phones", help="phones.txt symbol table (symbol id per line)")
    parser.add_argument("--output", required=True, help="phone_lm.fst (OpenFst binary acceptor)")
    parser.add_argument("--text-output", help="also write a readable dump (log10 probs per state)")
    parser.add_argument("--ngram-order", type=int, default=4)
    parser.add_argument("--no-prune-ngram-order", type=int, default=3,
                        help="histories shorter than this are never pruned")
    parser.add_argument("--num-extra-lm-states", type=int, default=2000,
                        help="states allowed beyond those of --no-prune-ngram-order")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    phones = None
    if args.phones:
        from frugal.lang.symbols import SymbolTable

        if not Path(args.phones).is_file():
            raise FrugalError(f"--phones {args.phones}: no such file")
        phones = SymbolTable.read(args.phones)
    sources = []
    for spec in args.phone_seqs:
        path, weight = parse_source(spec)
        seqs = read_phone_seqs(path, phones)
        log.info("%s: %d sequences, weight %g", path, len(seqs), weight)
        sources.append((weight, seqs))
    lm = estimate_phone_lm(sources, args.ngram_order, args.no_prune_ngram_order,
                           args.num_extra_lm_states)
    log.info("phone LM: %d states, %d arcs", lm.num_states, lm.num_arcs)
    lm.write_fst(args.output)
    if args.text_output:
        lm.write_text(args.text_output, phones.symbol if phones is not None else None)
    return 0
