"""Word-level scoring of hypotheses against references, the way Kaldi's scoring scripts do it.

- :func:`read_text` reads a Kaldi ``text`` file (``uttid w1 w2 ...``).
- :func:`score` aligns every hypothesis to its reference (kaldialign, Levenshtein with unit
  costs) and counts insertions, deletions and substitutions; :class:`ErrorCounts` prints
  compute-wer's ``%WER``/``%SER`` lines.
- :func:`format_per_utt` and :func:`format_ops` write the ``per_utt`` and ``ops`` detail
  files of Kaldi's ``scoring_kaldi/wer_details``.
- :func:`score_sweep` scores one set of hypotheses per (LM weight, word insertion penalty),
  writes ``wer_LMWT_WIP`` files and ``best_wer``, as ``local/score_kaldi.sh`` does.
- :func:`bootstrap_ci` is the utterance-resampling confidence interval of Bisani and Ney
  (Kaldi's compute-wer-bootci), through kaldialign.
- :func:`update_results_table` keeps a recipe's RESULTS.md table up to date.
"""
from __future__ import annotations

import datetime
import logging
import math
import numbers
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import kaldialign

from frugal.errors import FrugalError, where
from frugal.fileio import PathLike, atomic_write_text

# The gap symbol given to kaldialign. Words come from whitespace-split text, so the empty
# string can never be a word and an alignment gap cannot be mistaken for one.
EPS = ""
# How Kaldi's align-text and per_utt files print a gap.
KALDI_EPS = "***"

Words = Sequence[str]
Setting = Tuple[float, float]  # (LM weight, word insertion penalty)

log = logging.getLogger(__name__)


def read_text(path: PathLike) -> Dict[str, List[str]]:
    """Read a Kaldi ``text`` file: ``uttid w1 w2 ...`` a line; an utterance may have no words.

    Raises FrugalError naming the file and line for a blank line or a repeated uttid.
    """
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


def write_text(path: PathLike, texts: Mapping[str, Words]) -> None:
    """Write a Kaldi ``text`` file (utterances in sorted order, as Kaldi wants them)."""
    atomic_write_text(path, "".join(" ".join([u, *texts[u]]) + "\n" for u in sorted(texts)))


def align_words(ref: Words, hyp: Words) -> List[Tuple[str, str]]:
    """Minimum edit-distance alignment as (ref word, hyp word) pairs; a gap is :data:`EPS`."""
    return kaldialign.align(list(ref), list(hyp), EPS)


def _op(ref_word: str, hyp_word: str) -> str:
    if ref_word == EPS:
        return "I"
    if hyp_word == EPS:
        return "D"
    return "C" if ref_word == hyp_word else "S"


@dataclass
class ErrorCounts:
    """Error counts of one utterance or summed over many (``+`` adds them)."""

    ins: int = 0
    dels: int = 0
    subs: int = 0
    ref_words: int = 0
    sentences: int = 0
    sentence_errors: int = 0

    @staticmethod
    def from_alignment(alignment: Iterable[Tuple[str, str]]) -> "ErrorCounts":
        ops = Counter(_op(r, h) for r, h in alignment)
        counts = ErrorCounts(ins=ops["I"], dels=ops["D"], subs=ops["S"],
                             ref_words=ops["C"] + ops["S"] + ops["D"], sentences=1)
        counts.sentence_errors = int(counts.errors > 0)
        return counts

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(self.ins + other.ins, self.dels + other.dels, self.subs + other.subs,
                           self.ref_words + other.ref_words, self.sentences + other.sentences,
                           self.sentence_errors + other.sentence_errors)

    @property
    def errors(self) -> int:
        return self.ins + self.dels + self.subs

    @property
    def wer(self) -> float:
        """Word error rate in percent (inf when there are errors but no reference words)."""
        return _percent(self.errors, self.ref_words)

    @property
    def ser(self) -> float:
        """Sentence error rate in percent."""
        return _percent(self.sentence_errors, self.sentences)

    def wer_line(self) -> str:
        return (f"%WER {self.wer:.2f} [ {self.errors} / {self.ref_words}, {self.ins} ins, "
                f"{self.dels} del, {self.subs} sub ]")

    def ser_line(self) -> str:
        return f"%SER {self.ser:.2f} [ {self.sentence_errors} / {self.sentences} ]"


def _percent(num: int, den: int) -> float:
    if den == 0:
        return 0.0 if num == 0 else math.inf
    return 100.0 * num / den


@dataclass
class ScoreResult:
    """Scoring of one hypothesis set: totals, and the alignment of each utterance."""

    counts: ErrorCounts
    alignments: Dict[str, List[Tuple[str, str]]]
    missing: List[str] = field(default_factory=list)  # uttids absent from the hypotheses

    def report(self) -> str:
        """compute-wer's report: %WER and %SER lines and the number of sentences scored."""
        return (f"{self.counts.wer_line()}\n{self.counts.ser_line()}\n"
                f"Scored {self.counts.sentences} sentences, {len(self.missing)} not present in hyp.\n")


def score(refs: Mapping[str, Words], hyps: Mapping[str, Words],
          hyp_name: str = "hypotheses") -> ScoreResult:
    """Align and count errors of ``hyps`` against ``refs`` (both uttid -> words).

    An utterance missing from ``hyps`` is scored as an empty hypothesis (all deletions) with
    a warning, as compute-wer does in its default mode. A hypothesis for an utterance that
    has no reference is an error: it usually means the wrong reference file was given.
    ``hyp_name`` (the file's name) is used in that error message.
    """
    extra = [u for u in hyps if u not in refs]
    if extra:
        more = f" and {len(extra) - 1} more" if len(extra) > 1 else ""
        raise FrugalError(f"{hyp_name}: utterance '{extra[0]}'{more} has no reference")
    missing = [u for u in refs if u not in hyps]
    if missing:
        log.warning("%d of %d utterances have no hypothesis in %s (first: %s); "
                        "they are scored as all deletions", len(missing), len(refs),
                        hyp_name, missing[0])
    total = ErrorCounts()
    alignments = {}
    for uttid in sorted(refs):
        alignment = align_words(refs[uttid], hyps.get(uttid, ()))
        alignments[uttid] = alignment
        total = total + ErrorCounts.from_alignment(alignment)
    return ScoreResult(total, alignments, missing)


def _columns(rows: Sequence[Sequence[str]]) -> List[str]:
    """Left-justify each column of ``rows`` to its widest entry, as align-text does."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [" ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def format_per_utt(result: ScoreResult) -> str:
    """Kaldi's ``per_utt`` file: ref, hyp and op lines of each alignment, and its C/S/I/D counts."""
    lines = []
    for uttid, alignment in result.alignments.items():
        ref = [r if r != EPS else KALDI_EPS for r, _ in alignment]
        hyp = [h if h != EPS else KALDI_EPS for _, h in alignment]
        ops = [_op(r, h) for r, h in alignment]
        lines += [f"{uttid} {row}" for row in _columns([["ref", *ref], ["hyp", *hyp], ["op", *ops]])]
        n = Counter(ops)
        lines.append(f"{uttid} #csid {n['C']} {n['S']} {n['I']} {n['D']}")
    return "".join(line + "\n" for line in lines)


def format_ops(result: ScoreResult) -> str:
    """Kaldi's ``ops`` file: how often each (ref word, hyp word) pair was correct, substituted,
    inserted or deleted, most frequent first within each kind."""
    kinds = {"C": "correct", "S": "substitution", "I": "insertion", "D": "deletion"}
    pairs = Counter((_op(r, h), r or KALDI_EPS, h or KALDI_EPS)
                    for alignment in result.alignments.values() for r, h in alignment)
    rows = [[kinds[op], r, h, str(n)]
            for (op, r, h), n in sorted(pairs.items(),
                                        key=lambda kv: ("CSID".index(kv[0][0]), -kv[1], kv[0]))]
    return "".join(line + "\n" for line in _columns(rows)) if rows else ""


@dataclass
class BootstrapCI:
    """95% confidence interval of the WER (percent) from resampling utterances."""

    wer: float  # the WER of the whole set, not the bootstrap mean
    low: float
    high: float
    replications: int
    seed: int

    def line(self) -> str:
        return f"%WER {self.wer:.2f} 95% Conf Interval [ {self.low:.2f}, {self.high:.2f} ]"


def bootstrap_ci(refs: Sequence[Words], hyps: Sequence[Words], replications: int = 1000,
                 seed: int = 0) -> BootstrapCI:
    """Bisani-Ney bootstrap: resample utterances with replacement ``replications`` times.

    kaldialign.bootstrap_wer_ci gives the bootstrap mean +- 1.96 standard deviations (Kaldi's
    compute-wer-bootci); the exact WER of the set is reported beside it.
    """
    if not refs or sum(len(r) for r in refs) == 0:
        raise ValueError("bootstrap_ci needs at least one reference word")
    ci = kaldialign.bootstrap_wer_ci([list(r) for r in refs], [list(h) for h in hyps],
                                     replications=replications, seed=seed)
    exact = kaldialign.batch_error_rate([list(r) for r in refs], [list(h) for h in hyps])
    return BootstrapCI(100.0 * exact["err_rate"], 100.0 * ci["ci95min"], 100.0 * ci["ci95max"],
                       replications, seed)


def _setting_str(x: float) -> str:
    """Kaldi's spelling in file names: integer LM weights as ``10``, penalties as ``0.5``."""
    if isinstance(x, numbers.Integral):
        return str(x)
    return str(float(x))


@dataclass
class SweepResult:
    best: Setting
    best_result: ScoreResult
    counts: Dict[Setting, ErrorCounts]

    def best_wer_line(self, out_dir: PathLike = ".") -> str:
        lmwt, wip = self.best
        name = Path(out_dir) / f"wer_{_setting_str(lmwt)}_{_setting_str(wip)}"
        return f"{self.best_result.counts.wer_line()} {name}"


def score_sweep(refs: Mapping[str, Words],
                hyps_by_setting: Mapping[Setting, Mapping[str, Words]],
                out_dir: Optional[PathLike] = None,
                bootstrap_replications: int = 1000,
                seed: int = 0) -> SweepResult:
    """Score the hypotheses of each (LM weight, word insertion penalty) and pick the best.

    ``hyps_by_setting`` maps (lmwt, wip) to uttid -> words (the decoder's best paths with
    that scaling); it may be a lazy mapping that decodes on access, each value is read once.
    The best setting has the lowest WER; ties go to the smallest (lmwt, wip).

    With ``out_dir``, writes as Kaldi's score_kaldi.sh: ``penalty_WIP/LMWT.txt`` (the
    hypotheses), ``wer_LMWT_WIP`` (compute-wer's report) for each setting, ``best_wer``,
    and ``wer_details/{per_utt,ops,wer_bootci,lmwt,wip}`` for the best setting.
    """
    if not hyps_by_setting:
        raise ValueError("score_sweep needs at least one (lmwt, wip) setting")
    counts: Dict[Setting, ErrorCounts] = {}
    best: Optional[Setting] = None
    best_result: Optional[ScoreResult] = None
    best_hyps: Mapping[str, Words] = {}
    for setting in sorted(hyps_by_setting):
        lmwt, wip = setting
        hyps = hyps_by_setting[setting]
        result = score(refs, hyps, hyp_name=f"hypotheses for lmwt={lmwt} wip={wip}")
        counts[setting] = result.counts
        if out_dir is not None:
            out = Path(out_dir)
            write_text(out / f"penalty_{_setting_str(wip)}" / f"{_setting_str(lmwt)}.txt", hyps)
            atomic_write_text(out / f"wer_{_setting_str(lmwt)}_{_setting_str(wip)}",
                              result.report())
        if best_result is None or result.counts.wer < best_result.counts.wer:
            best, best_result, best_hyps = setting, result, hyps
    sweep = SweepResult(best, best_result, counts)
    if out_dir is not None:
        write_details(Path(out_dir) / "wer_details", refs, best_hyps, best_result,
                      bootstrap_replications, seed)
        atomic_write_text(Path(out_dir) / "wer_details" / "lmwt", f"{_setting_str(best[0])}\n")
        atomic_write_text(Path(out_dir) / "wer_details" / "wip", f"{_setting_str(best[1])}\n")
        atomic_write_text(Path(out_dir) / "best_wer", sweep.best_wer_line(out_dir) + "\n")
    return sweep


def write_details(details_dir: PathLike, refs: Mapping[str, Words], hyps: Mapping[str, Words],
                  result: ScoreResult, bootstrap_replications: int = 1000, seed: int = 0) -> None:
    """Write ``per_utt``, ``ops`` and (when there are reference words) ``wer_bootci``."""
    details_dir = Path(details_dir)
    atomic_write_text(details_dir / "per_utt", format_per_utt(result))
    atomic_write_text(details_dir / "ops", format_ops(result))
    if result.counts.ref_words > 0:
        uttids = sorted(refs)
        ci = bootstrap_ci([refs[u] for u in uttids], [hyps.get(u, ()) for u in uttids],
                          bootstrap_replications, seed)
        atomic_write_text(details_dir / "wer_bootci", ci.line() + "\n")


RESULTS_HEADER = ["Model", "Data", "Graph", "%WER", "Errors", "Setting", "Date", "Revision"]


def git_revision(repo_dir: PathLike = ".") -> str:
    """Short commit hash of ``repo_dir`` (``+dirty`` with uncommitted changes), or ``unknown``.

    Changes to RESULTS.md files do not count: the recipes write them, so a results table
    updated by one stage would otherwise mark every later row dirty.
    """
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo_dir,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ":(top)", ":(top,exclude,glob)**/RESULTS.md"],
                               cwd=repo_dir, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty.strip() else "")


def _table_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _split_row(line: str) -> List[str]:
    inner = line.strip()[1:-1]
    cells, cur, i = [], "", 0
    while i < len(inner):
        if inner[i] == "\\" and inner[i + 1:i + 2] == "|":
            cur += "|"
            i += 2
            continue
        if inner[i] == "|":
            cells.append(cur.strip())
            cur = ""
        else:
            cur += inner[i]
        i += 1
    cells.append(cur.strip())
    return cells


def update_results_table(path: PathLike, model: str, data: str, graph: str,
                         counts: ErrorCounts, setting: Optional[Setting] = None,
                         date: Optional[str] = None, revision: Optional[str] = None) -> None:
    """Add or replace the row of (model, data, graph) in the results table of ``path``.

    The table (header :data:`RESULTS_HEADER`) is created at the end of the file when absent;
    other text in the file is kept as it is. ``date`` defaults to today (ISO), ``revision``
    to :func:`git_revision` of the current directory.
    """
    path = Path(path)
    row = [model, data, graph, f"{counts.wer:.2f}", f"{counts.errors} / {counts.ref_words}",
           f"lmwt={_setting_str(setting[0])} wip={_setting_str(setting[1])}" if setting else "",
           date or datetime.date.today().isoformat(), revision or git_revision()]
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    header = _table_row(RESULTS_HEADER)
    if header in lines:
        start = lines.index(header)
        end = start + 2  # header and |---| lines
        while end < len(lines) and lines[end].lstrip().startswith("|"):
            end += 1
        rows = [_split_row(line) for line in lines[start + 2:end]]
    else:
        if lines and lines[-1].strip():
            lines.append("")
        start = end = len(lines)
        rows = []
    key = row[:3]
    rows = [r for r in rows if r[:3] != key]
    rows.append(row)
    table = [header, "|" + "|".join("---" for _ in RESULTS_HEADER) + "|"]
    table += [_table_row(r) for r in rows]
    lines[start:end] = table
    atomic_write_text(path, "\n".join(lines) + "\n")
