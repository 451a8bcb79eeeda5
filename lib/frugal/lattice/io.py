"""Lattice files: Kaldi's text form (``lattice-copy ark:- ark,t:-``) and a binary form.

Text form, one lattice after the other::

    utt1
    0	1	12	5	3.25,41.5           # Lattice arc: src dst ilabel olabel graph,acoustic
    1	2	13	0	0,38.25
    2	1.5,0                           # final state: state graph,acoustic
                                        # a blank line ends the lattice
    utt2
    0	1	5	3.25,80.5,12_13_13      # CompactLattice arc: src dst word graph,acoustic,tids
    1	0,0,                            # final state with an empty alignment

Fields may be separated by tabs or spaces; a final state given alone has weight (0, 0).
Floats are written as the shortest decimal that reads back to the same float32, so a
write/read round trip is lossless.

Binary form (suffix ``.pt``): one ``torch.save`` of plain tensors and a list of keys,
loadable with ``weights_only=True``; all lattices of a file are concatenated (ragged by
splits), so large files load quickly.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from frugal.dirs import DecodeDir
from frugal.errors import FrugalError, where
from frugal.lattice.lattice import Lattice
from frugal.fileio import (PathLike, atomic_write_text, load_weights_only, read_keyed_files,
                           save_weights_only)

BINARY_FORMAT = "frugal-lattices-1"
BINARY_SUFFIX = ".pt"


def format_float(x: float) -> str:
    """Shortest text that reads back to the same float32 (Kaldi style: '3' not '3.0')."""
    if not math.isfinite(x):
        return "Infinity" if x > 0 else "-Infinity"
    text = str(np.float32(x))
    return text[:-2] if text.endswith(".0") else text


def _weight(g: float, a: float) -> str:
    return f"{format_float(g)},{format_float(a)}"


def lattice_to_text(key: str, lat: Lattice) -> str:
    """One lattice in Kaldi's text form, ending with its blank line: state by state (in
    order), its arcs and then its final weight, as OpenFst's printer does."""
    lines = [key]
    order = np.argsort(lat.arcs[:, 0], kind="stable")
    heads = np.searchsorted(lat.arcs[order, 0], np.arange(lat.num_states + 1)).tolist()
    arcs, weights = lat.arcs.tolist(), lat.weights.tolist()
    is_final = lat.is_final().tolist()
    for s in range(lat.num_states):
        for k in order[heads[s]:heads[s + 1]].tolist():
            (src, d, i, o), (g, a) = arcs[k], weights[k]
            if lat.is_compact:
                lines.append(f"{src}\t{d}\t{i}\t{_weight(g, a)},{'_'.join(map(str, lat.alignments[k]))}")
            else:
                lines.append(f"{src}\t{d}\t{i}\t{o}\t{_weight(g, a)}")
        if is_final[s]:
            g, a = lat.finals[s].tolist()
            if lat.is_compact:
                ali = lat.final_alignments.get(s, ())
                lines.append(f"{s}\t{_weight(g, a)},{'_'.join(map(str, ali))}")
            else:
                lines.append(f"{s}\t{_weight(g, a)}")
    return "\n".join(lines) + "\n\n"


def _parse_weight(field: str) -> Tuple[float, float, Optional[Tuple[int, ...]]]:
    parts = field.split(",")
    if len(parts) not in (2, 3):
        raise ValueError(f"weight {field!r} is not 'graph,acoustic' or 'graph,acoustic,tids'")
    g, a = float(parts[0]), float(parts[1])
    if math.isnan(g) or math.isnan(a):
        raise ValueError("NaN cost")
    if len(parts) == 2:
        return g, a, None
    ali = tuple(int(x) for x in parts[2].split("_")) if parts[2] else ()
    return g, a, ali


def parse_lattice_lines(lines: Sequence[str], name: str, first_line_no: int) -> Lattice:
    """Parse the arc and final-state lines of one lattice (no key, no blank line)."""
    arcs, weights, aligns = [], [], []
    finals: Dict[int, Tuple[float, float]] = {}
    final_aligns: Dict[int, Tuple[int, ...]] = {}
    compact: Optional[bool] = None
    num_states = 1
    for k, line in enumerate(lines):
        fields = line.split()
        try:
            if len(fields) in (4, 5):
                is_compact = len(fields) == 4
                labels = [int(x) for x in fields[:-1]]
                g, a, ali = _parse_weight(fields[-1])
                if (ali is not None) != is_compact:
                    raise ValueError("a 4-field arc needs a compact weight 'g,a,tids', a 5-field arc 'g,a'")
                if is_compact:
                    labels.append(labels[2])
                    aligns.append(ali)
                if min(labels) < 0:
                    raise ValueError("negative state or label")
                arcs.append(labels)
                weights.append((g, a))
            elif len(fields) in (1, 2):
                s = int(fields[0])
                if s < 0:
                    raise ValueError("negative state")
                g, a, ali = _parse_weight(fields[1]) if len(fields) == 2 else (0.0, 0.0, None)
                if s in finals:
                    raise ValueError(f"state {s} is given a final weight twice")
                finals[s] = (g, a)
                if ali is not None:
                    is_compact = True
                    final_aligns[s] = ali
                else:
                    is_compact = compact if len(fields) == 1 else False
                num_states = max(num_states, s + 1)
            else:
                raise ValueError(f"expected an arc or a final state, got {len(fields)} fields")
            if is_compact is not None:
                if compact is not None and compact != is_compact:
                    raise ValueError("mixes Lattice and CompactLattice lines")
                compact = is_compact
            if len(fields) in (4, 5):
                num_states = max(num_states, arcs[-1][0] + 1, arcs[-1][1] + 1)
        except ValueError as e:
            raise FrugalError(f"{where(name, first_line_no + k)}: {e}: {line.strip()!r}") from None
    final_arr = np.full((num_states, 2), math.inf, dtype=np.float32)
    for s, w in finals.items():
        final_arr[s] = w
    return Lattice(np.array(arcs, dtype=np.int32).reshape(-1, 4), np.array(weights, dtype=np.float32).reshape(-1, 2),
                   final_arr, aligns if compact else None, final_aligns if compact else None)


def read_text_lattices(path: PathLike) -> Dict[str, Lattice]:
    """Read a Kaldi text lattice archive; a lattice not ended by a blank line (a file cut
    short) or a malformed line raises FrugalError naming the file and line."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise FrugalError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise FrugalError(f"{path}: not a text lattice file ({e.reason} at byte {e.start})") from None
    out: Dict[str, Lattice] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    k = 0
    while k < len(lines):
        if not lines[k].strip():
            k += 1
            continue
        fields = lines[k].split()
        if len(fields) != 1:
            raise FrugalError(f"{where(path, k + 1)}: expected a lattice key (utterance id), got {lines[k].strip()!r}")
        key, start = fields[0], k + 1
        end = start
        while end < len(lines) and lines[end].strip():
            end += 1
        if end == len(lines):
            raise FrugalError(f"{where(path, end)}: lattice '{key}' is not ended by a blank line "
                              f"(file cut short?)")
        if key in out:
            raise FrugalError(f"{where(path, k + 1)}: lattice '{key}' appears twice")
        out[key] = parse_lattice_lines(lines[start:end], str(path), start + 1)
        k = end + 1
    return out


def write_text_lattices(path: PathLike, lattices: Mapping[str, Lattice]) -> None:
    atomic_write_text(path, "".join(lattice_to_text(k, lat) for k, lat in lattices.items()))


def _ragged(seqs: Iterable[Sequence[int]]) -> Tuple[torch.Tensor, torch.Tensor]:
    seqs = list(seqs)
    splits = np.zeros(len(seqs) + 1, dtype=np.int64)
    splits[1:] = np.cumsum([len(s) for s in seqs])
    flat = np.fromiter((x for s in seqs for x in s), dtype=np.int32, count=int(splits[-1]))
    return torch.from_numpy(flat), torch.from_numpy(splits)


def write_binary_lattices(path: PathLike, lattices: Mapping[str, Lattice]) -> None:
    """torch.save of concatenated tensors; see the module docstring."""
    lats = list(lattices.values())
    arc_splits = np.concatenate([[0], np.cumsum([l.num_arcs for l in lats], dtype=np.int64)]) if lats else np.zeros(1, np.int64)
    state_splits = np.concatenate([[0], np.cumsum([l.num_states for l in lats], dtype=np.int64)]) if lats else np.zeros(1, np.int64)
    aligns = [a for l in lats for a in (l.alignments if l.is_compact else [()] * l.num_arcs)]
    final_aligns = [l.final_alignments.get(s, ()) if l.is_compact else () for l in lats for s in range(l.num_states)]
    align_labels, align_splits = _ragged(aligns)
    final_labels, final_splits = _ragged(final_aligns)
    d = {
        "format": BINARY_FORMAT,
        "keys": list(lattices.keys()),
        "compact": torch.tensor([l.is_compact for l in lats], dtype=torch.bool),
        "arcs": torch.from_numpy(np.concatenate([l.arcs for l in lats]) if lats else np.zeros((0, 4), np.int32)),
        "weights": torch.from_numpy(np.concatenate([l.weights for l in lats]) if lats else np.zeros((0, 2), np.float32)),
        "finals": torch.from_numpy(np.concatenate([l.finals for l in lats]) if lats else np.zeros((0, 2), np.float32)),
        "arc_splits": torch.from_numpy(arc_splits), "state_splits": torch.from_numpy(state_splits),
        "align_labels": align_labels, "align_splits": align_splits,
        "final_align_labels": final_labels, "final_align_splits": final_splits,
    }
    save_weights_only(path, d)


def read_binary_lattices(path: PathLike) -> Dict[str, Lattice]:
    if not Path(path).is_file():
        raise FrugalError(f"{path}: no such lattice file")
    d = load_weights_only(path, "a complete frugal binary lattice file", ("format", BINARY_FORMAT))
    try:
        arcs, weights, finals = d["arcs"].numpy(), d["weights"].numpy(), d["finals"].numpy()
        arc_splits, state_splits = d["arc_splits"].tolist(), d["state_splits"].tolist()
        al, als = d["align_labels"].numpy(), d["align_splits"].numpy()
        fl, fls = d["final_align_labels"].numpy(), d["final_align_splits"].numpy()
        out = {}
        for i, key in enumerate(d["keys"]):
            a0, a1 = arc_splits[i], arc_splits[i + 1]
            s0, s1 = state_splits[i], state_splits[i + 1]
            aligns = final_aligns = None
            if bool(d["compact"][i]):
                aligns = [tuple(al[als[a]:als[a + 1]].tolist()) for a in range(a0, a1)]
                final_aligns = {s - s0: tuple(fl[fls[s]:fls[s + 1]].tolist())
                                for s in range(s0, s1) if fls[s + 1] > fls[s]}
            out[key] = Lattice(arcs[a0:a1], weights[a0:a1], finals[s0:s1], aligns, final_aligns)
    except (KeyError, IndexError, ValueError) as e:
        raise FrugalError(f"{path}: malformed frugal binary lattice file: {e}") from None
    return out


def is_binary_path(path: PathLike) -> bool:
    return Path(path).suffix == BINARY_SUFFIX


def read_lattices(path: PathLike) -> Dict[str, Lattice]:
    """Read a lattice file: binary if its suffix is ``.pt``, else Kaldi text."""
    if not Path(path).is_file():
        raise FrugalError(f"{path}: no such lattice file")
    return read_binary_lattices(path) if is_binary_path(path) else read_text_lattices(path)


def write_lattices(path: PathLike, lattices: Mapping[str, Lattice]) -> None:
    """Write a lattice file atomically: binary if its suffix is ``.pt``, else Kaldi text."""
    if is_binary_path(path):
        write_binary_lattices(path, lattices)
    else:
        write_text_lattices(path, lattices)


def read_lattice_files(files: Sequence[PathLike]) -> Dict[str, Lattice]:
    """Utterance id -> lattice over several files (e.g. the jobs of a decode directory, in
    order); an utterance in two files is an error naming both."""
    return read_keyed_files(files, read_lattices, "lattice")


def read_dir_lattices(decode_dir: PathLike) -> Dict[str, Lattice]:
    """The lattices of all jobs of a decode (or supervision-lattice) directory."""
    return read_lattice_files(DecodeDir(decode_dir).lattice_files())


def read_lattice_inputs(paths: Sequence[PathLike], option: str) -> Dict[str, Lattice]:
    """Utterance id -> lattice from lattice files and finished decode directories, as tools
    take them (``option`` names the flag in errors); an utterance in two inputs is an error."""
    files: List[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += DecodeDir.finished(p, option).lattice_files()
        elif p.is_file():
            files.append(p)
        else:
            raise FrugalError(f"{option} {p}: no such file or directory")
    return read_lattice_files(files)
