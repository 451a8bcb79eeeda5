"""Decoding driver: acoustic model -> log-likelihoods -> beam search -> word lattices and 1-best.

The glue behind ``frugal decode``, in the manner of Kaldi's ``steps/nnet3/decode.sh``:

- the cuts are split into ``nj`` contiguous jobs (:func:`split_jobs`), each run in its own
  process with one torch thread (the decoder is many small tensor operations, which extra
  threads only slow down);
- a job loads the model and the graph (:func:`load_acoustic_model`, :func:`load_graph`,
  checked against each other by :func:`check_graph_matches_model`), computes the network
  output in batches of utterances sorted by length (:func:`log_likelihoods`: a chain
  model's output is used as log-likelihoods as it is; a CTC model's goes through a
  log-softmax) and decodes it;
- per job J it writes ``lat.J.pt`` (word-determinised lattices, frugal's binary form),
  optionally ``lat.J.txt`` (Kaldi text), ``hyp.J.txt`` (the 1-best, Kaldi text) and
  ``log/decode.J.log``; every file goes through a temporary name, and ``.done.J`` (the
  job's fingerprint: its cuts and the decoding options) is written last, so a killed job
  is redone and a finished one skipped on the next run. ``.done`` marks the whole
  directory.

As Kaldi's chain decoding does (``--acwt 1.0 --post-decode-acwt 10.0``), the acoustic costs
in the saved lattices are multiplied by ``post_decode_acwt``, so that the LM-weight sweep of
scoring is centred on 10: the lattice's best path with graph scale 1 and acoustic scale
``1 / post_decode_acwt`` is the decoder's 1-best.
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from frugal.decode.decoder import DecodeResult, Decoder, DecoderConfig, DecodingGraph
from frugal.decode.lattice import Lattice
from frugal.decode.lattice_io import write_lattices
from frugal.decode.lattice_ops import determinize_lattice
from frugal.errors import FrugalError
from frugal.fileio import atomic_write_text
from frugal.lang.symbols import SymbolTable

log = logging.getLogger("frugal.decode")

DONE = ".done"
# Batches hold at most this many (utterance, graph state) pairs: the decoder keeps a few
# dense per-pair arrays (about 25 bytes a pair).
MAX_BATCH_STATES = 20_000_000


@dataclass
class DecodeOptions:
    """Everything that decides a decode directory's contents besides the cuts."""

    model: str
    graph: str
    words: str
    beam: float = 15.0
    max_active: int = 7000
    lattice_beam: float = 8.0
    acoustic_scale: float = 1.0
    post_decode_acwt: float = 10.0
    batch_size: int = 0          # utterances per batch; 0: as many as MAX_BATCH_STATES allows (<= 32)
    device: str = "cpu"
    text_lattices: bool = False

    def decoder_config(self) -> DecoderConfig:
        return DecoderConfig(beam=self.beam, max_active=self.max_active,
                             lattice_beam=self.lattice_beam, acoustic_scale=self.acoustic_scale)

    def validate(self) -> None:
        for name in ("beam", "lattice_beam", "acoustic_scale", "post_decode_acwt"):
            if not getattr(self, name) > 0:
                raise FrugalError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be positive")
        if self.max_active < 1:
            raise FrugalError(f"--max-active {self.max_active}: must be at least 1")
        if self.batch_size < 0:
            raise FrugalError(f"--batch-size {self.batch_size}: must be 0 (automatic) or more")
        if self.device not in ("cpu", "cuda"):
            raise FrugalError(f"--device {self.device}: must be cpu or cuda")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise FrugalError("--device cuda: CUDA is not available")
        for name, path in (("model", self.model), ("graph", self.graph), ("words", self.words)):
            if not Path(path).is_file():
                raise FrugalError(f"--{name} {path}: no such file")


# ----------------------------------------------------------------------------- jobs
def split_jobs(cut_ids: Sequence[str], nj: int) -> List[List[str]]:
    """Split ``cut_ids`` (in their order) into ``nj`` contiguous parts whose sizes differ by at
    most one, like Kaldi's split_data.sh; every id lands in exactly one part."""
    if nj < 1:
        raise FrugalError(f"--nj {nj}: must be at least 1")
    if nj > len(cut_ids):
        raise FrugalError(f"--nj {nj}: more jobs than the {len(cut_ids)} cuts to decode")
    base, extra = divmod(len(cut_ids), nj)
    out, start = [], 0
    for j in range(nj):
        size = base + (j < extra)
        out.append(list(cut_ids[start:start + size]))
        start += size
    return out


def job_paths(output_dir: Path, job: int) -> Dict[str, Path]:
    """The files job ``job`` (1-based, as in Kaldi) writes."""
    return {"lattices": output_dir / f"lat.{job}.pt", "text_lattices": output_dir / f"lat.{job}.txt",
            "hyp": output_dir / f"hyp.{job}.txt", "log": output_dir / "log" / f"decode.{job}.log",
            "done": output_dir / f"{DONE}.{job}"}


def job_fingerprint(cut_ids: Sequence[str], options: DecodeOptions) -> str:
    """What a job's done-marker holds: a finished job is reused only for the same cuts, options,
    and model, graph and words files (size and modification time: a retrained model is new)."""
    digest = hashlib.sha256("\n".join(cut_ids).encode()).hexdigest()[:16]
    opts = {k: v for k, v in asdict(options).items() if k not in ("device", "batch_size")}
    files = {name: _file_stamp(getattr(options, name)) for name in ("model", "graph", "words")}
    return json.dumps({"num_cuts": len(cut_ids), "cuts_sha256": digest, "options": opts, "files": files},
                      sort_keys=True)


def _file_stamp(path: str) -> List[int]:
    st = Path(path).stat()
    return [st.st_size, st.st_mtime_ns]


def job_is_done(output_dir: Path, job: int, fingerprint: str, text_lattices: bool) -> bool:
    p = job_paths(output_dir, job)
    needed = [p["lattices"], p["hyp"]] + ([p["text_lattices"]] if text_lattices else [])
    return (p["done"].is_file() and p["done"].read_text() == fingerprint
            and all(f.is_file() for f in needed))


# ---------------------------------------------------------------------- model, graph
@dataclass
class AcousticModel:
    """A trained model in eval mode with what decoding needs to know of its checkpoint."""

    model: torch.nn.Module
    objective: str      # "lfmmi" or "ctc"
    den_graph: str      # the den graph it was trained with ("" for CTC or when unknown)
    path: str


def load_acoustic_model(checkpoint: str, device: str = "cpu") -> AcousticModel:
    """The model of a checkpoint (frugal train's final.pt or an epoch checkpoint); a
    checkpoint that does not name its objective is taken as LF-MMI, frugal train's default."""
    from frugal.models import model_from_info
    from frugal.train.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)
    objective = state.get("objective", "lfmmi")
    if objective not in ("lfmmi", "ctc"):
        raise FrugalError(f"{checkpoint}: unknown objective {objective!r} (expected lfmmi or ctc)")
    model = model_from_info(state.get("model_info", {}), where=str(checkpoint))
    model.load_state_dict(state["model"])
    return AcousticModel(model.to(device).eval(), objective, str(state.get("den_graph", "") or ""),
                         str(checkpoint))


def model_output_dim(model: torch.nn.Module) -> int:
    """Columns of the model's (chain or CTC) output."""
    return int(model.model_info()["config"]["num_pdfs"])


def load_graph(path: str, device: str = "cpu") -> DecodingGraph:
    from frugal.graph.fstutil import read_fst
    return DecodingGraph.from_openfst(read_fst(path), device)


def graph_info(graph_path: str) -> Dict:
    """``frugal compile-graph``'s GRAPH.json (topology, number of pdfs), or {} without one."""
    p = Path(f"{graph_path}.json")
    try:
        return json.loads(p.read_text()) if p.is_file() else {}
    except json.JSONDecodeError as e:
        raise FrugalError(f"{p}: not JSON: {e}") from None


def check_graph_matches_model(graph: DecodingGraph, num_outputs: int, objective: str,
                              graph_path: str, model_path: str, den_graph: str = "") -> None:
    """One-line FrugalError, naming both files, when the graph cannot read the model's output.

    - the graph reads output columns (pdf or token id = input label - 1) up to
      ``graph.max_label``: it must be below the model's number of outputs;
    - with GRAPH.json of frugal compile-graph: its topology must suit the objective
      (chain for LF-MMI, ctc for CTC) and a chain graph's num_pdfs must equal the model's;
    - a chain graph's pdf_map.txt must equal the one beside the model's den graph (both come
      from the same tree-less PdfMap of the lang's phones, so they differ only when the
      graph and the model were built from different lang directories or topologies).
    """
    if graph.max_label >= num_outputs:
        raise FrugalError(f"graph {graph_path} reads pdf/token ids up to {graph.max_label} but model "
                          f"{model_path} has only {num_outputs} outputs: they were not built for each other")
    info = graph_info(graph_path)
    topo = info.get("topo")
    if topo is not None:
        expected = "chain" if objective == "lfmmi" else "ctc"
        if topo != expected:
            raise FrugalError(f"graph {graph_path} has topology {topo} but model {model_path} was trained "
                              f"with {objective} (needs a {expected} graph)")
        if topo == "chain" and int(info.get("num_pdfs", num_outputs)) != num_outputs:
            raise FrugalError(f"graph {graph_path} has {info['num_pdfs']} pdfs but model {model_path} has "
                              f"{num_outputs} outputs: they were not built for each other")
    graph_map = Path(graph_path).parent / "pdf_map.txt"
    den_map = Path(den_graph).parent / "pdf_map.txt" if den_graph else None
    if objective == "lfmmi" and den_map is not None and graph_map.is_file() and den_map.is_file():
        if graph_map.read_text() != den_map.read_text():
            raise FrugalError(f"graph {graph_path}: its {graph_map} differs from {den_map} of model "
                              f"{model_path}'s den graph: pdf ids do not mean the same")


@torch.no_grad()
def log_likelihoods(model: torch.nn.Module, objective: str, features: torch.Tensor,
                    lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(B, T', D) frame scores for the decoder and their lengths T' (output frame rate): a
    chain model's output as it is (Kaldi's chain decoding), a CTC model's log-softmax."""
    out, _xent, out_lengths = model(features, lengths)
    if objective == "ctc":
        out = out.log_softmax(-1)
    return out.float(), out_lengths


def load_checked(options: DecodeOptions) -> Tuple[AcousticModel, DecodingGraph]:
    """Model and graph of ``options``, checked against each other."""
    am = load_acoustic_model(options.model, options.device)
    graph = load_graph(options.graph, options.device)
    check_graph_matches_model(graph, model_output_dim(am.model), am.objective, options.graph,
                              options.model, am.den_graph)
    return am, graph


def auto_batch_size(graph: DecodingGraph) -> int:
    return max(1, min(32, MAX_BATCH_STATES // max(1, graph.num_states)))


# ----------------------------------------------------------------------- one job
@dataclass
class UttOutput:
    """What a job keeps of one utterance."""

    words: List[int]
    lattice: Optional[Lattice]    # word-determinised, acoustic costs scaled by post_decode_acwt
    reached_final: bool


def word_lattice(result: DecodeResult, options: DecodeOptions) -> Optional[Lattice]:
    """The decoder's raw lattice determinised on words (one path per word sequence, with its
    best alignment) and its acoustic costs scaled by ``post_decode_acwt``; None when
    no token survived."""
    raw = result.lattice
    if raw is None or raw.num_arcs == 0:
        return None
    det = determinize_lattice(raw, acoustic_scale=options.acoustic_scale)
    return det.scale(1.0, options.post_decode_acwt)


def decode_cuts(cuts, options: DecodeOptions, am: AcousticModel, graph: DecodingGraph, progress: Optional[Callable[[int], None]] = None
                ) -> Dict[str, UttOutput]:
    """Decode a CutSet (features precomputed) in batches of similar lengths; returns
    cut id -> output in the cuts' order."""
    from frugal.train.data import FeatureDataset

    decoder = Decoder(graph, options.decoder_config())
    batch_size = options.batch_size or auto_batch_size(graph)
    cut_list = sorted(cuts, key=lambda c: (c.num_frames or 0, c.id))
    dataset = FeatureDataset()
    out: Dict[str, UttOutput] = {}
    for start in range(0, len(cut_list), batch_size):
        batch = dataset[cut_list[start:start + batch_size]]
        scores, lengths = log_likelihoods(am.model, am.objective, batch["features"].to(options.device),
                                          batch["feature_lens"].to(options.device))
        results = decoder.decode(scores, lengths, lattice=True)
        for cut_id, r in zip(batch["cut_ids"], results):
            out[cut_id] = UttOutput(r.words, word_lattice(r, options), r.reached_final)
        if progress is not None:
            progress(len(results))
    order = {c.id: k for k, c in enumerate(cuts)}
    return dict(sorted(out.items(), key=lambda kv: order[kv[0]]))


def hyp_text(outputs: Dict[str, UttOutput], words: SymbolTable) -> str:
    """Kaldi text of the 1-best (utterances in the given order)."""
    lines = []
    for cut_id, o in outputs.items():
        lines.append(" ".join([cut_id] + [words.symbol(w) for w in o.words]) + "\n")
    return "".join(lines)


def run_job(job: int, cuts_path: str, cut_ids: List[str], options: DecodeOptions, output_dir: str,
            fingerprint: str, queue=None) -> None:
    """Decode one job's cuts and write its files (see the module docstring)."""
    from frugal.train.data import load_cuts

    torch.set_num_threads(1)
    out_dir = Path(output_dir)
    paths = job_paths(out_dir, job)
    paths["log"].parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(paths["log"], mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        t0 = time.perf_counter()
        log.info("job %d: %d cuts, %s", job, len(cut_ids), json.dumps(asdict(options)))
        am, graph = load_checked(options)
        cuts = load_cuts(cuts_path).subset(cut_ids=cut_ids)
        words = SymbolTable.read(options.words)

        def progress(n: int) -> None:
            if queue is not None:
                queue.put(("progress", job, n))

        outputs = decode_cuts(cuts, options, am, graph, progress)
        missing = [c for c in cut_ids if c not in outputs]
        if missing:
            raise FrugalError(f"{cuts_path}: cut {missing[0]} not found")
        no_final = [u for u, o in outputs.items() if not o.reached_final]
        no_lattice = [u for u, o in outputs.items() if o.lattice is None]
        if no_final:
            log.warning("%d utterance(s) reached no final state (partial 1-best kept), e.g. %s",
                        len(no_final), no_final[0])
        if no_lattice:
            log.warning("%d utterance(s) have no surviving path (no lattice), e.g. %s",
                        len(no_lattice), no_lattice[0])
        lattices = {u: o.lattice for u, o in outputs.items() if o.lattice is not None}
        write_lattices(paths["lattices"], lattices)
        if options.text_lattices:
            write_lattices(paths["text_lattices"], lattices)
        atomic_write_text(paths["hyp"], hyp_text(outputs, words))
        seconds = time.perf_counter() - t0
        audio = sum(c.duration for c in cuts)
        log.info("job %d done: %d utterances, %.1f s of audio in %.1f s (real-time factor %.3f)",
                 job, len(outputs), audio, seconds, seconds / max(audio, 1e-9))
        atomic_write_text(paths["done"], fingerprint)
    except FrugalError as e:
        log.error("%s", e)
        raise
    except Exception:
        log.exception("job %d crashed", job)
        raise
    finally:
        log.removeHandler(handler)
        handler.close()


def _job_process(job, cuts_path, cut_ids, options, output_dir, fingerprint, queue) -> None:
    try:
        run_job(job, cuts_path, cut_ids, options, output_dir, fingerprint, queue)
        queue.put(("done", job, ""))
    except FrugalError as e:
        queue.put(("error", job, str(e)))
    except Exception as e:  # a crash: its traceback is in the job's log
        queue.put(("error", job, f"{type(e).__name__}: {e}"))


# -------------------------------------------------------------------- whole directory
def decode_dir(cuts_path: str, output_dir: str, options: DecodeOptions, nj: int = 1,
               show_progress: bool = True) -> List[int]:
    """Decode ``cuts_path`` into ``output_dir`` with ``nj`` jobs; returns the jobs run (those
    already done with the same cuts and options are skipped). Writes ``num_jobs``,
    ``decode.json`` (the options) and, last, ``.done``."""
    from tqdm import tqdm
    from frugal.train.data import load_cuts

    options.validate()
    cuts = load_cuts(cuts_path, where=f"--cuts {cuts_path}")
    cut_ids = [c.id for c in cuts]
    if not cut_ids:
        raise FrugalError(f"--cuts {cuts_path}: no cuts")
    jobs = split_jobs(cut_ids, nj)
    load_checked(DecodeOptions(**{**asdict(options), "device": "cpu"}))  # fail early, in one line
    out = Path(output_dir)
    (out / "log").mkdir(parents=True, exist_ok=True)
    if (out / DONE).exists():
        (out / DONE).unlink()
    fingerprints = [job_fingerprint(ids, options) for ids in jobs]
    todo = [j for j in range(1, nj + 1)
            if not job_is_done(out, j, fingerprints[j - 1], options.text_lattices)]
    skipped = nj - len(todo)
    if skipped:
        log.info("%d of %d jobs are done already (same cuts and options): skipped", skipped, nj)
    # Files of an earlier run with more jobs must not be read as part of this one.
    for stale in list(out.glob("lat.*.pt")) + list(out.glob("lat.*.txt")) + list(out.glob("hyp.*.txt")):
        n = stale.name.split(".")[1]
        if n.isdigit() and int(n) > nj:
            stale.unlink()
    atomic_write_text(out / "num_jobs", f"{nj}\n")
    atomic_write_text(out / "decode.json", json.dumps(
        {"cuts": str(cuts_path), "nj": nj, **asdict(options)}, indent=1) + "\n")
    t0 = time.perf_counter()
    num_todo = sum(len(jobs[j - 1]) for j in todo)
    bar = tqdm(total=num_todo, desc="decode", unit="utt", disable=not show_progress or not todo)
    if len(todo) == 1 and nj == 1:
        threads = torch.get_num_threads()
        try:
            run_job(1, cuts_path, jobs[0], options, str(out), fingerprints[0], _BarQueue(bar))
        finally:
            torch.set_num_threads(threads)
    elif todo:
        _run_processes(todo, cuts_path, jobs, options, out, fingerprints, bar)
    bar.close()
    if todo:
        log.info("decoded %d utterances in %d job(s) in %.1f s", num_todo, len(todo), time.perf_counter() - t0)
    atomic_write_text(out / DONE, "")
    return todo


class _BarQueue:
    """A queue stand-in for an in-process job: progress goes straight to the bar."""

    def __init__(self, bar):
        self.bar = bar

    def put(self, item) -> None:
        if item[0] == "progress":
            self.bar.update(item[2])


def _run_processes(todo, cuts_path, jobs, options, out: Path, fingerprints, bar) -> None:
    # spawn, not fork: the parent may have used torch threads (forking those can hang).
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = {}
    for j in todo:
        p = ctx.Process(target=_job_process, args=(j, cuts_path, jobs[j - 1], options, str(out),
                                                   fingerprints[j - 1], queue), daemon=True)
        p.start()
        procs[j] = p
    errors: Dict[int, str] = {}
    finished = set()
    while len(finished) < len(procs):
        try:
            kind, job, value = queue.get(timeout=1.0)
        except Exception:  # queue.Empty: check for processes that died without a word
            for j, p in procs.items():
                if j not in finished and not p.is_alive() and p.exitcode not in (None, 0):
                    errors.setdefault(j, f"killed (exit code {p.exitcode})")
                    finished.add(j)
            continue
        if kind == "progress":
            bar.update(value)
        else:
            finished.add(job)
            if kind == "error":
                errors[job] = value
    for p in procs.values():
        p.join()
    if errors:
        job, msg = min(errors.items())
        first_line = msg.splitlines()[0] if msg else "failed"
        more = f" ({len(errors) - 1} more job(s) failed)" if len(errors) > 1 else ""
        raise FrugalError(f"decode job {job} failed: {first_line}{more}; see {out}/log/decode.{job}.log")
