"""Scoring a decode directory's lattices over LM weights and insertion penalties (Kaldi's score_kaldi.sh).

Kaldi scores each (LMWT, WIP) with ``lattice-scale --inv-acoustic-scale=LMWT |
lattice-add-penalty --word-ins-penalty=WIP | lattice-best-path``: the path minimising
``graph + acoustic / LMWT + WIP * #words`` (the lattice's acoustic costs already carry the
post-decode acoustic weight of frugal decode). The best setting is reported for the set
itself, or, for a test set, the setting that was best on dev (how Kaldi's recipes report).
"""
from __future__ import annotations

import logging
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from frugal.data.cuts import read_transcripts
from frugal.decode.results import update_results_table
from frugal.decode.scoring import ErrorCounts, SweepResult, read_wer_report, score_sweep
from frugal.dirs import DecodeDir, Setting
from frugal.errors import BadValue
from frugal.fileio import PathLike, atomic_write_text
from frugal.lang.symbols import SymbolTable
from frugal.lang.text import read_text
from frugal.lattice.io import read_lattice_files
from frugal.lattice.lattice import Lattice

log = logging.getLogger(__name__)


def best_path_words(lat: Lattice, lmwt: float, wip: float) -> List[int]:
    """Word ids of the best path under graph scale 1, acoustic scale 1/lmwt and penalty wip a word."""
    if wip != 0.0:
        lat = lat.copy()
        lat.weights[:, 0] += np.float32(wip) * (lat.arcs[:, 3] != 0)
    path = lat.best_path(1.0, 1.0 / lmwt)
    return [] if path is None else path.words


class SweepHypotheses(Mapping[Setting, Dict[str, List[str]]]):
    """(lmwt, wip) -> uttid -> words, computed when asked (score_sweep reads each once)."""

    def __init__(self, lattices: Mapping[str, Lattice], words: SymbolTable, lmwts: Sequence[float],
                 wips: Sequence[float], progress=None):
        self.lattices = lattices
        self.words = words
        self.settings = [(lm, wip) for lm in lmwts for wip in wips]
        self.progress = progress

    def __getitem__(self, setting: Setting) -> Dict[str, List[str]]:
        if setting not in self.settings:
            raise KeyError(setting)
        lmwt, wip = setting
        out = {u: [self.words.symbol(w) for w in best_path_words(lat, lmwt, wip)]
               for u, lat in self.lattices.items()}
        if self.progress is not None:
            self.progress(1)
        return out

    def __iter__(self) -> Iterator[Setting]:
        return iter(self.settings)

    def __len__(self) -> int:
        return len(self.settings)


def chosen_result(decode_dir: PathLike, dev_decode_dir: Optional[PathLike] = None) -> Tuple[ErrorCounts, Setting]:
    """(ErrorCounts, setting) of DECODE_DIR at its own best setting, or, with a dev decode
    directory, at the setting that was best on dev (how Kaldi recipes report test sets)."""
    setting = DecodeDir(dev_decode_dir if dev_decode_dir else decode_dir).best_setting()
    return read_wer_report(DecodeDir(decode_dir).wer_file(setting)), setting


def score_lattices(decode_dir: PathLike, words: PathLike, ref_cuts: Optional[PathLike] = None,
                   ref_text: Optional[PathLike] = None, lmwts: Sequence[int] = range(7, 18),
                   wips: Sequence[float] = (0.0, 0.5, 1.0), dev_decode_dir: Optional[PathLike] = None,
                   bootstrap_replications: int = 1000, seed: int = 0,
                   results: Optional[Tuple[PathLike, str, str, str]] = None) -> SweepResult:
    """Score a finished decode directory against the references of ``ref_cuts`` (or a Kaldi
    text) at every (lmwt, wip); the files go into the directory as Kaldi's scoring writes
    them. With ``dev_decode_dir`` the setting best on dev is the one reported (and written to
    wer_dev_setting); with ``results`` (RESULTS.md, model, data, graph) its row is updated."""
    if (ref_cuts is None) == (ref_text is None):
        raise BadValue("ref_cuts", ref_cuts, "give the references as cuts or as a text, one of the two")
    if bootstrap_replications < 1:
        raise BadValue("bootstrap_replications", bootstrap_replications, "must be at least 1")
    out = DecodeDir.finished(decode_dir, "--decode-dir")
    dev_setting = DecodeDir(dev_decode_dir).best_setting() if dev_decode_dir else None
    if dev_setting is not None and dev_setting not in [(lm, w) for lm in lmwts for w in wips]:
        raise BadValue("dev_decode_dir", dev_decode_dir, f"its best setting lmwt={dev_setting[0]} "
                                                         f"wip={dev_setting[1]} is not among the settings scored")
    refs = read_transcripts(ref_cuts) if ref_cuts else read_text(ref_text)
    lattices = read_lattice_files(out.lattice_files())
    with tqdm(total=len(lmwts) * len(wips), desc="score", unit="setting") as bar:
        hyps = SweepHypotheses(lattices, SymbolTable.read(words), lmwts, wips, progress=bar.update)
        sweep = score_sweep(refs, hyps, out_dir=out.path, bootstrap_replications=bootstrap_replications, seed=seed,
                            reported=dev_setting)
    print(sweep.best_wer_line(out.path))
    edges = [f"{name}={value} is the {'lowest' if value == min(grid) else 'highest'} of --{name} {spec}"
             for name, value, grid, spec in (("lmwt", sweep.best[0], lmwts, f"{min(lmwts)}:{max(lmwts)}"),
                                             ("wip", sweep.best[1], wips, ",".join(map(str, wips))))
             if len(set(grid)) > 1 and value in (min(grid), max(grid))]
    if edges:  # the best setting may lie outside the sweep
        log.warning("%s: the best setting is on the edge of the sweep (%s): widen it", out.path, "; ".join(edges))
    counts, setting = sweep.best_result.counts, sweep.best
    if dev_setting is not None:
        counts, setting = sweep.counts[dev_setting], dev_setting
        line = f"{counts.wer_line()} lmwt={setting[0]} wip={setting[1]} (best on {dev_decode_dir})"
        atomic_write_text(out.dev_setting_wer_file, line + "\n")
        print(line)
    if results is not None:
        path, model, data, graph = results
        update_results_table(path, model, data, graph, counts, setting)
        log.info("updated %s: %s %s %s %%WER %.2f", path, model, data, graph, counts.wer)
    return sweep
