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

Monte-Carlo dropout decoding (Vyas et al. 2019; thesis ch. 3), with ``dropout_samples`` N > 0:
every utterance is decoded once with dropout off, written as above, and N more times with
the model's dropout active at ``dropout_proportion`` (``set_dropout_active``), pass k
(1..N) into ``dropout/k/`` with the same per-job files (each pass directory is a decode
directory of its own, with ``num_jobs``, ``decode.json`` and ``.done``, so score-lattices
and the lattice tools read it unchanged); ``dropout.json`` records N, the proportion, the
seed and the seeds of the passes. The dropout masks of (pass k, utterance) depend only on
(``dropout_seed``, k, cut id): torch's RNG is seeded with ``utterance_seed(s_k, cut id)``,
s_k the pass's seed (:func:`pass_seeds`), before the network runs on that utterance alone,
so the outputs do not depend on ``nj``, the batch size or N itself (pass k of N = 2 is
pass k of N = 4). The dropout-off pass is the normal batched forward. The N + 1 score
matrices of a batch are searched in one decoder call; the batch size counts those
utterance-passes. A job is done only when the files of all N + 1 passes are written.

As Kaldi's chain decoding does (``--acwt 1.0 --post-decode-acwt 10.0``), the acoustic costs
in the saved lattices are multiplied by ``post_decode_acwt``, so that the LM-weight sweep of
scoring is centred on 10: the lattice's best path with graph scale 1 and acoustic scale
``1 / post_decode_acwt`` is the decoder's 1-best.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from frugal.decode.decoder import DecodeResult, Decoder, DecoderConfig, DecodingGraph
from frugal.lattice.lattice import Lattice
from frugal.lattice.io import write_lattices
from frugal.lattice.determinize import determinize_lattice
from frugal.errors import FrugalError
from frugal.fileio import atomic_write_text
from frugal.lang.symbols import SymbolTable
from frugal.semisup.lattices import utterance_seed

log = logging.getLogger("frugal.decode")

DONE = ".done"
DROPOUT_DIR = "dropout"
DROPOUT_JSON = "dropout.json"
# Batches hold at most this many (utterance, graph state) pairs: the decoder keeps a few
# dense per-pair arrays (about 25 bytes a pair).
MAX_BATCH_STATES = 20_000_000
# Utterance-passes per decoder call without --batch-size. On CPU, batches beyond 8 gained
# nothing in tools/bench/decode_bench.py and made lattices up to twice as slow per utterance
# (a batch's raw lattice is pruned at once: 30M links for 32 utterances of 300 frames); a GPU
# needs large batches to keep busy.
MAX_AUTO_BATCH = {"cpu": 8, "cuda": 32}


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
    batch_size: int = 0          # utterance-passes per decoder call; 0: as many as MAX_BATCH_STATES allows (<= MAX_AUTO_BATCH)
    device: str = "cpu"
    text_lattices: bool = False
    dropout_samples: int = 0     # N: passes with dropout active besides the dropout-off one
    dropout_proportion: float = 0.1
    dropout_seed: int = 0

    @property
    def num_passes(self) -> int:
        return 1 + self.dropout_samples

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
        if self.dropout_samples < 0:
            raise FrugalError(f"--dropout-samples {self.dropout_samples}: must be 0 (no dropout) or more")
        if self.dropout_samples > 0 and not self.dropout_proportion > 0:
            raise FrugalError(f"--dropout-proportion {self.dropout_proportion}: must be positive with "
                              f"--dropout-samples {self.dropout_samples} (0 makes every sample the dropout-off decode)")
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


def pass_dir(output_dir: Path, k: int) -> Path:
    """Where pass ``k`` writes: the decode directory itself for the dropout-off pass 0,
    ``dropout/k`` for dropout pass k."""
    return Path(output_dir) if k == 0 else Path(output_dir) / DROPOUT_DIR / str(k)


def pass_seeds(seed: int, num_samples: int) -> List[int]:
    """The seeds of dropout passes 1..num_samples; pass k's seed depends on (seed, k) only."""
    return [utterance_seed(seed, f"dropout-pass-{k}") for k in range(1, num_samples + 1)]


def options_record(options: DecodeOptions) -> Dict:
    """The options as recorded in decode.json and done-markers; without dropout samples the
    dropout options are left out (they change nothing), so such records are as they were
    before dropout decoding existed."""
    record = asdict(options)
    if options.dropout_samples == 0:
        for name in ("dropout_samples", "dropout_proportion", "dropout_seed"):
            del record[name]
    return record


def job_fingerprint(cut_ids: Sequence[str], options: DecodeOptions) -> str:
    """What a job's done-marker holds: a finished job is reused only for the same cuts, options,
    and model, graph and words files (size and modification time: a retrained model is new)."""
    digest = hashlib.sha256("\n".join(cut_ids).encode()).hexdigest()[:16]
    opts = {k: v for k, v in options_record(options).items() if k not in ("device", "batch_size")}
    files = {name: _file_stamp(getattr(options, name)) for name in ("model", "graph", "words")}
    return json.dumps({"num_cuts": len(cut_ids), "cuts_sha256": digest, "options": opts, "files": files},
                      sort_keys=True)


def _file_stamp(path: str) -> List[int]:
    st = Path(path).stat()
    return [st.st_size, st.st_mtime_ns]


def job_is_done(output_dir: Path, job: int, fingerprint: str, text_lattices: bool,
                dropout_samples: int = 0) -> bool:
    """The job's done-marker holds ``fingerprint`` and the files of all its passes exist."""
    done = job_paths(output_dir, job)["done"]
    needed = []
    for k in range(1 + dropout_samples):
        p = job_paths(pass_dir(output_dir, k), job)
        needed += [p["lattices"], p["hyp"]] + ([p["text_lattices"]] if text_lattices else [])
    return done.is_file() and done.read_text() == fingerprint and all(f.is_file() for f in needed)


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
    from frugal.fsa.openfst import read_fst
    return DecodingGraph.from_openfst(read_fst(path), device)


def graph_info(graph_path: str) -> Dict:
    """The JSON that ``frugal compile-graph`` (topology, context, HMM states, number of pdfs)
    or ``frugal make-den-graph`` writes beside GRAPH_PATH, or {} without one."""
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
    - a chain graph's context and HMM states (GRAPH.json) must equal those of the model's den
      graph (DEN.json of make-den-graph);
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
        if topo == "chain" and objective == "lfmmi" and den_graph:
            # The pdf maps of 1- and 2-state topologies look alike (two pdfs a phone), so the
            # topology is compared as compile-graph and make-den-graph wrote it down.
            den_info = graph_info(den_graph)
            for field in ("context", "hmm_states"):
                if field in info and field in den_info and info[field] != den_info[field]:
                    raise FrugalError(f"graph {graph_path} has {field} {info[field]} but model {model_path} "
                                      f"was trained on den graph {den_graph} with {field} {den_info[field]}: "
                                      f"compile the graph with the den graph's topology")
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
    """Model and graph of ``options``, checked against each other (and, with dropout
    samples, the model's dropout)."""
    am = load_acoustic_model(options.model, options.device)
    graph = load_graph(options.graph, options.device)
    check_graph_matches_model(graph, model_output_dim(am.model), am.objective, options.graph,
                              options.model, am.den_graph)
    if options.dropout_samples > 0:
        set_dropout(am, options, active=False)
    return am, graph


def set_dropout(am: AcousticModel, options: DecodeOptions, active: bool) -> None:
    """Switch the model's Monte-Carlo dropout on or off at ``options.dropout_proportion``;
    one-line FrugalErrors for a model without dropout and for a proportion it refuses."""
    setter = getattr(am.model, "set_dropout_active", None)
    if not callable(setter):
        raise FrugalError(f"--model {options.model}: a {type(am.model).__name__} has no dropout to sample "
                          f"(no set_dropout_active): cannot decode with --dropout-samples")
    try:
        setter(active, options.dropout_proportion)
    except ValueError as e:
        raise FrugalError(f"--dropout-proportion {options.dropout_proportion}: {e} "
                          f"(model {options.model})") from None


@contextlib.contextmanager
def dropout_active(am: AcousticModel, options: DecodeOptions):
    """Dropout on inside the block, off after it, with torch's RNG state restored."""
    devices = [torch.device(options.device).index or 0] if options.device == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        set_dropout(am, options, active=True)
        try:
            yield
        finally:
            set_dropout(am, options, active=False)


def auto_batch_size(graph: DecodingGraph) -> int:
    return max(1, min(MAX_AUTO_BATCH[graph.device.type], MAX_BATCH_STATES // max(1, graph.num_states)))


# ----------------------------------------------------------------------- one job
@dataclass
class UttOutput:
    """What a job keeps of one utterance."""

    words: List[int]
    lattice: Optional[Lattice]    # word-determinised, acoustic costs scaled by post_decode_acwt
    reached_final: bool


def word_lattice(result: DecodeResult, options: DecodeOptions, name: str = "lattice") -> Optional[Lattice]:
    """The decoder's raw lattice determinised on words (one path per word sequence, with its
    best alignment) and its acoustic costs scaled by ``post_decode_acwt``; None when
    no token survived."""
    raw = result.lattice
    if raw is None or raw.num_arcs == 0:
        return None
    det = determinize_lattice(raw, acoustic_scale=options.acoustic_scale, name=name)
    return det.scale(1.0, options.post_decode_acwt)


class PassTimes:
    """Seconds spent per kind of work of a job (dropout off / on), for its log."""

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, what: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[what] = self.seconds.get(what, 0.0) + time.perf_counter() - t0

    def summary(self) -> str:
        return ", ".join(f"{what} {s:.1f} s" for what, s in self.seconds.items())


def dropout_log_likelihoods(am: AcousticModel, features: torch.Tensor, length: int, cut_id: str,
                            seeds: Sequence[int]) -> List[torch.Tensor]:
    """(T', D) frame scores of one utterance (``features`` (T, F)) with dropout active,
    one per pass seed; each pass's masks come from ``utterance_seed(seed, cut_id)`` alone.
    Call inside :func:`dropout_active`."""
    x = features[:length].unsqueeze(0)
    lengths = torch.tensor([length], device=features.device)
    out = []
    for seed in seeds:
        torch.manual_seed(utterance_seed(seed, cut_id))
        scores, _ = log_likelihoods(am.model, am.objective, x, lengths)
        out.append(scores[0])
    return out


def decode_cuts(cuts, options: DecodeOptions, am: AcousticModel, graph: DecodingGraph,
                progress: Optional[Callable[[int], None]] = None, times: Optional[PassTimes] = None
                ) -> List[Dict[str, UttOutput]]:
    """Decode a CutSet (features precomputed) in batches of similar lengths; returns per pass
    (the dropout-off one, then the ``dropout_samples`` dropout passes) cut id -> output, in
    the cuts' order. ``progress`` is told the utterance-passes decoded."""
    from frugal.train.data import FeatureDataset

    decoder = Decoder(graph, options.decoder_config())
    num_passes = options.num_passes
    seeds = pass_seeds(options.dropout_seed, options.dropout_samples)
    # The decoder call holds the N + 1 passes of each utterance of a batch.
    batch_size = max(1, (options.batch_size or auto_batch_size(graph)) // num_passes)
    times = times if times is not None else PassTimes()
    cut_list = sorted(cuts, key=lambda c: (c.num_frames or 0, c.id))
    dataset = FeatureDataset()
    out: List[Dict[str, UttOutput]] = [{} for _ in range(num_passes)]
    for start in range(0, len(cut_list), batch_size):
        batch = dataset[cut_list[start:start + batch_size]]
        features = batch["features"].to(options.device)
        feature_lens = batch["feature_lens"].to(options.device)
        with times("forward (dropout off)"):
            scores, lengths = log_likelihoods(am.model, am.objective, features, feature_lens)
        if num_passes > 1:
            with times("forward (dropout on)"), dropout_active(am, options):
                per_utt = [dropout_log_likelihoods(am, features[i], int(feature_lens[i]), cut_id, seeds)
                           for i, cut_id in enumerate(batch["cut_ids"])]
            # Pass-major: rows k * B .. (k + 1) * B - 1 are pass k.
            padded = scores.new_zeros((num_passes,) + tuple(scores.shape))
            padded[0] = scores
            for i, utt_passes in enumerate(per_utt):
                for k, s in enumerate(utt_passes, 1):
                    padded[k, i, : s.shape[0]] = s
            scores = padded.flatten(0, 1)
            lengths = lengths.repeat(num_passes)
        with times("search"):
            results = decoder.decode(scores, lengths, lattice=True)
        B = len(batch["cut_ids"])
        for k in range(num_passes):
            with times("word lattices (dropout off)" if k == 0 else "word lattices (dropout on)"):
                for cut_id, r in zip(batch["cut_ids"], results[k * B:(k + 1) * B]):
                    name = cut_id if k == 0 else f"{cut_id} (dropout pass {k})"
                    out[k][cut_id] = UttOutput(r.words, word_lattice(r, options, name), r.reached_final)
        if progress is not None:
            progress(len(results))
    order = {c.id: k for k, c in enumerate(cuts)}
    return [dict(sorted(o.items(), key=lambda kv: order[kv[0]])) for o in out]


def hyp_text(outputs: Dict[str, UttOutput], words: SymbolTable) -> str:
    """Kaldi text of the 1-best (utterances in the given order)."""
    lines = []
    for cut_id, o in outputs.items():
        lines.append(" ".join([cut_id] + [words.symbol(w) for w in o.words]) + "\n")
    return "".join(lines)


def write_pass(directory: Path, job: int, outputs: Dict[str, UttOutput], words: SymbolTable,
               text_lattices: bool, what: str = "") -> None:
    """One pass's lat.J.pt (and lat.J.txt) and hyp.J.txt in ``directory`` (atomically)."""
    paths = job_paths(directory, job)
    no_final = [u for u, o in outputs.items() if not o.reached_final]
    no_lattice = [u for u, o in outputs.items() if o.lattice is None]
    if no_final:
        log.warning("%s%d utterance(s) reached no final state (partial 1-best kept), e.g. %s",
                    what, len(no_final), no_final[0])
    if no_lattice:
        log.warning("%s%d utterance(s) have no surviving path (no lattice), e.g. %s",
                    what, len(no_lattice), no_lattice[0])
    lattices = {u: o.lattice for u, o in outputs.items() if o.lattice is not None}
    write_lattices(paths["lattices"], lattices)
    if text_lattices:
        write_lattices(paths["text_lattices"], lattices)
    atomic_write_text(paths["hyp"], hyp_text(outputs, words))


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

        times = PassTimes()
        passes = decode_cuts(cuts, options, am, graph, progress, times)
        missing = [c for c in cut_ids if c not in passes[0]]
        if missing:
            raise FrugalError(f"{cuts_path}: cut {missing[0]} not found")
        for k, outputs in enumerate(passes):
            write_pass(pass_dir(out_dir, k), job, outputs, words, options.text_lattices,
                       "" if k == 0 else f"dropout pass {k}: ")
        seconds = time.perf_counter() - t0
        audio = sum(c.duration for c in cuts)
        log.info("job %d done: %d utterances, %.1f s of audio in %.1f s (real-time factor %.3f)",
                 job, len(passes[0]), audio, seconds, seconds / max(audio, 1e-9))
        if options.dropout_samples:
            log.info("job %d: %d utterance-passes (1 dropout-off + %d dropout); %s", job,
                     len(passes[0]) * len(passes), options.dropout_samples, times.summary())
        # Last: the job counts as done only when the files of every pass are in place.
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
    ``decode.json`` (the options), with dropout samples ``dropout.json`` and the pass
    directories ``dropout/k`` (each with its ``num_jobs``, ``decode.json`` and ``.done``),
    and, last, ``.done``."""
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
    dirs = [pass_dir(out, k) for k in range(options.num_passes)]
    for d in [out] + dirs[1:]:  # the decode directory's own marker first
        if (d / DONE).exists():
            (d / DONE).unlink()
    remove_stale_passes(out, options.dropout_samples)
    fingerprints = [job_fingerprint(ids, options) for ids in jobs]
    todo = [j for j in range(1, nj + 1)
            if not job_is_done(out, j, fingerprints[j - 1], options.text_lattices, options.dropout_samples)]
    skipped = nj - len(todo)
    if skipped:
        log.info("%d of %d jobs are done already (same cuts and options): skipped", skipped, nj)
    seeds = pass_seeds(options.dropout_seed, options.dropout_samples)
    for k, d in enumerate(dirs):
        d.mkdir(parents=True, exist_ok=True)
        # Files of an earlier run with more jobs must not be read as part of this one.
        for stale in list(d.glob("lat.*.pt")) + list(d.glob("lat.*.txt")) + list(d.glob("hyp.*.txt")):
            n = stale.name.split(".")[1]
            if n.isdigit() and int(n) > nj:
                stale.unlink()
        atomic_write_text(d / "num_jobs", f"{nj}\n")
        info = {"cuts": str(cuts_path), "nj": nj, **options_record(options)}
        if k > 0:
            info.update(dropout_pass=k, dropout_pass_seed=seeds[k - 1])
        atomic_write_text(d / "decode.json", json.dumps(info, indent=1) + "\n")
    if options.dropout_samples:
        atomic_write_text(out / DROPOUT_JSON, json.dumps(
            {"dropout_samples": options.dropout_samples, "dropout_proportion": options.dropout_proportion,
             "dropout_seed": options.dropout_seed, "pass_seeds": seeds,
             "pass_dirs": [f"{DROPOUT_DIR}/{k}" for k in range(1, options.num_passes)]}, indent=1) + "\n")
        log.info("Monte-Carlo dropout: %d samples at proportion %g, seed %d (pass seeds %s), in %s/%s/1..%d",
                 options.dropout_samples, options.dropout_proportion, options.dropout_seed,
                 " ".join(map(str, seeds)), out, DROPOUT_DIR, options.dropout_samples)
    t0 = time.perf_counter()
    num_todo = sum(len(jobs[j - 1]) for j in todo) * options.num_passes
    unit = "utt" if options.num_passes == 1 else "utt-pass"
    bar = tqdm(total=num_todo, desc="decode", unit=unit, disable=not show_progress or not todo)
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
        what = "utterances" if options.num_passes == 1 else f"utterance-passes ({options.num_passes} a cut)"
        log.info("decoded %d %s in %d job(s) in %.1f s", num_todo, what, len(todo), time.perf_counter() - t0)
    for d in dirs[1:]:
        atomic_write_text(d / DONE, "")
    atomic_write_text(out / DONE, "")
    return todo


def remove_stale_passes(output_dir: Path, dropout_samples: int) -> None:
    """Remove what an earlier run with more dropout samples left: ``dropout/k`` for k > N,
    and with N = 0 ``dropout.json`` and ``dropout/`` itself, so that no tool reads samples
    this decode did not make."""
    root = Path(output_dir) / DROPOUT_DIR
    if root.is_dir():
        for d in root.iterdir():
            if d.is_dir() and d.name.isdigit() and int(d.name) > dropout_samples:
                shutil.rmtree(d)
        if dropout_samples == 0 and not any(root.iterdir()):
            root.rmdir()
    if dropout_samples == 0 and (Path(output_dir) / DROPOUT_JSON).exists():
        (Path(output_dir) / DROPOUT_JSON).unlink()


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
