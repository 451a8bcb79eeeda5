"""Word-level scoring of hypotheses against references, the way Kaldi's scoring scripts do it.

- :func:`score` aligns every hypothesis to its reference (kaldialign, Levenshtein with unit
  costs) and counts insertions, deletions and substitutions; :class:`ErrorCounts` prints
  compute-wer's ``%WER``/``%SER`` lines.
- :func:`format_per_utt` and :func:`format_ops` write the ``per_utt`` and ``ops`` detail
  files of Kaldi's ``scoring_kaldi/wer_details``.
- :func:`score_sweep` scores one set of hypotheses per (LM weight, word insertion penalty),
  writes ``wer_LMWT_WIP`` files and ``best_wer``, as ``local/score_kaldi.sh`` does.
- :func:`bootstrap_ci` is the utterance-resampling confidence interval of Bisani and Ney
  (Kaldi's compute-wer-bootci), through kaldialign.
"""
from __future__ import annotations

import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import kaldialign

from frugal.data.cuts import read_transcripts
from frugal.dirs import DecodeDir
from frugal.errors import BadValue, FrugalError
from frugal.fileio import PathLike, atomic_write_text
from frugal.lang.lang import Lang
from frugal.lang.text import read_text, write_text

# The gap symbol given to kaldialign. Words come from whitespace-split text, so the empty
# string can never be a word and an alignment gap cannot be mistaken for one.
EPS = ""
# How Kaldi's align-text and per_utt files print a gap.
KALDI_EPS = "***"

Words = Sequence[str]
Setting = Tuple[float, float]  # (LM weight, word insertion penalty)

log = logging.getLogger(__name__)


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


@dataclass
class SweepResult:
    best: Setting
    best_result: ScoreResult
    counts: Dict[Setting, ErrorCounts]

    def best_wer_line(self, out_dir: PathLike = ".") -> str:
        return f"{self.best_result.counts.wer_line()} {DecodeDir(out_dir).wer_file(self.best)}"


def score_sweep(refs: Mapping[str, Words],
                hyps_by_setting: Mapping[Setting, Mapping[str, Words]],
                out_dir: Optional[PathLike] = None,
                bootstrap_replications: int = 1000,
                seed: int = 0,
                reported: Optional[Setting] = None) -> SweepResult:
    """Score the hypotheses of each (LM weight, word insertion penalty) and pick the best.

    ``hyps_by_setting`` maps (lmwt, wip) to uttid -> words (the decoder's best paths with
    that scaling); it may be a lazy mapping that decodes on access, each value is read once.
    The best setting has the lowest WER; ties go to the smallest (lmwt, wip).

    With ``out_dir``, writes as Kaldi's score_kaldi.sh: ``penalty_WIP/LMWT.txt`` (the
    hypotheses), ``wer_LMWT_WIP`` (compute-wer's report) for each setting, ``best_wer``,
    and ``wer_details/{per_utt,ops,wer_bootci,lmwt,wip}`` for the reported setting: the best
    one, or ``reported`` (a test set's dev-chosen setting), so that its confidence interval
    describes the WER a results table shows.
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
            out = DecodeDir(out_dir)
            write_text(out.scored_hyps_file(setting), hyps)
            atomic_write_text(out.wer_file(setting), result.report())
        if best_result is None or result.counts.wer < best_result.counts.wer:
            best, best_result, best_hyps = setting, result, hyps
        if setting == reported:
            reported_result, reported_hyps = result, hyps
    if reported is None:
        reported, reported_result, reported_hyps = best, best_result, best_hyps
    elif reported not in counts:
        raise ValueError(f"reported setting {reported} is not among the settings scored")
    sweep = SweepResult(best, best_result, counts)
    if out_dir is not None:
        out = DecodeDir(out_dir)
        write_details(out.details_dir, refs, reported_hyps, reported_result, bootstrap_replications, seed)
        out.write_best_setting(reported)
        atomic_write_text(out.best_wer_file, sweep.best_wer_line(out_dir) + "\n")
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


def read_wer_report(path: PathLike) -> ErrorCounts:
    """The ErrorCounts of a compute-wer report (``wer_LMWT_WIP``, ``wer``): its %WER and %SER lines."""
    try:
        text = Path(path).read_text()
    except OSError:
        raise FrugalError(f"{path}: missing (run frugal score-lattices)") from None
    m = re.search(r"^%WER \S+ \[ (\d+) / (\d+), (\d+) ins, (\d+) del, (\d+) sub \]", text, re.M)
    s = re.search(r"^%SER \S+ \[ (\d+) / (\d+) \]", text, re.M)
    if m is None or s is None:
        raise FrugalError(f"{path}: not a compute-wer report (no %WER and %SER lines)")
    errors, ref_words, ins, dels, subs = (int(x) for x in m.groups())
    return ErrorCounts(ins=ins, dels=dels, subs=subs, ref_words=ref_words, sentences=int(s.group(2)),
                       sentence_errors=int(s.group(1)))


def score_text_files(ref: Optional[PathLike], hyp: PathLike, out_dir: Optional[PathLike] = None,
                     bootstrap_replications: int = 1000, seed: int = 0,
                     ref_cuts: Optional[PathLike] = None, phones_lang: Optional[PathLike] = None) -> ScoreResult:
    """Score a Kaldi text of hypotheses against one of references, or the transcripts of
    ``ref_cuts`` (Kaldi's compute-wer); with ``out_dir``, write wer, per_utt, ops and
    wer_bootci there. With ``phones_lang`` (a lang directory) words become the phones of
    their pronunciations first (`Lang.word_phones`): a phone error rate, in compute-wer's
    format (its %WER line is then the PER, as in Kaldi's TIMIT scoring)."""
    if bootstrap_replications < 1:
        raise BadValue("bootstrap_replications", bootstrap_replications, "must be at least 1")
    if seed < 0:
        raise BadValue("seed", seed, "must be 0 or more")
    if (ref is None) == (ref_cuts is None):
        raise BadValue("ref", ref, "give the references as a text or as cuts, one of the two")
    refs = read_text(ref) if ref is not None else read_transcripts(ref_cuts)
    hyps = read_text(hyp)
    if phones_lang is not None:  # phone error rate: both sides in the lexicon's phones
        lang = Lang(phones_lang, need=("phones.txt", "words.txt", "lexiconp.txt"))
        refs = {u: lang.word_phones(w) for u, w in refs.items()}
        hyps = {u: lang.word_phones(w) for u, w in hyps.items()}
    result = score(refs, hyps, hyp_name=str(hyp))
    if out_dir:
        atomic_write_text(Path(out_dir) / "wer", result.report())
        write_details(out_dir, refs, hyps, result, bootstrap_replications, seed)
    return result
