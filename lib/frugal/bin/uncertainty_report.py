"""Word confidences, reference-free WER estimates and error localisation from Monte-Carlo dropout decodes.

The thesis's tables 3.2 and 3.3 (Vyas, ch. 3; Vyas et al., ICASSP 2019) for decode
directories of `frugal decode --dropout-samples N`. Each --set NAME:DECODE_DIR:CUTS gives
one evaluation set: the references are the supervision texts of CUTS, the best hypothesis
of an utterance is the dropout-off 1-best (DECODE_DIR/hyp.J.txt), and its alternatives come
from two methods:

  dropout  the 1-bests of the N dropout passes (DECODE_DIR/dropout/k/hyp.J.txt);
  n-best   the N best word sequences of the dropout-off lattice (DECODE_DIR/lat.J.pt; its
           first entry is the 1-best itself), ranked with graph scale 1 and acoustic scale
           acoustic_scale / post_decode_acwt of DECODE_DIR/decode.json, the search's own
           ranking; --nbest changes N. The baseline of the thesis.

A word's confidence is the fraction of alternatives that align the identical word to it;
words below a threshold are flagged as errors (table 3.3: IoU, precision and recall of the
flagged words against the true substitutions and insertions). The WER estimate is the mean
of the --top-k largest edit distances among all pairs of the N + 1 hypotheses over their
mean length (table 3.2). Both tables are split by reference length. The report (markdown)
is written to --output and printed.

  frugal uncertainty-report --set dev:exp/m/decode_dev:data/fbank/cuts_dev.jsonl.gz \\
      --set test:exp/m/decode_test:data/fbank/cuts_test.jsonl.gz --words data/lang/words.txt \\
      --top-k 4 --output exp/m/uncertainty.md
"""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from frugal.decode.best_paths import read_decode_dir_lattices, refs_from_cuts
from frugal.lattice.paths import nbest
from frugal.decode.scoring import read_text
from frugal.errors import FrugalError
from frugal.fileio import atomic_write_text
from frugal.lang.symbols import SymbolTable
from frugal.semisup.uncertainty import DecodedSet, uncertainty_report

log = logging.getLogger("frugal.uncertainty_report")

METHODS = ("dropout", "n-best")


@dataclass
class SetSpec:
    name: str
    decode_dir: Path
    cuts: str


@dataclass
class DropoutDecode:
    """What a report says of a set besides its tables."""

    spec: SetSpec
    num_utterances: int
    dropout_samples: int
    dropout_proportion: float
    dropout_seed: int
    pass_seeds: List[int]
    nbest_size: int
    nbest_acoustic_scale: float


def parse_set(text: str) -> SetSpec:
    """NAME:DECODE_DIR:CUTS (the cuts' path may itself contain colons)."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise FrugalError(f"--set {text!r}: expected NAME:DECODE_DIR:CUTS, e.g. dev:exp/m/decode_dev:cuts_dev.jsonl.gz")
    return SetSpec(parts[0], Path(parts[1]), parts[2])


def finished_num_jobs(decode_dir: Path) -> int:
    """num_jobs of a finished decode directory (one with .done)."""
    if not (decode_dir / ".done").is_file():
        raise FrugalError(f"{decode_dir}: not a finished decode directory (no .done; run frugal decode)")
    try:
        return int((decode_dir / "num_jobs").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        raise FrugalError(f"{decode_dir}/num_jobs: missing or not a number") from None


def read_decode_dir_hyps(decode_dir: Path) -> Dict[str, List[str]]:
    """uttid -> words of hyp.1.txt .. hyp.N.txt of a finished decode directory."""
    hyps: Dict[str, List[str]] = {}
    for j in range(1, finished_num_jobs(decode_dir) + 1):
        path = decode_dir / f"hyp.{j}.txt"
        if not path.is_file():
            raise FrugalError(f"{path}: missing (num_jobs says more jobs)")
        for uttid, words in read_text(path).items():
            if uttid in hyps:
                raise FrugalError(f"{path}: utterance '{uttid}' appears in two jobs")
            hyps[uttid] = words
    return hyps


def read_json(path: Path) -> Dict:
    try:
        return json.loads(path.read_text())
    except OSError:
        raise FrugalError(f"{path}: missing") from None
    except json.JSONDecodeError as e:
        raise FrugalError(f"{path}: not JSON: {e}") from None


def read_dropout_info(decode_dir: Path) -> Dict:
    """DECODE_DIR/dropout.json of frugal decode --dropout-samples."""
    path = decode_dir / "dropout.json"
    if not path.is_file() or not (decode_dir / "dropout").is_dir():
        raise FrugalError(f"{decode_dir}: no dropout decodes (no dropout.json and dropout/): decode it with "
                          f"frugal decode --dropout-samples N")
    info = read_json(path)
    for key in ("dropout_samples", "dropout_proportion", "dropout_seed", "pass_seeds"):
        if key not in info:
            raise FrugalError(f"{path}: no '{key}' (not written by frugal decode --dropout-samples)")
    if int(info["dropout_samples"]) < 1:
        raise FrugalError(f"{path}: dropout_samples {info['dropout_samples']}: no samples")
    return info


def check_same_utterances(refs: Dict, hyps: Dict, where: Path, cuts: str) -> None:
    """One-line FrugalError for an utterance of the cuts without a hypothesis, or the reverse."""
    for uttid in refs:
        if uttid not in hyps:
            raise FrugalError(f"{where}: no hypothesis for utterance '{uttid}' of {cuts} "
                              f"({len([u for u in refs if u not in hyps])} missing)")
    for uttid in hyps:
        if uttid not in refs:
            raise FrugalError(f"{where}: utterance '{uttid}' is not in {cuts}: decoded from other cuts?")


def nbest_hypotheses(decode_dir: Path, uttids: Sequence[str], words: SymbolTable, n: int,
                     acoustic_scale: float) -> Dict[str, List[List[str]]]:
    """The ``n`` best word sequences of each utterance's dropout-off lattice, best first
    (graph scale 1, ``acoustic_scale`` on the lattices' acoustic costs); an utterance
    without a lattice (no path survived the search) has none."""
    lattices = read_decode_dir_lattices(decode_dir)
    out: Dict[str, List[List[str]]] = {}
    for uttid in uttids:
        lat = lattices.get(uttid)
        out[uttid] = [] if lat is None else [[words.symbol(w) for w in p.words]
                                             for p in nbest(lat, n, 1.0, acoustic_scale)]
    missing = [u for u in uttids if u not in lattices]
    if missing:
        log.warning("%s: %d utterance(s) have no lattice (so no n-best list), e.g. %s",
                    decode_dir, len(missing), missing[0])
    return out


def load_decoded_set(spec: SetSpec, words: SymbolTable, nbest_size: Optional[int] = None
                     ) -> Tuple[DecodedSet, DropoutDecode]:
    """The references, dropout-off 1-bests, dropout 1-bests and dropout-off n-best lists of
    one decode directory (n-best size: ``nbest_size``, default the number of dropout samples)."""
    refs = refs_from_cuts(spec.cuts)
    if not refs:
        raise FrugalError(f"{spec.cuts}: no cuts")
    best = read_decode_dir_hyps(spec.decode_dir)
    check_same_utterances(refs, best, spec.decode_dir, spec.cuts)
    info = read_dropout_info(spec.decode_dir)
    num_samples = int(info["dropout_samples"])
    samples: Dict[str, List[List[str]]] = {u: [] for u in refs}
    for k in range(1, num_samples + 1):
        pass_dir = spec.decode_dir / "dropout" / str(k)
        hyps = read_decode_dir_hyps(pass_dir)
        check_same_utterances(refs, hyps, pass_dir, spec.cuts)
        for u in refs:
            samples[u].append(hyps[u])
    decode_info = read_json(spec.decode_dir / "decode.json")
    if "post_decode_acwt" not in decode_info:
        raise FrugalError(f"{spec.decode_dir}/decode.json: no post_decode_acwt (not written by frugal decode)")
    # The lattices hold acoustic costs times post_decode_acwt; the search weighed them by
    # acoustic_scale: this scale ranks the lattice's paths as the search did.
    acoustic_scale = float(decode_info.get("acoustic_scale", 1.0)) / float(decode_info["post_decode_acwt"])
    n = nbest_size or num_samples
    nbests = nbest_hypotheses(spec.decode_dir, list(refs), words, n, acoustic_scale)
    ds = DecodedSet(spec.name, refs, best, {"dropout": samples, "n-best": nbests})
    ds.check()
    return ds, DropoutDecode(spec, len(refs), num_samples, float(info["dropout_proportion"]),
                             int(info["dropout_seed"]), [int(s) for s in info["pass_seeds"]], n, acoustic_scale)


def report_header(decodes: Sequence[DropoutDecode], top_k: int, thresholds: Sequence[float]) -> str:
    lines = [
        "# Uncertainty of speech recognition with Monte-Carlo dropout",
        "",
        "Best hypothesis: the dropout-off 1-best. Alternatives: *dropout* = the 1-bests of the N decodes "
        "with dropout active; *n-best* = the N-best list of the dropout-off lattice (its 1-best included). "
        f"WER estimate: mean of the top-K = {top_k} pairwise edit distances among the best hypothesis and "
        "its alternatives over their mean length. Error localisation: words whose confidence (fraction of "
        "alternatives agreeing) is below the threshold "
        f"({', '.join(f'{t:g}' for t in thresholds)}) are flagged.",
        "",
        "| Set | Decode dir | Utts | Dropout samples N | Dropout proportion | Dropout seed | Pass seeds "
        "| N-best size | N-best acoustic scale |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d in decodes:
        lines.append(f"| {d.spec.name} | {d.spec.decode_dir} | {d.num_utterances} | {d.dropout_samples} "
                     f"| {d.dropout_proportion:g} | {d.dropout_seed} | {' '.join(map(str, d.pass_seeds))} "
                     f"| {d.nbest_size} | {d.nbest_acoustic_scale:g} |")
    return "\n".join(lines) + "\n\n"


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="frugal uncertainty-report", description=__doc__.split("\n")[0],
                                epilog=__doc__.split("\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", dest="sets", action="append", required=True, metavar="NAME:DECODE_DIR:CUTS",
                   help="an evaluation set: its name, a decode directory of frugal decode --dropout-samples, "
                        "and the cuts whose supervision texts are the references (repeatable)")
    p.add_argument("--words", required=True, help="words.txt of the decoding graph")
    p.add_argument("--top-k", type=int, required=True,
                   help="pairwise edit distances averaged by the WER estimate (the K largest)")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.4, 0.6, 0.8],
                   help="confidence thresholds of error localisation (default: %(default)s)")
    p.add_argument("--nbest", type=int, help="size of the n-best lists (default: each set's number of dropout samples)")
    p.add_argument("--output", required=True, help="the report, markdown, e.g. exp/m/uncertainty.md")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.top_k < 1:
        raise FrugalError(f"--top-k {args.top_k}: must be at least 1")
    if args.nbest is not None and args.nbest < 1:
        raise FrugalError(f"--nbest {args.nbest}: must be at least 1")
    for t in args.thresholds:
        if not 0.0 <= t <= 1.0:
            raise FrugalError(f"--thresholds {t:g}: confidences lie in [0, 1]")
    specs = [parse_set(s) for s in args.sets]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise FrugalError(f"--set: set names must differ (got {' '.join(names)})")
    words = SymbolTable.read(args.words)
    loaded = [load_decoded_set(spec, words, args.nbest) for spec in specs]
    report = (report_header([d for _, d in loaded], args.top_k, args.thresholds)
              + uncertainty_report([ds for ds, _ in loaded], args.top_k, args.thresholds))
    atomic_write_text(args.output, report)
    print(report, end="")
    log.info("wrote %s", args.output)
    return 0
