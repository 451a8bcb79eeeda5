"""What `frugal lattice` prints and writes: lattices as text, Graphviz, best paths, n-best lists,
oracle paths, word posteriors and CTM, and lattice-to-lattice transforms over whole files.

Lattice files are Kaldi's text form (``lattice-copy ark,t``), or frugal's binary form when
the name ends in ``.pt``. Costs are (graph, acoustic) pairs; ``graph_scale`` and
``acoustic_scale`` weigh them wherever paths are compared (Kaldi's defaults: both 1).
"""
from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from tqdm import tqdm

from frugal.errors import BadValue, FrugalError
from frugal.fileio import PathLike, atomic_path, atomic_write_text
from frugal.lang.symbols import SymbolTable
from frugal.lang.text import read_text
from frugal.lattice.io import lattice_to_text, read_lattices, write_lattices
from frugal.lattice.lattice import Lattice, lattice_to_dot
from frugal.lattice.paths import lattice_to_ctm, nbest, oracle_path, word_posteriors

log = logging.getLogger(__name__)


class Words:
    """Word ids <-> symbols, or ids printed as they are without a words.txt."""

    def __init__(self, path: Optional[PathLike]):
        self.table = SymbolTable.read(path) if path else None

    def __call__(self, i: int) -> str:
        if self.table is None:
            return str(i)
        try:
            return self.table.symbol(i)
        except (KeyError, IndexError):
            raise FrugalError(f"word id {i} is not in the words table") from None


def read_selected(path: PathLike, utt: Optional[str] = None) -> Dict[str, Lattice]:
    """The lattices of a file, or only utterance ``utt``'s."""
    lats = read_lattices(path)
    if utt:
        if utt not in lats:
            raise FrugalError(f"{path}: no lattice for utterance '{utt}'")
        lats = {utt: lats[utt]}
    return lats


def _each(lats: Dict[str, Lattice], what: str) -> Iterator[Tuple[str, Lattice]]:
    """(key, lattice) pairs with a progress bar (shown on a terminal only)."""
    return tqdm(lats.items(), desc=what, unit="lat", disable=None, leave=False)


def show(lats: Dict[str, Lattice]) -> str:
    """The lattices in Kaldi's text form, each followed by its blank line."""
    return "".join(lattice_to_text(k, lat) for k, lat in lats.items())


def draw(lat: Lattice, output: PathLike, words: Words, title: str = "lattice") -> None:
    """Graphviz of one lattice into ``output``: X.dot, or X.svg through graphviz's ``dot``."""
    dot = lattice_to_dot(lat, words, title)
    if Path(output).suffix == ".svg":
        exe = shutil.which("dot")
        if exe is None:
            raise BadValue("output", output, "graphviz's 'dot' is not installed: cannot write SVG (write X.dot)")
        with atomic_path(output) as tmp:
            subprocess.run([exe, "-Tsvg", "-o", str(tmp)], input=dot.encode(), check=True)
    else:
        atomic_write_text(output, dot)


def best_paths(lats, words: Words, graph_scale=1.0, acoustic_scale=1.0, with_costs=False) -> List[str]:
    """``uttid words`` (or ``uttid graph_cost acoustic_cost words``) of each best path."""
    lines = []
    for key, lat in _each(lats, "best-path"):
        p = lat.best_path(graph_scale, acoustic_scale)
        if p is None:
            log.warning("%s: lattice has no successful path", key)
            continue
        ws = " ".join(words(w) for w in p.words)
        lines.append(f"{key} {p.graph_cost:.4f} {p.acoustic_cost:.4f} {ws}".rstrip() if with_costs
                     else f"{key} {ws}".rstrip())
    return lines


def nbest_lines(lats, n: int, words: Words, graph_scale=1.0, acoustic_scale=1.0) -> List[str]:
    """``uttid-k total graph acoustic words`` of the n best distinct word sequences."""
    if n < 1:
        raise BadValue("n", n, "must be at least 1")
    lines = []
    for key, lat in _each(lats, "nbest"):
        for k, p in enumerate(nbest(lat, n, graph_scale, acoustic_scale), 1):
            ws = " ".join(words(w) for w in p.words)
            lines.append(f"{key}-{k} {p.total_cost(graph_scale, acoustic_scale):.4f} "
                         f"{p.graph_cost:.4f} {p.acoustic_cost:.4f} {ws}".rstrip())
    return lines


def oracle_lines(lats, ref: PathLike, words_txt: PathLike, graph_scale=1.0, acoustic_scale=1.0
                 ) -> Tuple[List[str], int, int]:
    """The paths with the fewest word errors against a reference text: (lines, errors, ref words)."""
    table = SymbolTable.read(words_txt)
    refs = read_text(ref)
    lines, errors, ref_words = [], 0, 0
    for key, lat in _each(lats, "oracle"):
        if key not in refs:
            raise FrugalError(f"{ref}: no reference for utterance '{key}'")
        # A reference word missing from words.txt can never be matched: id -1.
        ids = [table.get(w, -1) for w in refs[key]]
        o = oracle_path(lat, ids, graph_scale, acoustic_scale)
        if o is None:
            log.warning("%s: lattice has no successful path", key)
            errors += len(ids)
        else:
            errors += o.errors
            lines.append(" ".join([key] + [table.symbol(w) for w in o.words]))
        ref_words += len(ids)
    return lines, errors, ref_words


def posterior_lines(lats, words: Words, graph_scale=1.0, acoustic_scale=1.0) -> List[str]:
    """``uttid start_frame num_frames posterior word`` of every word arc."""
    return [f"{key} {w.start_frame} {w.num_frames} {w.posterior:.6f} {words(w.word)}"
            for key, lat in _each(lats, "posteriors") for w in word_posteriors(lat, graph_scale, acoustic_scale)]


def ctm_lines(lats, words: Words, frame_shift: float, graph_scale=1.0, acoustic_scale=1.0) -> List[str]:
    """CTM of the best path with word confidences from posteriors."""
    if frame_shift <= 0:
        raise BadValue("frame_shift", frame_shift, "must be positive")
    return [f"{key} 1 {w.start_frame * frame_shift:.3f} {w.num_frames * frame_shift:.3f} {words(w.word)} "
            f"{w.confidence:.4f}"
            for key, lat in _each(lats, "to-ctm") for w in lattice_to_ctm(lat, graph_scale, acoustic_scale)]


def transform(lats: Dict[str, Lattice], output: PathLike, fn: Callable[[Lattice], Lattice], what: str) -> None:
    """Apply ``fn`` to every lattice and write the results to ``output`` (format by suffix)."""
    write_lattices(output, {k: fn(lat) for k, lat in _each(lats, what)})


def emit(lines: List[str], output: Optional[PathLike] = None) -> None:
    """Lines to ``output`` (atomically) or to standard output."""
    text = "".join(line + "\n" for line in lines)
    if output:
        atomic_write_text(output, text)
    else:
        print(text, end="")
