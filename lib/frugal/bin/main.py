"""`frugal <tool> ...`: the one command-line entry point.

Each tool is a module in frugal.bin named after the tool with '-' replaced by '_'
(``frugal make-den-graph`` is ``frugal.bin.make_den_graph``): its docstring's first line is
its summary in ``frugal --help`` and the rest its help text; ``add_arguments(parser)``
declares its options and ``run(args)`` makes the one library call it stands for. This
module parses, sets up logging once, and turns a FrugalError into a one-line message and
exit status 1; a BadValue (a library parameter with a bad value) is named by its flag.

Every tool takes ``--config FILE.yaml`` (`frugal.bin._cli`).
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from types import ModuleType

import frugal.bin
from frugal.bin._cli import UsageError, OneLineParser, expand_config, flag_of, takes_flag
from frugal.errors import BadValue, FrugalError
from frugal.logs import setup_cli_logging

def tool_names() -> list[str]:
    return sorted(m.name.replace("_", "-") for m in pkgutil.iter_modules(frugal.bin.__path__)
                  if not m.name.startswith("_") and m.name != "main")


def tool_module(name: str) -> ModuleType:
    return importlib.import_module("frugal.bin." + name.replace("-", "_"))


def tool_parser(name: str, mod: ModuleType) -> argparse.ArgumentParser:
    """The tool's parser: its docstring says what it does, its add_arguments what it takes."""
    doc = (mod.__doc__ or "").strip()
    summary, _, rest = doc.partition("\n")
    parser = OneLineParser(prog=f"frugal {name}", description=summary, epilog=rest.strip() or None,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mod.add_arguments(parser)
    return parser


def _summary(name: str) -> str:
    try:
        mod = tool_module(name)
    except Exception as e:  # a broken tool must not hide the others from --help
        return f"(cannot import: {e})"
    return ((mod.__doc__ or "").strip().splitlines() or [""])[0]


def usage() -> str:
    return "\n".join(["usage: frugal <tool> [options]   (frugal <tool> --help for a tool's options)", "", "tools:"]
                     + [f"  {n:24s} {_summary(n)}" for n in tool_names()])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in tool_names():
        print(f"frugal: error: unknown tool '{name}'\n\n{usage()}", file=sys.stderr)
        return 2
    mod = tool_module(name)
    parser = tool_parser(name, mod)
    try:
        args = parser.parse_args(expand_config(rest, lambda flag: takes_flag(parser, flag)))
        setup_cli_logging()
        rc = mod.run(args)
    except BadValue as e:
        print(f"frugal {name}: error: {e.message(flag_of(parser, e.name))}", file=sys.stderr)
        return 1
    except UsageError as e:
        print(f"frugal {name}: error: {e}", file=sys.stderr)
        return 2
    except FrugalError as e:
        print(f"frugal {name}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"frugal {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `frugal ... | head`: the reader is gone; stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush must not fail too
        return 141  # 128 + SIGPIPE, a shell's status for a writer killed by it
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
