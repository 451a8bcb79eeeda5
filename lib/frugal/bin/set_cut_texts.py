"""Write a cut manifest whose transcripts are given texts (e.g. the 1-best hypotheses of a decoding).

Semi-supervised LF-MMI estimates its den graph's phone LM from the supervised transcripts
and the unsupervised cuts' 1-best hypotheses (Kaldi's chain semi-supervised recipe):

  frugal set-cut-texts --cuts data/fbank/cuts_unsup.jsonl.gz --text exp/seed/decode_unsup \\
      --output data/fbank/cuts_unsup_1best.jsonl.gz
  frugal make-den-graph --lang data/lang --output exp/chain_semisup/den.pt \\
      --cuts data/fbank/cuts_sup.jsonl.gz:1.5 data/fbank/cuts_unsup_1best.jsonl.gz:1.0

--text is Kaldi text (``<cut-id> word ...`` a line) in files, or directories holding the
hyp.*.txt files of frugal decode. Every cut of --cuts needs exactly one text, and every
text line must name a cut of --cuts. Each output cut has one supervision over the whole
cut carrying the text (the first old supervision's speaker and language are kept). The
output serves frugal train --train-cuts too (combined with the supervised cuts, e.g. by
``lhotse combine``): a cut with a lattice in --supervision-lattices is trained on the
lattice, one without it on this text, never on the transcript it had before.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from lhotse import SupervisionSegment
from lhotse.utils import fastcopy

from frugal.data.jsonl import write_manifest
from frugal.errors import FrugalError, where
from frugal.train.data import load_cuts

log = logging.getLogger("frugal.set_cut_texts")


def text_files(paths: Sequence[str]) -> List[Path]:
    """The files of --text: files as given, directories' hyp.*.txt in job order."""
    files: List[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.glob("hyp.*.txt"), key=_job_number)
            if not found:
                raise FrugalError(f"--text {path}: no hyp.*.txt files in this directory")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise FrugalError(f"--text {path}: no such file or directory")
    return files


def _job_number(path: Path) -> Tuple[int, str]:
    middle = path.name[len("hyp."):-len(".txt")]
    return (int(middle), "") if middle.isdigit() else (-1, middle)


def read_cut_texts(files: Sequence[Path], cut_ids: set, cuts_name: str) -> Dict[str, str]:
    """cut id -> text from Kaldi text files; unknown or repeated cut ids and blank lines
    raise FrugalError naming the file and line."""
    texts: Dict[str, str] = {}
    origin: Dict[str, str] = {}
    for f in files:
        try:
            lines = f.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise FrugalError(f"{f}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        for n, line in enumerate(lines, 1):
            fields = line.split()
            if not fields:
                raise FrugalError(f"{where(f, n)}: empty line (expected '<cut-id> word ...')")
            cut_id = fields[0]
            if cut_id not in cut_ids:
                raise FrugalError(f"{where(f, n)}: cut {cut_id} is not in --cuts {cuts_name}")
            if cut_id in texts:
                raise FrugalError(f"{where(f, n)}: cut {cut_id} has a text already ({origin[cut_id]})")
            texts[cut_id] = " ".join(fields[1:])
            origin[cut_id] = where(f, n)
    return texts


def with_text(cut, text: str):
    """``cut`` with one supervision over all of it whose text is ``text``."""
    old = cut.supervisions[0] if cut.supervisions else None
    sup = SupervisionSegment(id=old.id if old is not None else cut.id, recording_id=cut.recording_id,
                             start=0.0, duration=cut.duration, channel=cut.channel, text=text,
                             language=old.language if old is not None else None,
                             speaker=old.speaker if old is not None else None)
    return fastcopy(cut, supervisions=[sup])


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="frugal set-cut-texts", description=__doc__.split("\n")[0],
                                epilog=__doc__.split("\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cuts", required=True, help="lhotse cut manifest (.jsonl.gz)")
    p.add_argument("--text", nargs="+", required=True, metavar="PATH",
                   help="Kaldi text files, or decode directories (their hyp.*.txt)")
    p.add_argument("--output", required=True, help="the new cut manifest (.jsonl.gz)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not args.output.endswith(".jsonl.gz"):
        raise FrugalError(f"--output {args.output}: must end in .jsonl.gz")
    cuts = list(load_cuts(args.cuts, where=f"--cuts {args.cuts}"))
    texts = read_cut_texts(text_files(args.text), {c.id for c in cuts}, args.cuts)
    missing = [c.id for c in cuts if c.id not in texts]
    if missing:
        raise FrugalError(f"--text: {len(missing)} of {len(cuts)} cuts of --cuts {args.cuts} have no text, "
                          f"e.g. {missing[0]}")
    write_manifest((with_text(c, texts[c.id]) for c in cuts), Path(args.output))
    empty = sum(not texts[c.id] for c in cuts)
    log.info("wrote %s: %d cuts with new texts (%d empty)", args.output, len(cuts), empty)
    return 0
