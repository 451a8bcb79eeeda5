"""Inspect and process lattices: show, draw, copy, best-path, nbest, oracle, posteriors, to-ctm, lm-rescore, scale, determinize.

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

import sys

from frugal.graph.compile import make_grammar_fst
from frugal.lattice import views
from frugal.lattice.determinize import determinize_lattice
from frugal.lattice.rescore import BackoffLm, lm_rescore

OUT = [("output_lattices", dict(help="output lattice file (text, or binary if it ends in .pt)"))]
PRINT = [("--output", dict(help="output file (default: standard output)"))]
SCALES = [("--acoustic-scale", dict(type=float, default=1.0, help="default: %(default)s")),
          ("--lm-scale", dict(type=float, default=1.0, help="graph-cost scale (default: %(default)s)"))]
WORDS = [("--words", dict(help="words.txt, to print words as symbols"))]
COMMANDS = {  # name: (help, arguments after the input lattice file)
    "show": ("print lattices in Kaldi's text form", []),
    "draw": ("write one lattice as graphviz (.dot) or SVG (.svg, needs 'dot')",
             WORDS + [("--output", dict(required=True, help="X.dot or X.svg"))]),
    "best-path": ("best path of each lattice: 'uttid words'", PRINT + SCALES + WORDS + [
        ("--with-costs", dict(action="store_true", help="print 'uttid graph_cost acoustic_cost words'"))]),
    "nbest": ("N best distinct word sequences: 'uttid-k total graph acoustic words'",
              PRINT + SCALES + WORDS + [("n", dict(type=int, help="number of word sequences"))]),
    "oracle": ("path with the fewest word errors against a reference text", PRINT + SCALES + [
        ("--ref", dict(required=True, help="reference Kaldi text file")), ("--words", dict(required=True))]),
    "posteriors": ("word arc posteriors: 'uttid start_frame num_frames posterior word'", PRINT + SCALES + WORDS),
    "to-ctm": ("CTM of the best path with word confidences from posteriors", PRINT + SCALES + WORDS + [
        ("--frame-shift", dict(type=float, default=0.01, help="seconds per lattice frame (default: %(default)s)"))]),
    "lm-rescore": ("replace the old LM's costs by a new LM's", OUT + [
        ("--words", dict(required=True, help="words.txt of the lattices and both LMs")),
        ("--old-lm", dict(required=True, help="ARPA LM in the lattices' graph costs")),
        ("--new-lm", dict(required=True, help="ARPA LM to put in instead")),
        ("--old-scale", dict(type=float, default=1.0, help="old LM cost scale to remove (default: %(default)s)")),
        ("--new-scale", dict(type=float, default=1.0, help="new LM cost scale to add (default: %(default)s)"))]),
    "scale": ("multiply graph costs by --lm-scale and acoustic costs by --acoustic-scale", OUT + SCALES),
    "determinize": ("word-level determinisation (one path per word sequence)",
                    OUT + SCALES + [("--beam", dict(type=float, help="prune with this lattice beam first"))]),
    "copy": ("copy lattices (text <-> binary by the output's suffix)", OUT),
}


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help, arguments) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("lattices", help="input lattice file (Kaldi text, or binary .pt)")
        p.add_argument("--utt", help="only this utterance")
        for flag, kwargs in arguments:
            p.add_argument(flag, **kwargs)


def run(a) -> None:
    lats = views.read_selected(a.lattices, a.utt)
    scales = (getattr(a, "lm_scale", 1.0), getattr(a, "acoustic_scale", 1.0))
    words = views.Words(getattr(a, "words", None))
    if a.command == "show":
        sys.stdout.write(views.show(lats))
    elif a.command == "draw":
        views.draw(lats[a.utt] if a.utt else next(iter(lats.values())), a.output, words)
    elif a.command == "best-path":
        views.emit(views.best_paths(lats, words, *scales, with_costs=a.with_costs), a.output)
    elif a.command == "nbest":
        views.emit(views.nbest_lines(lats, a.n, words, *scales), a.output)
    elif a.command == "oracle":
        lines, errors, ref_words = views.oracle_lines(lats, a.ref, a.words, *scales)
        views.emit(lines, a.output)
        print(f"%WER {100.0 * errors / max(ref_words, 1):.2f} [ {errors} / {ref_words} ] (oracle)", file=sys.stderr)
    elif a.command == "posteriors":
        views.emit(views.posterior_lines(lats, words, *scales), a.output)
    elif a.command == "to-ctm":
        views.emit(views.ctm_lines(lats, words, a.frame_shift, *scales), a.output)
    elif a.command == "lm-rescore":
        old, new = (BackoffLm(make_grammar_fst(lm, a.words)) for lm in (a.old_lm, a.new_lm))
        views.transform(lats, a.output_lattices, lambda lat: lm_rescore(lat, old, new, a.old_scale, a.new_scale), a.command)
    elif a.command == "scale":
        views.transform(lats, a.output_lattices, lambda lat: lat.scale(*scales), a.command)
    elif a.command == "determinize":
        views.transform(lats, a.output_lattices, lambda lat: determinize_lattice(lat, a.beam, *scales), a.command)
    else:
        views.transform(lats, a.output_lattices, lambda lat: lat, a.command)
