"""`frugal <tool> ...`: the one command-line entry point.

Each tool is a module in frugal.bin, named after the tool with '-' replaced by '_'
(``frugal make-mini-corpus`` runs ``frugal.bin.make_mini_corpus.main(argv)``). A tool's
module docstring's first line is its summary in ``frugal --help``. A FrugalError raised
by a tool becomes a one-line message and exit status 1.

Every tool takes ``--config FILE.yaml``: a mapping of option names to values, expanded
into command-line options where ``--config`` stands, so options given after it win (and a
tool with sub-commands takes it after the sub-command's name).
The YAML is read with ``yaml.safe_load``: data, never code.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys

import frugal.bin
from frugal.errors import FrugalError

_NOT_TOOLS = {"main"}


def expand_config(argv: list[str]) -> list[str]:
    """Replace ``--config FILE`` in place by the options the YAML file lists (module doc)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--config" or arg.startswith("--config="):
            if arg == "--config":
                if i + 1 >= len(argv):
                    raise FrugalError("option --config needs a file")
                path, i = argv[i + 1], i + 2
            else:
                path, i = arg.split("=", 1)[1], i + 1
            out += _config_options(path)
            continue
        out.append(arg)
        i += 1
    return out


def _config_options(path: str) -> list[str]:
    import yaml

    try:
        with open(path) as f:
            conf = yaml.safe_load(f)
    except OSError as e:
        raise FrugalError(f"cannot read config {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise FrugalError(f"{path}{line}: not valid YAML") from None
    if conf is None:
        return []
    if not isinstance(conf, dict):
        raise FrugalError(f"{path}: a config must be a mapping of option: value")
    opts: list[str] = []
    for key, value in conf.items():
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            opts.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list):
            opts += [flag] + [str(v) for v in value]
        elif isinstance(value, dict):
            raise FrugalError(f"{path}: option '{key}' has a nested mapping")
        else:
            opts += [flag, str(value)]
    return opts


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
        rc = mod.main(expand_config(rest))
    except FrugalError as e:
        print(f"frugal {name}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"frugal {name}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
