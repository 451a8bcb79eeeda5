"""Option types shared by the command-line tools (argparse ``type=`` functions)."""
from __future__ import annotations

import argparse
from typing import List, Optional, Tuple

from frugal.errors import BadValue


def weighted_path(spec: str) -> Tuple[str, float]:
    """``FILE`` or ``FILE:WEIGHT`` (a file name may itself contain ':' if no weight follows)."""
    path, sep, weight = spec.rpartition(":")
    if sep:
        try:
            return path, float(weight)
        except ValueError:
            pass
    return spec, 1.0


def float_range(text: str) -> Tuple[float, float]:
    """``MIN,MAX``."""
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX, got '{text}'") from None
    if low > high:
        raise argparse.ArgumentTypeError(f"MIN > MAX in '{text}'")
    return low, high


def int_list(text: str) -> List[int]:
    """Comma-separated integers, e.g. ``0,0,1``."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': expected comma-separated integers, e.g. 0,0,1") from None


def int_range(text: str) -> List[int]:
    """``MIN:MAX`` (integers, both included; 1 <= MIN <= MAX), or a single ``N``."""
    try:
        lo, _, hi = text.partition(":")
        lo_i, hi_i = int(lo), int(hi or lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': expected MIN:MAX (integers), e.g. 7:17") from None
    if lo_i < 1 or hi_i < lo_i:
        raise argparse.ArgumentTypeError(f"'{text}': need 1 <= MIN <= MAX")
    return list(range(lo_i, hi_i + 1))


def float_list(text: str) -> List[float]:
    """Comma-separated numbers, e.g. ``0.0,0.5,1.0``."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': expected comma-separated numbers, e.g. 0.0,0.5,1.0") from None
    if not values:
        raise argparse.ArgumentTypeError(f"'{text}': no values")
    return values


def named_path(text: str) -> Tuple[str, str]:
    """``NAME:PATH`` (the path may itself contain colons)."""
    name, sep, path = text.partition(":")
    if not sep or not name.strip() or not path:
        raise argparse.ArgumentTypeError(f"'{text}': expected NAME:PATH, e.g. am:exp/semisup/sup_am")
    return name.strip(), path


def count_and_path(text: str) -> Tuple[int, str]:
    """``N:PATH`` with N a non-negative integer."""
    n, sep, path = text.partition(":")
    if not sep or not path or not n.isdigit():
        raise argparse.ArgumentTypeError(f"'{text}': expected N:PATH with N a non-negative integer, "
                                         f"e.g. 4:exp/tdnnf_semisup_am/decode_3g")
    return int(n), path


def add_results_arguments(p, graph_example: str = "tgsmall") -> None:
    """--results with the row's --model-name, --data-name and --graph-name (scoring tools)."""
    p.add_argument("--results", help="RESULTS.md to update (needs --model-name, --data-name, --graph-name)")
    p.add_argument("--model-name", help="model column of RESULTS.md, e.g. tdnnf")
    p.add_argument("--data-name", help="data column, e.g. test")
    p.add_argument("--graph-name", help=f"graph column, e.g. {graph_example}")


def results_row(args) -> Optional[Tuple[str, str, str, str]]:
    """(RESULTS.md, model, data, graph) of `add_results_arguments`' options, or None."""
    if not args.results:
        return None
    if not (args.model_name and args.data_name and args.graph_name):
        raise BadValue("results", args.results, "needs --model-name, --data-name and --graph-name")
    return args.results, args.model_name, args.data_name, args.graph_name
