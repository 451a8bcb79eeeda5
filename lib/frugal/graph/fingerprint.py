"""Fingerprints: what a model and a graph must share, compared by content, not by path.

A chain model reads its output columns as the pdfs of the den graph it was trained with; a
decoding graph (or another den graph) reads them as the pdfs of its own pdf map. They suit
each other when they agree on

- ``topo``: ``chain`` (LF-MMI, HCLG) or ``ctc`` (HLG);
- ``context`` (``biphone`` or ``mono``) and ``hmm_states``: 1- and 2-state maps have equally
  many pdfs, so only these tell them apart;
- ``num_pdfs`` and ``pdf_map_sha256``, the SHA-256 of pdf_map.txt (with the phone names,
  so maps of two lang directories differ even when their sizes agree).

``frugal train`` records its den graph's fingerprint in every checkpoint
(``den_fingerprint``), ``frugal compile-graph`` the graph's in GRAPH.json, with
``words_sha256`` of the lang's words.txt: checks then hold wherever the files are moved or
a tool is run from. Checkpoints written before kept ``den_info`` (with the pdf map's text)
or only the den graph's path; `checkpoint_fingerprint` reads all three.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

from frugal.dirs import GraphFile
from frugal.fileio import PathLike
from frugal.graph.den_graph import ChainDenGraph

FIELDS = ("topo", "context", "hmm_states", "num_pdfs", "pdf_map_sha256")
CONTEXTS = {1: "mono", 2: "biphone"}
# How far up from a checkpoint an older checkpoint's relative den graph path is looked for
# (exp/<model>/final.pt names it relative to the recipe directory, two levels up).
ANCESTORS = 4


def file_sha256(path: PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def den_graph_fingerprint(path: PathLike, den: Optional[ChainDenGraph] = None) -> Dict:
    """The fingerprint of a den graph: topology from den.pt itself (``den`` if already
    loaded), or from its JSON where den.pt is absent; the hash of pdf_map.txt beside it."""
    gf = GraphFile(path)
    if den is None and gf.path.is_file():
        den = ChainDenGraph.load(gf.path)
    fp: Dict[str, Any] = {"topo": "chain"}
    if den is not None:
        fp.update(context=CONTEXTS[den.pdf_map.context_width], hmm_states=den.pdf_map.topology.num_states,
                  num_pdfs=den.num_pdfs)
    else:
        fp.update({k: gf.info[k] for k in ("context", "hmm_states", "num_pdfs") if k in gf.info})
    if gf.pdf_map_path.is_file():
        fp["pdf_map_sha256"] = file_sha256(gf.pdf_map_path)
    return fp


def graph_fingerprint(gf: GraphFile) -> Dict:
    """A decoding graph's fingerprint as compile-graph recorded it in GRAPH.json; for graphs
    compiled before the pdf map hash was recorded, the hash of the pdf_map.txt beside it."""
    fp = {k: gf.info[k] for k in FIELDS if k in gf.info}
    if fp.get("topo") == "chain" and "pdf_map_sha256" not in fp and gf.pdf_map_path.is_file():
        fp["pdf_map_sha256"] = file_sha256(gf.pdf_map_path)
    return fp


def resolve_den_graph(den_graph: str, checkpoint: PathLike) -> Optional[Path]:
    """An older checkpoint's den graph path as it resolves from here: as given, else
    relative to the checkpoint's ancestor directories; None where it is nowhere."""
    if not den_graph:
        return None
    path = Path(den_graph)
    bases = [Path()] if path.is_absolute() else [Path()] + list(Path(checkpoint).absolute().parents)[:ANCESTORS]
    for base in bases:
        gf = GraphFile(base / path)
        if gf.path.is_file() or gf.info_path.is_file():
            return gf.path
    return None


def checkpoint_fingerprint(state: Mapping, checkpoint: PathLike) -> Tuple[Optional[Dict], str]:
    """(fingerprint, den graph name) of a checkpoint: what a graph it is decoded or aligned
    with must match. The fingerprint is None for an LF-MMI checkpoint that records none
    whose den graph path does not resolve from here (nothing can be checked)."""
    den = str(state.get("den_graph") or "")
    if state.get("objective", "lfmmi") == "ctc":
        return {"topo": "ctc"}, den
    recorded = state.get("den_fingerprint")
    if isinstance(recorded, Mapping):
        return {"topo": "chain", **recorded}, den
    old = state.get("den_info")
    if isinstance(old, Mapping) and old:  # frugal before fingerprints: the pdf map's text itself
        fp = {"topo": "chain", **{k: old[k] for k in ("context", "hmm_states", "num_pdfs") if k in old}}
        if old.get("pdf_map"):
            fp["pdf_map_sha256"] = text_sha256(old["pdf_map"])
        return fp, den
    path = resolve_den_graph(den, checkpoint)
    if path is None:
        return None, den
    return den_graph_fingerprint(path), str(path)


def first_difference(a: Mapping, b: Mapping, fields=FIELDS) -> Optional[Tuple[str, Any, Any]]:
    """(field, a's value, b's value) of the first of ``fields`` both have and disagree on."""
    for name in fields:
        if name in a and name in b and a[name] != b[name]:
            return name, a[name], b[name]
    return None


def show(name: str, value: Any) -> str:
    """A value for a one-line message (hashes shortened)."""
    return str(value)[:12] if name.endswith("sha256") else str(value)
