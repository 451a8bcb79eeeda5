"""Typed on-disk artefacts, one reader and writer each: lang, graph, decode and model directories.

Every stage reads the previous stage's files from disk; these classes are the only code
that knows the layouts, so a tool or library module opens a ``LangDir``, ``DecodeDir``,
``GraphFile`` or ``ModelDir`` and asks it where things are, what they are and whether
they are complete. What a file *contains* is read by the module that owns its format
(symbol tables and lexicons: `frugal.lang.lang`, lattices: `frugal.lattice.io`, Kaldi
texts: `frugal.lang.text`; checkpoints here), so this module imports nothing of frugal
but its errors and file helpers: it is the lowest layer.

- ``LangDir`` (Kaldi's data/lang without position-dependent phones): phones.txt,
  words.txt, oov.txt/.int, lexicon[p][_disambig].txt, phones/{silence, nonsilence,
  optional_silence, disambig, wdisambig}.{txt,int}, L.fst, L_disambig.fst; a CTC unit
  directory (frugal prepare-units) adds tokens.txt and bpe.model.
- ``GraphFile``: a decoding or denominator graph (HCLG.fst, HLG.fst, den.pt) with what
  its maker wrote beside it: FILE.json (topology, context, HMM states, pdfs, sizes) and,
  for chain graphs, pdf_map.txt.
- ``DecodeDir``: lattices in jobs (frugal decode, make-supervision, combine-lattices):
  num_jobs, decode.json (how it was made), lat.J.pt (and lat.J.txt), hyp.J.txt (1-best),
  log/decode.J.log, .done.J (job J's fingerprint) and .done last; with Monte-Carlo
  dropout dropout.json and dropout/K/, each a DecodeDir; after scoring wer_LMWT_WIP,
  penalty_WIP/LMWT.txt, best_wer, wer_details/ and, with a setting chosen on dev,
  wer_dev_setting.
- ``HypDir``: hypotheses of a search without lattices (frugal decode-transducer):
  decode.json, hyp.txt (1-best, Kaldi text), nbest.txt (beam search: ``uttid rank score
  lm_score words``), log/decode.log, .done last; with Monte-Carlo dropout dropout/K/, each a
  HypDir; after frugal score, wer and its details.
- ``ModelDir``: checkpoints of a training run (epoch-N.pt, checkpoint-STEP.pt,
  last-checkpoint naming the newest), final.pt and log/train.log. A checkpoint is a dict
  of tensors and primitives only, read with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import json
import numbers
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from frugal.errors import FrugalError
from frugal.fileio import (PathLike, atomic_path, atomic_write_text, load_weights_only, read_lines,
                           save_weights_only)

Setting = Tuple[float, float]  # (LM weight, word insertion penalty) of scoring


def _read_json(path: Path) -> Dict:
    try:
        data = json.loads(path.read_text())
    except OSError:
        raise FrugalError(f"{path}: missing") from None
    except json.JSONDecodeError as e:
        raise FrugalError(f"{path}: not JSON: {e}") from None
    if not isinstance(data, dict):
        raise FrugalError(f"{path}: not a JSON object")
    return data


def _write_json(path: Path, data: Mapping) -> None:
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


# ------------------------------------------------------------------------------ lang
class LangDir:
    """A lang directory (see the module docstring)."""

    PHONE_CLASSES = ("silence", "nonsilence", "optional_silence", "disambig", "wdisambig")

    def __init__(self, path: PathLike, need: Sequence[str] = ("phones.txt", "words.txt")):
        self.path = Path(path)
        for name in need:
            if not (self.path / name).is_file():
                raise FrugalError(f"{self.path}: not a lang directory (no {name}); run frugal prepare-lang")

    def file(self, name: str) -> Path:
        return self.path / name

    @cached_property
    def oov(self) -> Optional[str]:
        """The OOV word of oov.txt, or None without one."""
        f = self.path / "oov.txt"
        words = read_lines(f) if f.is_file() else []
        return words[0] if words else None

    def phone_class(self, name: str) -> List[str]:
        """The symbols of phones/NAME.txt (silence, nonsilence, optional_silence, disambig, ...)."""
        return read_lines(self.path / "phones" / f"{name}.txt")

    @staticmethod
    def write(path: PathLike, files: Mapping[str, str], fsts: Mapping[str, object],
              copies: Optional[Mapping[str, PathLike]] = None) -> None:
        """Write a whole lang directory under a temporary name, then rename it into place:
        ``files`` maps relative names to their text, ``fsts`` names (L.fst, L_disambig.fst)
        to OpenFst objects with a ``write`` method, ``copies`` names to files to copy."""
        with atomic_path(path, is_dir=True) as tmp:
            for name, text in files.items():
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp / name).write_text(text, encoding="utf-8")
            for name, src in (copies or {}).items():
                shutil.copyfile(src, tmp / name)
            for name, fst in fsts.items():
                if not fst.write(str(tmp / name)):
                    raise FrugalError(f"{path}/{name}: cannot write FST")


# ----------------------------------------------------------------------------- graph
class GraphFile:
    """A graph file and its info beside it (see the module docstring)."""

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self.info_path = Path(f"{self.path}.json")
        self.pdf_map_path = self.path.parent / "pdf_map.txt"

    @cached_property
    def info(self) -> Dict:
        """FILE.json, or {} where its maker wrote none."""
        return _read_json(self.info_path) if self.info_path.is_file() else {}

    def require(self, *fields: str, option: str = "") -> Dict:
        """The info with ``fields`` in it; a FrugalError (naming ``option``) otherwise."""
        where = f"{option} {self.path}" if option else str(self.path)
        if not self.info_path.is_file():
            raise FrugalError(f"{where}: no {self.info_path} (written by frugal make-den-graph or compile-graph)")
        for field in fields:
            if field not in self.info:
                raise FrugalError(f"{self.info_path}: no '{field}' (not written by frugal make-den-graph "
                                  f"or compile-graph?)")
        return self.info

    def pdf_map_text(self) -> Optional[str]:
        return self.pdf_map_path.read_text() if self.pdf_map_path.is_file() else None

    def write_info(self, info: Mapping) -> None:
        _write_json(self.info_path, info)


# ---------------------------------------------------------------------------- decode
@dataclass
class JobFiles:
    """The files of job J of a decode directory."""

    lattices: Path
    text_lattices: Path
    hyp: Path
    log: Path
    done: Path
    partial: Path   # the results of finished batches while the job runs (frugal.decode.driver)


def setting_name(x: float) -> str:
    """Kaldi's spelling in file names: integer LM weights as ``10``, penalties as ``0.5``."""
    return str(x) if isinstance(x, numbers.Integral) else str(float(x))


class DecodeDir:
    """Lattices (and 1-best hypotheses) in jobs; see the module docstring."""

    DONE = ".done"
    DROPOUT = "dropout"

    def __init__(self, path: PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"DecodeDir({str(self.path)!r})"

    # ---- reading
    @classmethod
    def finished(cls, path: PathLike, option: str = "") -> "DecodeDir":
        """A decode directory whose writer finished (``.done``); a FrugalError otherwise."""
        d = cls(path)
        if not (d.path / cls.DONE).is_file():
            where = f"{option} {d.path}" if option else str(d.path)
            what = "no such directory" if not d.path.is_dir() else "no .done"
            raise FrugalError(f"{where}: not a finished decode directory ({what}; run frugal decode)")
        return d

    @property
    def is_done(self) -> bool:
        return (self.path / self.DONE).is_file()

    @cached_property
    def num_jobs(self) -> int:
        try:
            return int((self.path / "num_jobs").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            raise FrugalError(f"{self.path}/num_jobs: missing or not a number") from None

    @cached_property
    def info(self) -> Dict:
        """decode.json: how the directory was made ({} where there is none)."""
        f = self.path / "decode.json"
        return _read_json(f) if f.is_file() else {}

    @property
    def lattice_acoustic_scale(self) -> float:
        """The acoustic scale that ranks the lattices' paths as the search did: the lattices
        hold acoustic costs x post_decode_acwt, the search weighed them by acoustic_scale."""
        info = self.info
        return float(info.get("acoustic_scale", 1.0)) / float(info.get("post_decode_acwt", 1.0))

    def dropout_info(self) -> Dict:
        """dropout.json of a Monte-Carlo dropout decode (frugal decode --dropout-samples)."""
        path = self.path / "dropout.json"
        if not path.is_file() or not (self.path / self.DROPOUT).is_dir():
            raise FrugalError(f"{self.path}: no dropout decodes (no dropout.json and dropout/): decode it "
                              f"with frugal decode --dropout-samples N")
        info = _read_json(path)
        for key in ("dropout_samples", "dropout_proportion", "dropout_seed", "pass_seeds"):
            if key not in info:
                raise FrugalError(f"{path}: no '{key}' (not written by frugal decode --dropout-samples)")
        if int(info["dropout_samples"]) < 1:
            raise FrugalError(f"{path}: dropout_samples {info['dropout_samples']}: no samples")
        return info

    def pass_dir(self, k: int) -> "DecodeDir":
        """Pass k: the directory itself for the dropout-off pass 0, dropout/k for dropout pass k."""
        return self if k == 0 else DecodeDir(self.path / self.DROPOUT / str(k))

    def passes(self) -> List["DecodeDir"]:
        """The finished dropout passes 1..N of dropout.json."""
        n = int(self.dropout_info()["dropout_samples"])
        return [DecodeDir.finished(self.pass_dir(k).path) for k in range(1, n + 1)]

    def job(self, j: int) -> JobFiles:
        """Job j's files (1-based, as in Kaldi)."""
        p = self.path
        return JobFiles(p / f"lat.{j}.pt", p / f"lat.{j}.txt", p / f"hyp.{j}.txt", p / "log" / f"decode.{j}.log",
                        p / f"{self.DONE}.{j}", p / f"partial.{j}")

    def lattice_files(self) -> List[Path]:
        """lat.J.pt (or lat.J.txt where there is no .pt) of jobs 1..num_jobs."""
        files = []
        for j in range(1, self.num_jobs + 1):
            f = self.job(j)
            if not (f.lattices.is_file() or f.text_lattices.is_file()):
                raise FrugalError(f"{f.lattices}: missing (num_jobs says {self.num_jobs} jobs)")
            files.append(f.lattices if f.lattices.is_file() else f.text_lattices)
        return files

    def hyp_files(self) -> List[Path]:
        """hyp.J.txt (the 1-best) of jobs 1..num_jobs."""
        files = [self.job(j).hyp for j in range(1, self.num_jobs + 1)]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise FrugalError(f"{missing[0]}: missing (num_jobs says {self.num_jobs} jobs)")
        return files

    # ---- writing
    def prepare(self, num_jobs: int, info: Mapping, dropout: Optional[Mapping] = None) -> None:
        """Start (or restart) a directory of ``num_jobs`` jobs: it is not done until `finish`;
        files of jobs beyond ``num_jobs`` and dropout passes beyond ``dropout`` (a
        dropout.json record with ``dropout_samples``, or None) left by an earlier run go."""
        num_passes = 1 + (int(dropout["dropout_samples"]) if dropout else 0)
        (self.path / "log").mkdir(parents=True, exist_ok=True)
        for k in range(num_passes):
            d = self.pass_dir(k)
            d.path.mkdir(parents=True, exist_ok=True)
            (d.path / self.DONE).unlink(missing_ok=True)
            for stale in d.path.glob("*.*.*"):
                parts = stale.name.split(".")
                if parts[0] in ("lat", "hyp") and parts[1].isdigit() and int(parts[1]) > num_jobs:
                    stale.unlink()
            for stale in d.path.glob("partial.*"):
                job = stale.name.split(".", 1)[1]
                if stale.is_dir() and job.isdigit() and int(job) > num_jobs:
                    shutil.rmtree(stale)
            atomic_write_text(d.path / "num_jobs", f"{num_jobs}\n")
            record = dict(info)
            if k > 0:
                record.update(dropout_pass=k, dropout_pass_seed=dropout["pass_seeds"][k - 1])
            _write_json(d.path / "decode.json", record)
        root = self.path / self.DROPOUT
        if root.is_dir():
            for d in root.iterdir():
                if d.is_dir() and d.name.isdigit() and int(d.name) >= num_passes:
                    shutil.rmtree(d)
            if not dropout and not any(root.iterdir()):
                root.rmdir()
        if dropout:
            _write_json(self.path / "dropout.json", dropout)
        else:
            (self.path / "dropout.json").unlink(missing_ok=True)

    def job_is_done(self, j: int, fingerprint: str, num_passes: int = 1, text_lattices: bool = False,
                    hyps: bool = True) -> bool:
        """Job j finished with this fingerprint and the files of all its passes are there
        (lattices, and the 1-best with ``hyps``)."""
        done = self.job(j).done
        needed = []
        for k in range(num_passes):
            f = self.pass_dir(k).job(j)
            needed += [f.lattices] + ([f.hyp] if hyps else []) + ([f.text_lattices] if text_lattices else [])
        return done.is_file() and done.read_text() == fingerprint and all(f.is_file() for f in needed)

    def job_done(self, j: int, fingerprint: str) -> None:
        """Job j is complete: the last thing a job writes."""
        atomic_write_text(self.job(j).done, fingerprint)

    def finish(self, num_passes: int = 1) -> None:
        """The whole directory is complete (dropout passes first, the directory itself last)."""
        for k in list(range(1, num_passes)) + [0]:
            atomic_write_text(self.pass_dir(k).path / self.DONE, "")

    # ---- scoring (frugal score-lattices)
    def wer_file(self, setting: Setting) -> Path:
        lmwt, wip = setting
        return self.path / f"wer_{setting_name(lmwt)}_{setting_name(wip)}"

    def scored_hyps_file(self, setting: Setting) -> Path:
        lmwt, wip = setting
        return self.path / f"penalty_{setting_name(wip)}" / f"{setting_name(lmwt)}.txt"

    @property
    def details_dir(self) -> Path:
        return self.path / "wer_details"

    @property
    def best_wer_file(self) -> Path:
        return self.path / "best_wer"

    @property
    def dev_setting_wer_file(self) -> Path:
        """The WER at the setting chosen on a dev decode (score-lattices --dev-decode-dir)."""
        return self.path / "wer_dev_setting"

    def best_setting(self) -> Setting:
        """The (lmwt, wip) that scoring reported in wer_details/: the set's own best, or for a set
        scored with --dev-decode-dir the dev set's best."""
        d = self.details_dir
        try:
            lmwt, wip = float((d / "lmwt").read_text().split()[0]), float((d / "wip").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            raise FrugalError(f"{d}: no lmwt/wip files (run frugal score-lattices on {self.path})") from None
        return (int(lmwt) if lmwt.is_integer() else lmwt), wip

    def write_best_setting(self, setting: Setting) -> None:
        lmwt, wip = setting
        atomic_write_text(self.details_dir / "lmwt", f"{setting_name(lmwt)}\n")
        atomic_write_text(self.details_dir / "wip", f"{setting_name(wip)}\n")


# ----------------------------------------------------------------------------- model
CHECKPOINT_FORMAT = "frugal-checkpoint-1"


class HypDir:
    """1-best and n-best hypotheses of a search without lattices; see the module docstring."""

    DONE = ".done"
    DROPOUT = "dropout"

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self.hyp = self.path / "hyp.txt"
        self.nbest = self.path / "nbest.txt"
        self.log = self.path / "log" / "decode.log"

    @classmethod
    def finished(cls, path: PathLike, option: str = "") -> "HypDir":
        d = cls(path)
        if not (d.path / cls.DONE).is_file():
            where = f"{option} {d.path}" if option else str(d.path)
            raise FrugalError(f"{where}: not a finished hypothesis directory (no .done; run frugal decode-transducer)")
        return d

    @property
    def is_done(self) -> bool:
        return (self.path / self.DONE).is_file()

    @cached_property
    def info(self) -> Dict:
        f = self.path / "decode.json"
        return _read_json(f) if f.is_file() else {}

    def pass_dir(self, k: int) -> "HypDir":
        """Pass 0 is this directory, pass k >= 1 the k-th Monte-Carlo dropout decode."""
        return self if k == 0 else HypDir(self.path / self.DROPOUT / str(k))

    def prepare(self, info: Mapping, num_passes: int = 1) -> None:
        """Start (or restart): not done until `finish`; dropout passes beyond ``num_passes``
        left by an earlier run go."""
        for k in range(num_passes):
            d = self.pass_dir(k)
            (d.path / "log").mkdir(parents=True, exist_ok=True)
            (d.path / self.DONE).unlink(missing_ok=True)
            _write_json(d.path / "decode.json", {**info, **({"dropout_pass": k} if k else {})})
        root = self.path / self.DROPOUT
        if root.is_dir():
            for d in root.iterdir():
                if d.is_dir() and d.name.isdigit() and int(d.name) >= num_passes:
                    shutil.rmtree(d)

    def finish(self, num_passes: int = 1) -> None:
        for k in list(range(1, num_passes)) + [0]:
            atomic_write_text(self.pass_dir(k).path / self.DONE, "")


def load_checkpoint(path: PathLike, map_location="cpu") -> Dict:
    """A checkpoint read with ``weights_only=True`` (tensors and primitives, no code)."""
    return load_weights_only(path, "a frugal checkpoint", map_location=map_location)


def save_checkpoint(path: PathLike, checkpoint: Mapping) -> None:
    """Write a checkpoint atomically: the name only ever points at a complete file."""
    save_weights_only(path, dict(checkpoint))


class ModelDir:
    """A training run's directory (see the module docstring)."""

    LAST = "last-checkpoint"

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self.final = self.path / "final.pt"
        self.log_dir = self.path / "log"
        self.train_log = self.log_dir / "train.log"

    def epoch_checkpoint(self, epoch: int) -> Path:
        return self.path / f"epoch-{epoch}.pt"

    def step_checkpoint(self, step: int) -> Path:
        return self.path / f"checkpoint-{step}.pt"

    def step_checkpoints(self) -> List[Path]:
        """Mid-epoch checkpoints, oldest first."""
        return sorted(self.path.glob("checkpoint-*.pt"), key=lambda p: int(p.stem.split("-")[1]))

    def save(self, path: PathLike, checkpoint: Mapping) -> None:
        """Write a checkpoint, then point last-checkpoint at it (a kill in between leaves
        the pointer naming the previous, complete one)."""
        save_checkpoint(path, checkpoint)
        atomic_write_text(self.path / self.LAST, Path(path).name + "\n")

    def latest_checkpoint(self) -> Optional[Path]:
        """The newest complete checkpoint, or None."""
        pointer = self.path / self.LAST
        if not pointer.is_file():
            return None
        path = self.path / pointer.read_text().strip()
        if not path.is_file():
            raise FrugalError(f"{pointer}: names {path.name}, which does not exist")
        return path

    def last_epoch_checkpoints(self, epoch: int, num: int) -> List[Path]:
        """epoch-(epoch-num+1).pt ... epoch-epoch.pt, all of which must exist."""
        if num < 1 or num > epoch:
            raise FrugalError(f"cannot average {num} checkpoints ending at epoch {epoch}")
        paths = [self.epoch_checkpoint(e) for e in range(epoch - num + 1, epoch + 1)]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FrugalError(f"{missing[0]}: checkpoint not found (needed for averaging)")
        return paths

    def remove_checkpoints(self) -> None:
        """What starting afresh discards: checkpoints, the pointer to the newest, final.pt."""
        for pattern in ("epoch-*.pt", "checkpoint-*.pt", self.LAST, "final.pt"):
            for p in self.path.glob(pattern):
                p.unlink()
