"""The exception types that command-line tools turn into a one-line message.

Library code raises FrugalError for bad *input* (a file, a line of it, a value) with a
message that names the culprit, e.g. ``lexicon.txt:12: word 'foo' has no pronunciation``.
`frugal <tool>` prints it as ``frugal <tool>: error: <message>`` and exits 1, with no
traceback. Programming errors stay ordinary exceptions so that they keep their traceback.

A bad value of a parameter is a `BadValue`: the library names the parameter as it knows
it (``beam``), and the command line, which knows which flag set it, says ``--beam``.
"""
from __future__ import annotations

from typing import Any


class FrugalError(Exception):
    """Bad input, reported to the user in one line."""


class BadValue(FrugalError):
    """``value`` of the parameter ``name`` is wrong: ``problem`` says how."""

    def __init__(self, name: str, value: Any, problem: str):
        self.name, self.value, self.problem = name, value, problem
        super().__init__(self.message(name))

    def message(self, label: str) -> str:
        return f"{label} {self.value}: {self.problem}" if self.value is not None else f"{label}: {self.problem}"

    def __reduce__(self):  # worker processes send it back pickled
        return BadValue, (self.name, self.value, self.problem)


def where(path, line_no=None) -> str:
    """``path`` or ``path:line`` for error messages (line numbers start at 1)."""
    return f"{path}:{line_no}" if line_no is not None else str(path)


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none), for
    one-line errors that quote what a library said."""
    text = str(e)
    return text.splitlines()[0] if text.strip() else type(e).__name__
