"""Inspect and process lattices: show, draw, best-path, nbest, oracle, posteriors, to-ctm, lm-rescore, scale.

Lattice files are Kaldi's text form (``lattice-copy ark,t``), or frugal's binary form
when the name ends in ``.pt``; outputs follow the same rule, so ``copy`` converts.
Costs are (graph, acoustic) pairs as in Kaldi; ``--acoustic-scale`` and ``--lm-scale``
weigh them wherever paths are compared (Kaldi's defaults: both 1). With ``--words``
(words.txt), words are printed as symbols instead of ids.

  frugal lattice show lat.txt [--utt ID]
  frugal lattice draw lat.txt --utt ID --output lat.svg     (.dot, or .svg through graphviz)
  frugal lattice best-path lat.txt [--with-costs] [--output hyp.txt]
  frugal lattice nbest lat.txt 10
  frugal lattice oracle lat.txt --ref text --words words.txt [--output oracle.txt]
  frugal lattice posteriors lat.txt
  frugal lattice to-ctm lat.txt --frame-shift 0.03 --output hyp.ctm
  frugal lattice lm-rescore lat.txt out.txt --words words.txt --old-lm small.arpa --new-lm big.arpa
  frugal lattice scale lat.txt out.txt --acoustic-scale 0.1
  frugal lattice determinize lat.txt out.txt [--beam 8]
  frugal lattice copy lat.txt lat.pt
"""
from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

from tqdm import tqdm

from frugal.lattice.lattice import Lattice
from frugal.lattice.io import lattice_to_text, read_lattices, write_lattices
from frugal.lattice.determinize import determinize_lattice
from frugal.lattice.paths import lattice_to_ctm, nbest, oracle_path, word_posteriors
from frugal.lattice.rescore import BackoffLm, lm_rescore
from frugal.decode.scoring import read_text
from frugal.errors import FrugalError
from frugal.fileio import atomic_path, atomic_write_text
from frugal.lang.symbols import SymbolTable

log = logging.getLogger(__name__)


class Words:
    """Word ids <-> symbols, or ids printed as they are without a words.txt."""

    def __init__(self, path: Optional[str]):
        self.table = SymbolTable.read(path) if path else None

    def __call__(self, i: int) -> str:
        if self.table is None:
            return str(i)
        try:
            return self.table.symbol(i)
        except (KeyError, IndexError):
            raise FrugalError(f"word id {i} is not in the words table") from None


def _lattices(args) -> Dict[str, Lattice]:
    lats = read_lattices(args.lattices)
    if getattr(args, "utt", None):
        if args.utt not in lats:
            raise FrugalError(f"{args.lattices}: no lattice for utterance '{args.utt}'")
        lats = {args.utt: lats[args.utt]}
    return lats


def _each(lats: Dict[str, Lattice], what: str):
    """(key, lattice) pairs with a progress bar (shown on a terminal only)."""
    return tqdm(lats.items(), desc=what, unit="lat", disable=None, leave=False)


def _emit(args, lines: List[str]) -> None:
    text = "".join(line + "\n" for line in lines)
    if getattr(args, "output", None):
        atomic_write_text(args.output, text)
    else:
        sys.stdout.write(text)


def cmd_show(args) -> None:
    lats = _lattices(args)
    sys.stdout.write("".join(lattice_to_text(k, lat) for k, lat in lats.items()))


def cmd_draw(args) -> None:
    lat = _lattices(args)[args.utt]
    words = Words(args.words)
    out = ["digraph lattice {", "  rankdir = LR;"]
    for s in range(lat.num_states):
        shape = "doublecircle" if lat.is_final()[s] else "circle"
        label = f"{s}" + (f"/{lat.finals[s, 0]:.3g},{lat.finals[s, 1]:.3g}" if lat.is_final()[s] else "")
        out.append(f'  {s} [shape = {shape}, label = "{label}"];')
    for k, ((s, d, i, o), (g, a)) in enumerate(zip(lat.arcs.tolist(), lat.weights.tolist())):
        word = words(o) if o else "<eps>"
        label = f"{word}/{g:.3g},{a:.3g}" if lat.is_compact else f"{i}:{word}/{g:.3g},{a:.3g}"
        out.append(f'  {s} -> {d} [label = "{label}"];')
    dot = "\n".join(out + ["}"]) + "\n"
    if Path(args.output).suffix == ".svg":
        exe = shutil.which("dot")
        if exe is None:
            raise FrugalError("graphviz's 'dot' is not installed: cannot write SVG; give --output X.dot instead")
        with atomic_path(args.output) as tmp:
            subprocess.run([exe, "-Tsvg", "-o", str(tmp)], input=dot.encode(), check=True)
    else:
        atomic_write_text(args.output, dot)


def cmd_best_path(args) -> None:
    words = Words(args.words)
    lines = []
    for key, lat in _each(_lattices(args), args.command):
        p = lat.best_path(args.lm_scale, args.acoustic_scale)
        if p is None:
            log.warning("%s: lattice has no successful path", key)
            continue
        ws = " ".join(words(w) for w in p.words)
        lines.append(f"{key} {p.graph_cost:.4f} {p.acoustic_cost:.4f} {ws}".rstrip() if args.with_costs
                     else f"{key} {ws}".rstrip())
    _emit(args, lines)


def cmd_nbest(args) -> None:
    if args.n < 1:
        raise FrugalError("N must be at least 1")
    words = Words(args.words)
    lines = []
    for key, lat in _each(_lattices(args), args.command):
        for k, p in enumerate(nbest(lat, args.n, args.lm_scale, args.acoustic_scale), 1):
            ws = " ".join(words(w) for w in p.words)
            lines.append(f"{key}-{k} {p.total_cost(args.lm_scale, args.acoustic_scale):.4f} "
                         f"{p.graph_cost:.4f} {p.acoustic_cost:.4f} {ws}".rstrip())
    _emit(args, lines)


def cmd_oracle(args) -> None:
    table = SymbolTable.read(args.words)
    refs = read_text(args.ref)
    lines, errors, ref_words = [], 0, 0
    for key, lat in _each(_lattices(args), args.command):
        if key not in refs:
            raise FrugalError(f"{args.ref}: no reference for utterance '{key}'")
        # A reference word missing from words.txt can never be matched: id -1.
        ref = [table.get(w, -1) for w in refs[key]]
        o = oracle_path(lat, ref, args.lm_scale, args.acoustic_scale)
        if o is None:
            log.warning("%s: lattice has no successful path", key)
            errors += len(ref)
        else:
            errors += o.errors
            lines.append(" ".join([key] + [table.symbol(w) for w in o.words]))
        ref_words += len(ref)
    _emit(args, lines)
    wer = 100.0 * errors / max(ref_words, 1)
    print(f"%WER {wer:.2f} [ {errors} / {ref_words} ] (oracle)", file=sys.stderr)


def cmd_posteriors(args) -> None:
    words = Words(args.words)
    lines = []
    for key, lat in _each(_lattices(args), args.command):
        for w in word_posteriors(lat, args.lm_scale, args.acoustic_scale):
            lines.append(f"{key} {w.start_frame} {w.num_frames} {w.posterior:.6f} {words(w.word)}")
    _emit(args, lines)


def cmd_to_ctm(args) -> None:
    if args.frame_shift <= 0:
        raise FrugalError("--frame-shift must be positive")
    words = Words(args.words)
    lines = []
    for key, lat in _each(_lattices(args), args.command):
        for w in lattice_to_ctm(lat, args.lm_scale, args.acoustic_scale):
            lines.append(f"{key} 1 {w.start_frame * args.frame_shift:.3f} "
                         f"{w.num_frames * args.frame_shift:.3f} {words(w.word)} {w.confidence:.4f}")
    _emit(args, lines)


def cmd_lm_rescore(args) -> None:
    from frugal.graph.compile import make_grammar_fst
    old = BackoffLm(make_grammar_fst(args.old_lm, args.words))
    new = BackoffLm(make_grammar_fst(args.new_lm, args.words))
    out = {k: lm_rescore(lat, old, new, args.old_scale, args.new_scale) for k, lat in _each(_lattices(args), args.command)}
    write_lattices(args.output_lattices, out)


def cmd_scale(args) -> None:
    out = {k: lat.scale(args.lm_scale, args.acoustic_scale) for k, lat in _each(_lattices(args), args.command)}
    write_lattices(args.output_lattices, out)


def cmd_determinize(args) -> None:
    out = {k: determinize_lattice(lat, args.beam, args.lm_scale, args.acoustic_scale)
           for k, lat in _each(_lattices(args), args.command)}
    write_lattices(args.output_lattices, out)


def cmd_copy(args) -> None:
    write_lattices(args.output_lattices, _lattices(args))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="frugal lattice", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[1:]))
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, func, help, output_lattices=False, output=False, scales=True, words=True):
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("lattices", help="input lattice file (Kaldi text, or binary .pt)")
        if output_lattices:
            p.add_argument("output_lattices", help="output lattice file (text, or binary if it ends in .pt)")
        if output:
            p.add_argument("--output", help="output file (default: standard output)")
        if scales:
            p.add_argument("--acoustic-scale", type=float, default=1.0, help="default: %(default)s")
            p.add_argument("--lm-scale", type=float, default=1.0, help="graph-cost scale (default: %(default)s)")
        if words:
            p.add_argument("--words", help="words.txt, to print words as symbols")
        p.add_argument("--utt", help="only this utterance")
        p.set_defaults(func=func)
        return p

    add("show", cmd_show, "print lattices in Kaldi's text form", scales=False, words=False)
    p = add("draw", cmd_draw, "write one lattice as graphviz (.dot) or SVG (.svg, needs 'dot')", scales=False)
    p.add_argument("--output", required=True, help="X.dot or X.svg")
    p = add("best-path", cmd_best_path, "best path of each lattice: 'uttid words'", output=True)
    p.add_argument("--with-costs", action="store_true", help="print 'uttid graph_cost acoustic_cost words'")
    p = add("nbest", cmd_nbest, "N best distinct word sequences: 'uttid-k total graph acoustic words'", output=True)
    p.add_argument("n", type=int, help="number of word sequences")
    p = add("oracle", cmd_oracle, "path with the fewest word errors against a reference text", output=True, words=False)
    p.add_argument("--ref", required=True, help="reference Kaldi text file")
    p.add_argument("--words", required=True, help="words.txt")
    add("posteriors", cmd_posteriors, "word arc posteriors: 'uttid start_frame num_frames posterior word'", output=True)
    p = add("to-ctm", cmd_to_ctm, "CTM of the best path with word confidences from posteriors", output=True)
    p.add_argument("--frame-shift", type=float, default=0.01, help="seconds per lattice frame (default: %(default)s)")
    p = add("lm-rescore", cmd_lm_rescore, "replace the old LM's costs by a new LM's", output_lattices=True,
            scales=False, words=False)
    p.add_argument("--words", required=True, help="words.txt of the lattices and both LMs")
    p.add_argument("--old-lm", required=True, help="ARPA LM in the lattices' graph costs")
    p.add_argument("--new-lm", required=True, help="ARPA LM to put in instead")
    p.add_argument("--old-scale", type=float, default=1.0, help="old LM cost scale to remove (default: %(default)s)")
    p.add_argument("--new-scale", type=float, default=1.0, help="new LM cost scale to add (default: %(default)s)")
    add("scale", cmd_scale, "multiply graph costs by --lm-scale and acoustic costs by --acoustic-scale",
        output_lattices=True, words=False)
    p = add("determinize", cmd_determinize, "word-level determinisation (one path per word sequence)",
            output_lattices=True, words=False)
    p.add_argument("--beam", type=float, help="prune with this lattice beam first")
    add("copy", cmd_copy, "copy lattices (text <-> binary by the output's suffix)", output_lattices=True,
        scales=False, words=False)

    args = parser.parse_args(argv)
    args.func(args)
    return 0
