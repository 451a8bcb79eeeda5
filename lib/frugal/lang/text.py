"""Kaldi ``text`` files: ``uttid word word ...`` a line (an utterance may have no words)."""
from __future__ import annotations

from typing import Dict, List, Mapping, Sequence

from frugal.errors import FrugalError, where
from frugal.fileio import PathLike, atomic_write_text, read_keyed_files


def read_text(path: PathLike) -> Dict[str, List[str]]:
    """uttid -> words, in the file's order; a blank line or a repeated uttid is a
    FrugalError naming the file and line."""
    texts: Dict[str, List[str]] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                fields = line.split()
                if not fields:
                    raise FrugalError(f"{where(path, line_no)}: empty line (expected 'uttid word ...')")
                uttid, words = fields[0], fields[1:]
                if uttid in texts:
                    raise FrugalError(f"{where(path, line_no)}: utterance '{uttid}' appears twice")
                texts[uttid] = words
    except OSError as e:
        raise FrugalError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise FrugalError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return texts


def text_lines(texts: Mapping[str, Sequence[str]], sort: bool = True) -> str:
    """The lines of a Kaldi text file (sorted by uttid, as Kaldi wants them, unless ``sort`` is off)."""
    keys = sorted(texts) if sort else list(texts)
    return "".join(" ".join([u, *texts[u]]) + "\n" for u in keys)


def write_text(path: PathLike, texts: Mapping[str, Sequence[str]], sort: bool = True) -> None:
    """Write a Kaldi text file atomically."""
    atomic_write_text(path, text_lines(texts, sort))


def read_texts(files: Sequence[PathLike]) -> Dict[str, List[str]]:
    """uttid -> words over several Kaldi texts (e.g. the hyp.J.txt of a decode directory's
    jobs, in order); an utterance in two files is an error naming both."""
    return read_keyed_files(files, read_text, "text")
