"""Symbol tables in Kaldi/OpenFst text format: one ``symbol id`` pair a line."""
from __future__ import annotations

from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from frugal.errors import FrugalError, where
from frugal.fileio import PathLike, atomic_write_text, read_lines


class SymbolTable:
    """A bijection between symbols (strings without whitespace) and integer ids."""

    def __init__(self, pairs: Iterable[Tuple[str, int]] = ()):
        self._id: Dict[str, int] = {}
        self._sym: Dict[int, str] = {}
        for sym, i in pairs:
            self.add(sym, i)

    def add(self, sym: str, i: Optional[int] = None) -> int:
        """Add ``sym`` with id ``i`` (default: one more than the largest id); return its id."""
        if not sym or any(c.isspace() for c in sym):
            raise ValueError(f"symbol {sym!r} is empty or contains whitespace")
        if i is None:
            i = self.max_id + 1 if self._sym else 0
        if sym in self._id:
            if self._id[sym] != i:
                raise ValueError(f"symbol {sym!r} already has id {self._id[sym]}")
            return i
        if i in self._sym:
            raise ValueError(f"id {i} already belongs to {self._sym[i]!r}")
        self._id[sym] = i
        self._sym[i] = sym
        return i

    @property
    def max_id(self) -> int:
        return max(self._sym) if self._sym else -1

    def __getitem__(self, sym: str) -> int:
        return self._id[sym]

    def symbol(self, i: int) -> str:
        return self._sym[i]

    def get(self, sym: str, default: Optional[int] = None) -> Optional[int]:
        return self._id.get(sym, default)

    def __contains__(self, sym: str) -> bool:
        return sym in self._id

    def __len__(self) -> int:
        return len(self._id)

    def __iter__(self) -> Iterator[Tuple[str, int]]:
        """(symbol, id) pairs in increasing id order."""
        for i in sorted(self._sym):
            yield self._sym[i], i

    def symbols(self) -> List[str]:
        return [s for s, _ in self]

    def to_text(self) -> str:
        return "".join(f"{s} {i}\n" for s, i in self)

    def write(self, path: PathLike) -> None:
        atomic_write_text(path, self.to_text())

    @classmethod
    def read(cls, path: PathLike) -> "SymbolTable":
        table = cls()
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
                    raise FrugalError(f"{where(path, n)}: expected 'symbol id', got {line.strip()!r}")
                try:
                    table.add(fields[0], int(fields[1]))
                except ValueError as e:
                    raise FrugalError(f"{where(path, n)}: {e}") from None
        return table


def write_int_list(path: PathLike, table: SymbolTable, symbols: Iterable[str]) -> None:
    """Kaldi's ``*.int`` companion of a symbol list: the ids, one a line."""
    atomic_write_text(path, "".join(f"{table[s]}\n" for s in symbols))


def read_symbol_list(path: PathLike) -> List[str]:
    """A file with one symbol a line (e.g. phones/silence.txt, a word list)."""
    return read_lines(path)
