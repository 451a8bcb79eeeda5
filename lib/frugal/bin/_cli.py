"""The command line's parsing: ``--config FILE.yaml``, one-line usage errors, the flag of a parameter.

Every tool takes ``--config FILE.yaml``: a mapping of option names to values, expanded into
command-line options where ``--config`` stands, so options given after it win (a tool with
sub-commands takes it after the sub-command's name). The YAML is read with
``yaml.safe_load``: data, never code.
"""
from __future__ import annotations

import argparse
import re

import yaml

from frugal.errors import FrugalError


def expand_config(argv: list[str], known=None) -> list[str]:
    """Replace ``--config FILE`` in place by the options the YAML file lists (module doc);
    ``known(flag)`` says whether the tool takes an option, so that a typo in the file is
    named with its file and line rather than as an unknown flag of the command line."""
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
            out += _config_options(path, known)
            continue
        # `--wip -1.0,-0.5,0.0`: argparse takes a value that starts with '-' and is not one
        # plain negative number for an option; a list of numbers is the option's value.
        if (arg.startswith("--") and "=" not in arg and i + 1 < len(argv)
                and _NEGATIVE_NUMBERS.match(argv[i + 1])):
            out.append(f"{arg}={argv[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


_NEGATIVE_NUMBERS = re.compile(r"^-[0-9.]+([eE][-+]?[0-9]+)?(,-?[0-9.]+([eE][-+]?[0-9]+)?)+$")


def _config_options(path: str, known=None) -> list[str]:
    try:
        with open(path) as f:
            text = f.read()
        conf = yaml.safe_load(text)
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
    lines = {str(k.value): k.start_mark.line + 1 for k, _ in yaml.compose(text).value}
    opts: list[str] = []
    for key, value in conf.items():
        flag = "--" + str(key).replace("_", "-")
        if known is not None and not known(flag):
            raise UsageError(f"{path}:{lines.get(str(key), '?')}: unknown option '{key}'")
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


class UsageError(FrugalError):
    """A command line argparse cannot read."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage and exit
        raise UsageError(f"{message} (see {self.prog} --help)")


def takes_flag(parser: argparse.ArgumentParser, flag: str) -> bool:
    """Whether ``parser`` or one of its sub-commands has the option ``flag``."""
    if flag in parser._option_string_actions:
        return True
    return any(takes_flag(sub, flag) for action in parser._actions
               if isinstance(action, argparse._SubParsersAction) for sub in action.choices.values())


def flag_of(parser: argparse.ArgumentParser, dest: str) -> str:
    """The option string that sets ``dest`` (``beam`` -> ``--beam``), searching sub-commands
    too; ``dest`` itself where no option sets it."""
    for action in parser._actions:
        if action.dest == dest and action.option_strings:
            return max(action.option_strings, key=len)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found = flag_of(sub, dest)
                if found != dest:
                    return found
    return dest
