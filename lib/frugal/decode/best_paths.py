"""Best paths of a decode directory's lattices under LM weights and insertion penalties.

Kaldi's score_kaldi.sh scores each (LMWT, WIP) with
``lattice-scale --inv-acoustic-scale=LMWT | lattice-add-penalty --word-ins-penalty=WIP |
lattice-best-path``: the path minimising ``graph + acoustic / LMWT + WIP * #words`` (the
lattice's acoustic costs already carry the post-decode acoustic weight of frugal decode).
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Sequence, Tuple

import numpy as np

from frugal.lattice.lattice import Lattice
from frugal.lattice.io import read_lattices
from frugal.errors import FrugalError, where
from frugal.lang.symbols import SymbolTable

Setting = Tuple[float, float]


def parse_lmwt_range(text: str) -> List[int]:
    """Kaldi's ``--min-lmwt 7 --max-lmwt 17`` as ``7:17`` (or a single ``10``)."""
    try:
        lo, _, hi = text.partition(":")
        lo_i, hi_i = int(lo), int(hi or lo)
    except ValueError:
        raise FrugalError(f"--lmwt {text!r}: expected MIN:MAX (integers), e.g. 7:17") from None
    if lo_i < 1 or hi_i < lo_i:
        raise FrugalError(f"--lmwt {text!r}: need 1 <= MIN <= MAX")
    return list(range(lo_i, hi_i + 1))


def parse_float_list(text: str, option: str) -> List[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise FrugalError(f"{option} {text!r}: expected comma-separated numbers, e.g. 0.0,0.5,1.0") from None
    if not values:
        raise FrugalError(f"{option} {text!r}: no values")
    return values


def decode_dir_lattice_files(decode_dir: Path) -> List[Path]:
    """lat.1.pt .. lat.N.pt (N from num_jobs; lat.J.txt where no .pt) of a finished decode."""
    decode_dir = Path(decode_dir)
    if not (decode_dir / ".done").is_file():
        raise FrugalError(f"{decode_dir}: not a finished decode directory (no .done; run frugal decode)")
    try:
        nj = int((decode_dir / "num_jobs").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        raise FrugalError(f"{decode_dir}/num_jobs: missing or not a number") from None
    files = []
    for j in range(1, nj + 1):
        pt, txt = decode_dir / f"lat.{j}.pt", decode_dir / f"lat.{j}.txt"
        if not (pt.is_file() or txt.is_file()):
            raise FrugalError(f"{pt}: missing (num_jobs says {nj} jobs)")
        files.append(pt if pt.is_file() else txt)
    return files


def read_decode_dir_lattices(decode_dir: Path) -> Dict[str, Lattice]:
    lattices: Dict[str, Lattice] = {}
    for path in decode_dir_lattice_files(decode_dir):
        for key, lat in read_lattices(path).items():
            if key in lattices:
                raise FrugalError(f"{path}: utterance {key} appears in two jobs")
            lattices[key] = lat
    return lattices


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


def refs_from_cuts(path: str) -> Dict[str, List[str]]:
    """cut id -> words (its supervisions' texts joined), from a lhotse cut manifest."""
    if not Path(path).is_file():
        raise FrugalError(f"{path}: no such cut manifest")
    opener = gzip.open if str(path).endswith(".gz") else open
    refs: Dict[str, List[str]] = {}
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                cut = json.loads(line)
                cut_id = cut["id"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise FrugalError(f"{where(path, n)}: not a lhotse cut (JSON with an id)") from None
            refs[cut_id] = [w for s in cut.get("supervisions", []) for w in (s.get("text") or "").split()]
    return refs


def read_wer_file(path: Path):
    """ErrorCounts from a compute-wer report (``wer_LMWT_WIP``): its %WER and %SER lines."""
    import re

    from frugal.decode.scoring import ErrorCounts

    try:
        text = Path(path).read_text()
    except OSError:
        raise FrugalError(f"{path}: missing (run frugal score-lattices)") from None
    m = re.search(r"^%WER \S+ \[ (\d+) / (\d+), (\d+) ins, (\d+) del, (\d+) sub \]", text, re.M)
    s = re.search(r"^%SER \S+ \[ (\d+) / (\d+) \]", text, re.M)
    if m is None or s is None:
        raise FrugalError(f"{path}: not a compute-wer report (no %WER and %SER lines)")
    errors, ref_words, ins, dels, subs = (int(x) for x in m.groups())
    return ErrorCounts(ins=ins, dels=dels, subs=subs, ref_words=ref_words,
                       sentences=int(s.group(2)), sentence_errors=int(s.group(1)))


def read_setting(decode_dir: Path) -> Setting:
    """The best (lmwt, wip) that score-lattices recorded in DECODE_DIR/wer_details."""
    d = Path(decode_dir) / "wer_details"
    try:
        lmwt, wip = float((d / "lmwt").read_text().split()[0]), float((d / "wip").read_text().split()[0])
        return (int(lmwt) if lmwt.is_integer() else lmwt), wip
    except (OSError, ValueError, IndexError):
        raise FrugalError(f"{d}: no lmwt/wip files (run frugal score-lattices on {decode_dir})") from None


def wer_file(decode_dir: Path, setting: Setting) -> Path:
    lmwt, wip = setting
    return Path(decode_dir) / f"wer_{lmwt}_{float(wip)}"


def chosen_result(decode_dir: Path, dev_decode_dir=None):
    """(ErrorCounts, setting) of DECODE_DIR at its own best setting, or, with a dev decode
    directory, at the setting that was best on dev (how Kaldi recipes report test sets)."""
    setting = read_setting(dev_decode_dir if dev_decode_dir else decode_dir)
    return read_wer_file(wer_file(decode_dir, setting)), setting
