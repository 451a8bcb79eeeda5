"""`frugal <tool> ...`: the one command-line entry point.

Each tool is a module in frugal.bin, named after the tool with '-' replaced by '_'
(``frugal make-mini-corpus`` runs ``frugal.bin.make_mini_corpus.main(argv)``). A tool's
module docstring's first line is its summary in ``frugal --help``. A FrugalError raised
by a tool becomes a one-line message and exit status 1.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys

import frugal.bin
from frugal.errors import FrugalError

_NOT_TOOLS = {"main"}


def tool_names() -> list[str]:
    return sorted(
        m.name.replace("_", "-")
        for m in pkgutil.iter_modules(frugal.bin.__path__)
        if not m.name.startswith("_") and m.name not in _NOT_TOOLS
    )


def _summary(name: str) -> str:
    try:
        mod = importlib.import_module("frugal.bin." + name.replace("-", "_"))
    except Exception as e:  # a broken tool must not hide the others from --help
        return f"(cannot import: {e})"
    return ((mod.__doc__ or "").strip().splitlines() or [""])[0]


def usage() -> str:
    lines = ["usage: frugal <tool> [options]   (frugal <tool> --help for a tool's options)",
             "", "tools:"]
    lines += [f"  {n:24s} {_summary(n)}" for n in tool_names()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in tool_names():
        print(f"frugal: error: unknown tool '{name}'\n\n{usage()}", file=sys.stderr)
        return 2
    mod = importlib.import_module("frugal.bin." + name.replace("-", "_"))
    try:
        rc = mod.main(rest)
    except FrugalError as e:
        print(f"frugal {name}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"frugal {name}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
