"""Corpora that `frugal prepare-data` prepares: each module of this package is one corpus.

A corpus module defines ``PREPARE``, a `Corpus`: its name, what it is, its preparation
function and the options that function takes besides the three every corpus has
(``corpus_dir``, ``output_dir``, ``lexicon_dir``). Adding a corpus is adding a module
here; nothing else lists them.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence


@dataclass(frozen=True)
class Option:
    """A keyword of a corpus's preparation function, offered as ``--name-with-dashes``."""

    name: str
    help: str
    default: Any = None
    type: Optional[Callable] = None
    choices: Optional[Sequence] = None
    nargs: Optional[str] = None
    switch: bool = False  # a flag without value (True when given)


@dataclass(frozen=True)
class Corpus:
    name: str
    summary: str                 # one line
    description: str
    prepare: Callable            # prepare(corpus_dir, output_dir, lexicon_dir, **options) -> parts
    options: List[Option] = field(default_factory=list)
    download: Optional[Callable] = None   # download(corpus_dir), where the corpus is free to fetch


def corpora() -> Dict[str, Corpus]:
    """Every corpus of this package, by name."""
    out = {}
    for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        corpus = getattr(importlib.import_module(f"{__name__}.{m.name}"), "PREPARE", None)
        if corpus is not None:
            out[corpus.name] = corpus
    return out
