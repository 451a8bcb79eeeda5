"""Un-smoothed phone n-gram LM for the LF-MMI denominator graph, as Kaldi's chain-est-phone-lm.

The model is a set of history states with relative-frequency distributions over the next
phone (or end of sentence); there are no backoff arcs. Size is controlled by *hard*
backoff: a state whose data are too few is removed and its counts are merged into the
state of its history without the leftmost phone, so transitions into it land there.

Algorithm (Kaldi's chain/language-model.cc, re-implemented):

- Counting. Each sentence starts in history ``[0]`` (0 = beginning of sentence); for every
  phone the count (history, phone) is incremented and the phone is appended to the history,
  which is kept to at most ``ngram_order - 1`` phones; at the end (history, 0) counts the
  end of sentence. A history of length >= ``no_prune_ngram_order`` always has its backoff
  state (the history without its leftmost phone) created, with zero count at first.
- Pruning. ``target = (#histories of length no_prune_ngram_order - 1) + num_extra_states``
  active (non-zero count) states. In 4 stages that move the target from the initial number
  of active states to ``target``, a max-heap of log-likelihood changes picks the state whose
  merge into its backoff state loses the least training log-likelihood (stale entries are
  re-queued). A state may be backed off only if its history is at least
  ``no_prune_ngram_order`` long, every state backing off to it has been merged already,
  and no longer history (this history + a phone it predicts) still holds counts (we need
  the whole context to make that transition). Merging into a state with zero count costs
  ``-1e-15 * count``, so that the smallest states go first.
- Output. Each active state becomes an FST state (in creation order); the count of phone p
  gives an arc with weight ``-log(count / total)`` to the most specific active state of
  ``history + [p]``; the count of 0 gives the final weight; then Connect and arc-sort.

Weighted data sources: Kaldi repeats alignments an integer number of times
(``make_weighted_den_fst.sh --num-repeats 3,2``). Here each source's weight is turned into
an exact integer repeat count: the weights are read as exact decimals and multiplied by the
least common denominator (1.5 and 1.0 become 3 and 2). The result is thus exactly what Kaldi
gives with those repeats, and the arithmetic stays in integers, as Kaldi's.
"""
from __future__ import annotations

import heapq
import logging
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from frugal.errors import BadValue, FrugalError, where
from frugal.fileio import PathLike, atomic_path
from frugal.lang.symbols import SymbolTable

log = logging.getLogger(__name__)

EOS = 0  # phone id 0 is epsilon in phones.txt: Kaldi uses it for both <s> context and </s>


@dataclass
class _LmState:
    history: Tuple[int, ...]
    counts: Dict[int, int] = field(default_factory=dict)  # next phone (0 = </s>) -> count
    total: int = 0
    total_with_parents: int = 0  # own count + counts of all states that back off here
    backoff: int = -1  # index of the state without the leftmost phone, if it must exist
    backoff_allowed: bool = False
    fst_state: int = -1
    _sum_clogc: Optional[float] = None  # cache of sum_p c_p log c_p

    def add(self, phone: int, count: int) -> None:
        self.counts[phone] = self.counts.get(phone, 0) + count
        self.total += count
        self._sum_clogc = None

    def sum_clogc(self) -> float:
        if self._sum_clogc is None:
            self._sum_clogc = sum(_clogc(c) for c in self.counts.values())
        return self._sum_clogc

    def log_like(self) -> float:
        """sum_p c_p log(c_p / total), the training log-likelihood of this state."""
        return self.sum_clogc() - _clogc(self.total)

    def clear(self) -> None:
        self.counts = {}
        self.total = 0
        self.total_with_parents = 0
        self.backoff_allowed = False
        self._sum_clogc = None


def _clogc(c: int) -> float:
    return c * math.log(c) if c > 0 else 0.0


def _approx_equal(a: float, b: float, rel: float = 0.001) -> bool:
    """Kaldi's ApproxEqual (relative tolerance 1e-3)."""
    if a == b:
        return True
    diff = abs(a - b)
    if math.isinf(diff) or math.isnan(diff):
        return False
    return diff <= rel * (abs(a) + abs(b))


def _int_div(a: int, b: int) -> int:
    """C++ integer division (truncates towards zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def integer_repeats(weights: Sequence[float]) -> Tuple[List[int], int]:
    """Exact integer repeat counts for source weights, and the common scale they carry."""
    fracs = []
    for w in weights:
        if not math.isfinite(w) or w < 0:
            raise FrugalError(f"data-source weight {w} must be a finite number >= 0")
        fracs.append(Fraction(repr(float(w))))
    scale = 1
    for f in fracs:
        scale = scale * f.denominator // math.gcd(scale, f.denominator)
    return [int(f * scale) for f in fracs], scale


class _Estimator:
    def __init__(self, ngram_order: int, no_prune_ngram_order: int, num_extra_states: int):
        if ngram_order < 2:
            raise BadValue("ngram_order", ngram_order, "must be >= 2")
        if not 1 <= no_prune_ngram_order <= ngram_order:
            raise BadValue("no_prune_ngram_order", no_prune_ngram_order, f"must be in [1, ngram order {ngram_order}]")
        if num_extra_states < 0:
            raise BadValue("num_extra_states", num_extra_states, "must be >= 0")
        self.order = ngram_order
        self.no_prune = no_prune_ngram_order
        self.num_extra = num_extra_states
        self.states: List[_LmState] = []
        self.index: Dict[Tuple[int, ...], int] = {}
        self.num_active = 0

    # ---- counting ----
    def find_or_create(self, hist: Tuple[int, ...]) -> int:
        i = self.index.get(hist)
        if i is not None:
            return i
        i = len(self.states)
        self.states.append(_LmState(hist))
        self.index[hist] = i
        if len(hist) >= self.no_prune:
            self.states[i].backoff = self.find_or_create(hist[1:])
        return i

    def add_sentence(self, phones: Sequence[int], repeat: int) -> None:
        hist: Tuple[int, ...] = (0,)
        for p in phones:
            if p <= 0:
                raise FrugalError(f"phone id {p} is not allowed in a phone sequence (ids must be > 0)")
            self._increment(hist, p, repeat)
            hist = (hist + (p,))[-(self.order - 1):]
        self._increment(hist, EOS, repeat)

    def _increment(self, hist: Tuple[int, ...], phone: int, count: int) -> None:
        state = self.states[self.find_or_create(hist)]
        if state.total == 0:
            self.num_active += 1
        state.add(phone, count)

    # ---- pruning ----
    def set_parent_counts(self) -> None:
        for i, state in enumerate(self.states):
            j = i
            while j != -1:
                self.states[j].total_with_parents += state.total
                j = self.states[j].backoff

    def backoff_is_allowed(self, i: int) -> bool:
        s = self.states[i]
        if len(s.history) < self.no_prune or s.total != s.total_with_parents or s.total == 0:
            return False
        if len(s.history) == self.order - 1:
            return True
        for p in s.counts:
            if p != EOS:
                j = self.index.get(s.history + (p,))
                if j is not None and self.states[j].total_with_parents != 0:
                    return False
        return True

    def like_change(self, i: int) -> float:
        """Log-likelihood change of merging state i into its backoff state (<= 0)."""
        s = self.states[i]
        b = self.states[s.backoff]
        if b.total == 0:
            return -1.0e-15 * s.total
        # log-like of the merged state, touching only the phones of s
        merged = b.sum_clogc()
        for p, c in s.counts.items():
            cb = b.counts.get(p, 0)
            merged += _clogc(cb + c) - _clogc(cb)
        merged -= _clogc(b.total + s.total)
        return min(merged - s.log_like() - b.log_like(), 0.0)

    def back_off_state(self, i: int, heap: list) -> None:
        s = self.states[i]
        b = self.states[s.backoff]
        had_allowed = b.backoff_allowed
        if b.total != 0:
            self.num_active -= 1
        for p, c in s.counts.items():
            b.add(p, c)
        s.clear()
        b.backoff_allowed = self.backoff_is_allowed(s.backoff)
        if not had_allowed and b.backoff_allowed:
            self._push(heap, self.like_change(s.backoff), s.backoff)

    @staticmethod
    def _push(heap: list, change: float, i: int) -> None:
        # std::priority_queue<pair<float, int>> pops the largest pair: negate both.
        heapq.heappush(heap, (-change, -i))

    def do_backoff(self) -> None:
        num_basic = sum(1 for s in self.states if len(s.history) == self.no_prune - 1)
        initial = self.num_active
        target = num_basic + self.num_extra
        num_stages = 4
        for t in range(num_stages):
            stage_target = initial + _int_div((target - initial) * (t + 1), num_stages)
            heap: list = []
            for i, s in enumerate(self.states):
                s.backoff_allowed = self.backoff_is_allowed(i)
                if s.backoff_allowed:
                    self._push(heap, self.like_change(i), i)
            while self.num_active > stage_target and heap:
                neg_change, neg_i = heapq.heappop(heap)
                i = -neg_i
                change = self.like_change(i)
                if not _approx_equal(-neg_change, change):
                    self._push(heap, change, i)  # stale entry: re-queue with the new cost
                else:
                    self.back_off_state(i, heap)
        log.info("phone LM: target %d + %d = %d states, pruned from %d to %d",
                 num_basic, self.num_extra, target, initial, self.num_active)

    def active_state_for(self, hist: Tuple[int, ...]) -> int:
        """The most specific state with non-zero count for ``hist`` or its backed-off forms."""
        while True:
            i = self.index.get(hist)
            if i is not None and self.states[i].total != 0:
                return i
            if not hist:
                raise RuntimeError("no active LM state for the empty history")
            hist = hist[1:]


@dataclass
class PhoneLm:
    """The estimated phone LM: states with natural-log probabilities (no backoff arcs).

    ``histories[s]`` is state s's phone history (0 = sentence start); ``arcs[s]`` maps a
    phone to (log-prob, next state); ``final_log_probs[s]`` is the end-of-sentence log-prob
    (``-inf`` when the state never ended a sentence); ``counts[s]`` the (weighted) counts.
    """

    ngram_order: int
    start: int
    histories: List[Tuple[int, ...]]
    arcs: List[Dict[int, Tuple[float, int]]]
    final_log_probs: List[float]
    counts: List[Dict[int, float]]

    @property
    def num_states(self) -> int:
        return len(self.histories)

    @property
    def num_arcs(self) -> int:
        return sum(len(a) for a in self.arcs)

    def state_after(self, history: Sequence[int]) -> Optional[int]:
        """The state reached from the start by ``history``; None if it has probability 0."""
        s = self.start
        for p in history:
            arc = self.arcs[s].get(p)
            if arc is None:
                return None
            s = arc[1]
        return s

    def log_prob(self, history: Sequence[int], phone: int) -> float:
        """Natural log P(phone | history from the sentence start); phone 0 = end of sentence."""
        s = self.state_after(history)
        if s is None:
            return -math.inf
        if phone == EOS:
            return self.final_log_probs[s]
        arc = self.arcs[s].get(phone)
        return arc[0] if arc is not None else -math.inf

    def sentence_log_prob(self, phones: Sequence[int]) -> float:
        return sum(self.log_prob(phones[:i], p) for i, p in enumerate(list(phones) + [EOS]))

    def to_openfst(self) -> "kaldifst.StdVectorFst":  # noqa: F821
        """An epsilon-free deterministic acceptor with -log prob weights, as Kaldi's phone_lm.fst."""
        import kaldifst

        fst = kaldifst.StdVectorFst()
        for _ in range(self.num_states):
            fst.add_state()
        fst.start = self.start
        for s in range(self.num_states):
            for p, (lp, dest) in sorted(self.arcs[s].items()):
                fst.add_arc(s, kaldifst.StdArc(p, p, -lp, dest))
            if self.final_log_probs[s] > -math.inf:
                fst.set_final(s, -self.final_log_probs[s])
        kaldifst.arcsort(fst, sort_type="ilabel")
        return fst

    def write_fst(self, path: PathLike) -> None:
        fst = self.to_openfst()
        with atomic_path(path) as tmp:
            fst.write(str(tmp))

    def to_text(self, symbol=None) -> str:
        """A readable dump: one block per state, one line per phone with its log10 prob.

        ``symbol`` maps a phone id to its name (e.g. ``SymbolTable.symbol``); 0 prints as
        ``<s>`` inside histories and ``</s>`` as the predicted symbol.
        """
        def name(p: int, predicted: bool) -> str:
            if p == EOS:
                return "</s>" if predicted else "<s>"
            return symbol(p) if symbol is not None else str(p)

        lines = [f"# phone LM: order {self.ngram_order}, {self.num_states} states, "
                 f"{self.num_arcs} arcs, start state {self.start}; log10 probabilities"]
        for s in range(self.num_states):
            hist = " ".join(name(p, False) for p in self.histories[s])
            total = sum(self.counts[s].values())
            lines.append(f"\\state {s}\\ history: {hist} count: {total:g}")
            for p, (lp, dest) in sorted(self.arcs[s].items()):
                lines.append(f"{lp / math.log(10):.6f}\t{name(p, True)}\t-> {dest}")
            if self.final_log_probs[s] > -math.inf:
                lines.append(f"{self.final_log_probs[s] / math.log(10):.6f}\t</s>")
        return "\n".join(lines) + "\n"

    def write_text(self, path: PathLike, symbol=None) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(self.to_text(symbol))


def estimate_phone_lm(
    sources: Sequence[Tuple[float, Sequence[Sequence[int]]]],
    ngram_order: int = 4,
    no_prune_ngram_order: int = 3,
    num_extra_states: int = 2000,
) -> PhoneLm:
    """Estimate the phone LM from weighted sources of phone-id sequences (ids > 0).

    ``sources``: (weight, sequences) pairs, e.g. ``[(1.5, supervised), (1.0, unsupervised)]``.
    Defaults follow Kaldi's chain recipes (make_weighted_den_fst.sh uses
    ``--num-extra-lm-states=2000``; chain-est-phone-lm defaults to order 4 and
    no-prune order 3).
    """
    repeats, scale = integer_repeats([w for w, _ in sources])
    est = _Estimator(ngram_order, no_prune_ngram_order, num_extra_states)
    for repeat, (_, seqs) in zip(repeats, sources):
        if repeat == 0:
            continue
        for seq in seqs:
            est.add_sentence(seq, repeat)
    if est.num_active == 0:
        raise FrugalError("no phone sequences to estimate the phone LM from")
    est.set_parent_counts()
    est.do_backoff()

    active = [i for i, s in enumerate(est.states) if s.total != 0]
    for n, i in enumerate(active):
        est.states[i].fst_state = n
    histories, arcs, finals, counts = [], [], [], []
    for i in active:
        s = est.states[i]
        histories.append(s.history)
        counts.append({p: c / scale for p, c in s.counts.items()})
        out: Dict[int, Tuple[float, int]] = {}
        final = -math.inf
        for p, c in s.counts.items():
            lp = math.log(c / s.total)
            if p == EOS:
                final = lp
            else:
                dest = est.states[est.active_state_for(s.history + (p,))].fst_state
                out[p] = (lp, dest)
        arcs.append(out)
        finals.append(final)
    start = est.states[est.active_state_for((0,))].fst_state
    lm = PhoneLm(ngram_order, start, histories, arcs, finals, counts)
    _check_connected(lm)
    return lm


def _check_connected(lm: PhoneLm) -> None:
    """Every state is reachable and co-reachable (Kaldi asserts Connect() deletes nothing)."""
    seen = {lm.start}
    stack = [lm.start]
    while stack:
        s = stack.pop()
        for _, dest in lm.arcs[s].values():
            if dest not in seen:
                seen.add(dest)
                stack.append(dest)
    if len(seen) != lm.num_states:
        raise RuntimeError(f"phone LM: {lm.num_states - len(seen)} states are unreachable")


def read_phone_seqs(path: PathLike, phones=None) -> List[List[int]]:
    """Phone sequences of a file of lines ``uttid p1 p2 ...``: phone symbols of the table
    ``phones``, or integer ids (> 0) without one."""
    seqs = []
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise FrugalError(f"cannot read {path}: {e.strerror}") from None
    with f:
        for n, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            ids = []
            for tok in fields[1:]:
                if phones is not None:
                    i = phones.get(tok)
                    if i is None:
                        raise FrugalError(f"{where(path, n)}: phone '{tok}' is not in the phone table")
                elif tok.isdigit():
                    i = int(tok)
                else:
                    raise FrugalError(f"{where(path, n)}: '{tok}' is not an integer phone id "
                                      "(give a phone table to read symbols)")
                if i <= 0:
                    raise FrugalError(f"{where(path, n)}: phone '{tok}' has id {i}; "
                                      "the phone LM needs ids > 0 (0 is epsilon)")
                ids.append(i)
            seqs.append(ids)
    return seqs


def make_phone_lm(sources: Sequence[Tuple[PathLike, float]], output: PathLike, phones_txt: Optional[PathLike] = None,
                  text_output: Optional[PathLike] = None, ngram_order: int = 4, no_prune_ngram_order: int = 3,
                  num_extra_states: int = 2000) -> PhoneLm:
    """The phone LM of phone-sequence files (``sources``: (file, weight)) into ``output``
    (OpenFst acceptor), and a readable dump into ``text_output``."""
    phones = None
    if phones_txt:
        if not Path(phones_txt).is_file():
            raise BadValue("phones_txt", phones_txt, "no such file")
        phones = SymbolTable.read(phones_txt)
    weighted = []
    for path, weight in sources:
        seqs = read_phone_seqs(path, phones)
        log.info("%s: %d sequences, weight %g", path, len(seqs), weight)
        weighted.append((weight, seqs))
    lm = estimate_phone_lm(weighted, ngram_order, no_prune_ngram_order, num_extra_states)
    log.info("phone LM: %d states, %d arcs", lm.num_states, lm.num_arcs)
    lm.write_fst(output)
    if text_output:
        lm.write_text(text_output, phones.symbol if phones is not None else None)
    return lm
