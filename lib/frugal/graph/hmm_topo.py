"""HMM topologies for chain (LF-MMI) models and the tree-less context -> pdf mapping.

A phone (in context) is a left-to-right chain of ``num_states`` states. Entering state k
emits its *forward* pdf for one frame; staying emits its *self-loop* pdf. The chain
topology (Kaldi's, 1 state) has separate forward and self-loop pdfs, so a phone in
context has 2 pdfs and lasts >= 1 frame: forward, self-loop*. The 2-state option shares
the pdf of a state between its entry and its self-loop (2 pdfs a phone, >= 2 frames).

Frugal has no decision tree: every (left phone, phone) pair of the phone set (left
phone 0 = utterance start) gets its own pdfs; pdf ids are assigned in a fixed order
from the phone table, so numerator, denominator and decoding graphs of one lang dir
agree. With monophones (context width 1) the left phone is always 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from frugal.errors import FrugalError, where
from frugal.fileio import PathLike, atomic_write_text
from frugal.fsa.openfst import build_fst, fst_arcs
from frugal.lang.symbols import SymbolTable


@dataclass(frozen=True)
class HmmTopology:
    num_states: int = 1
    separate_self_loop_pdf: bool = True

    @property
    def num_pdf_classes(self) -> int:
        return self.num_states * (2 if self.separate_self_loop_pdf else 1)

    def forward_class(self, state: int) -> int:
        return state * (2 if self.separate_self_loop_pdf else 1)

    def self_loop_class(self, state: int) -> int:
        return self.forward_class(state) + (1 if self.separate_self_loop_pdf else 0)


CHAIN_TOPOLOGY = HmmTopology(num_states=1, separate_self_loop_pdf=True)
TWO_STATE_TOPOLOGY = HmmTopology(num_states=2, separate_self_loop_pdf=False)


class PdfMap:
    """pdf id of (left phone, phone, pdf class); left phone 0 means no left context."""

    def __init__(self, phones: Sequence[int], topology: HmmTopology, context_width: int):
        if context_width not in (1, 2):
            raise ValueError("context_width must be 1 (monophone) or 2 (left biphone)")
        self.topology = topology
        self.context_width = context_width
        lefts = [0] + sorted(phones) if context_width == 2 else [0]
        self._base: Dict[Tuple[int, int], int] = {}
        for left in lefts:
            for phone in sorted(phones):
                self._base[(left, phone)] = len(self._base) * topology.num_pdf_classes
        self.num_pdfs = len(self._base) * topology.num_pdf_classes

    def pdf(self, left: int, phone: int, pdf_class: int) -> int:
        return self._base[(left if self.context_width == 2 else 0, phone)] + pdf_class

    def to_text(self, phone_table: SymbolTable) -> str:
        """Lines ``left phone pdf_class pdf_id`` (phone symbols; left <eps> = none)."""
        lines = []
        for (left, phone), base in sorted(self._base.items(), key=lambda kv: kv[1]):
            for c in range(self.topology.num_pdf_classes):
                lines.append(f"{phone_table.symbol(left)} {phone_table.symbol(phone)} {c} {base + c}\n")
        return "".join(lines)

    def write(self, path: PathLike, phone_table: SymbolTable) -> None:
        atomic_write_text(path, self.to_text(phone_table))


def read_pdf_phones(path: PathLike, phone_table: SymbolTable) -> Dict[int, int]:
    """pdf id -> phone id of a pdf_map.txt (`PdfMap.write`'s ``left phone pdf_class pdf_id`` lines)."""
    if not Path(path).is_file():
        raise FrugalError(f"{path}: no such pdf map")
    out = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        f = line.split()
        if not f:
            continue
        if len(f) != 4 or not f[3].isdigit() or f[1] not in phone_table:
            raise FrugalError(f"{where(path, n)}: expected 'left phone pdf_class pdf_id' with phones of phones.txt")
        out[int(f[3])] = phone_table[f[1]]
    return out


def make_h_without_self_loops(ilabels: List[List[int]], pdf_map: PdfMap,
                              disambig_base: int):
    """Kaldi's Ha: context-window labels -> chains of forward pdfs (no self-loops yet).

    ``ilabels[i]`` is the phone window of C's label i ([left, phone], [phone], [] for
    epsilon, [-d] for disambiguation symbol d). Input labels are pdf + 1; label i's
    disambiguation symbol gets the input ``disambig_base + i`` so that it survives
    composition and determinisation and can be removed afterwards.
    Returns (arcs, forward->self-loop input label map, disambiguation input labels).
    """
    topo = pdf_map.topology
    arcs = []
    loop_of: Dict[int, int] = {}
    disambig_inputs = set()
    next_state = 1
    for i, window in enumerate(ilabels):
        if not window:
            continue
        if window[0] < 0:
            arcs.append((0, 0, disambig_base + i, i, 0.0))
            disambig_inputs.add(disambig_base + i)
            continue
        left, phone = (window[0], window[1]) if len(window) == 2 else (0, window[0])
        src = 0
        for k in range(topo.num_states):
            fwd = pdf_map.pdf(left, phone, topo.forward_class(k)) + 1
            loop_of[fwd] = pdf_map.pdf(left, phone, topo.self_loop_class(k)) + 1
            dst = 0 if k == topo.num_states - 1 else next_state
            if dst:
                next_state += 1
            arcs.append((src, dst, fwd, i if k == 0 else 0, 0.0))
            src = dst
    return arcs, loop_of, disambig_inputs


def add_hmm_self_loops(fst, loop_of: Dict[int, int]):
    """Add each HMM state's self-loop where the state is entered (Kaldi's add-self-loops).

    An arc whose input is a forward pdf label f enters an HMM state whose self-loop is
    ``loop_of[f]``; that loop goes on the arc's destination. A graph state entered with
    different loops (or also entered without one: the start state, epsilon arcs) is
    split into one copy per loop, each copy keeping all outgoing arcs and the final cost.
    """
    a = fst_arcs(fst)
    needs: Dict[int, set] = {}
    for _, dst, i, _, _ in a.arcs:
        needs.setdefault(dst, set()).add(loop_of.get(i))
    needs.setdefault(a.start, set()).add(None)
    num_states = a.num_states
    # (state, loop) -> the state that carries it; loop None = the original state, no loop.
    where: Dict[Tuple[int, object], int] = {}
    copies: Dict[int, List[Tuple[int, int]]] = {}  # state -> [(copy, loop label)]
    for s, loops in needs.items():
        real = sorted(x for x in loops if x is not None)
        if len(loops) == 1 and real:
            where[(s, real[0])] = s
            copies.setdefault(s, []).append((s, real[0]))
            continue
        for lab in real:
            where[(s, lab)] = num_states
            copies.setdefault(s, []).append((num_states, lab))
            num_states += 1

    def target(dst: int, ilabel: int) -> int:
        return where.get((dst, loop_of.get(ilabel)), dst)

    out_arcs = []
    by_src: Dict[int, List] = {}
    for arc in a.arcs:
        by_src.setdefault(arc[0], []).append(arc)
    finals = dict(a.finals)
    for s, s_copies in copies.items():
        for c, lab in s_copies:
            out_arcs.append((c, c, lab, 0, 0.0))
            if c != s and s in a.finals:
                finals[c] = a.finals[s]
    for s, arcs in by_src.items():
        holders = [s] + [c for c, _ in copies.get(s, []) if c != s]
        for h in holders:
            for _, dst, i, o, w in arcs:
                out_arcs.append((h, target(dst, i), i, o, w))
    return build_fst(out_arcs, finals, a.start)
