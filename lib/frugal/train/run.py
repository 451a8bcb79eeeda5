"""A training run, the library call behind ``frugal train``: config, data, objective, model, trainer, final.pt.

- The training config is YAML with sections ``model`` (the encoder: type and preset or
  options), ``train`` (`TrainConfig`) and ``loss`` (the objective's options).
- Validation cuts are given, or held out from the training cuts (the same draw on every
  run and rank).
- The objective (`frugal.train.objective`) builds the model with its head; a run that
  finds checkpoints in the model directory resumes from the newest, and refuses a
  checkpoint of another model; ``start_fresh`` deletes them first. ``init_model`` starts
  from another model's weights (semi-supervised training from the seed) with a new
  optimiser and schedule. Both must have been trained on a den graph like this run's
  (`frugal.graph.fingerprint`: same topology and pdf map, compared by content).
- ``init_encoder`` (a checkpoint of ``frugal pretrain``) makes the model a pre-trained encoder
  with the config's head (`frugal.models.finetune`, ``type: pretrained``): the encoder's
  configuration and weights come from the checkpoint, ``encoder_mode`` (finetune or frozen)
  overrides the config's. Without it, a ``type: pretrained`` model takes its encoder's
  configuration from ``init_model`` (a fine-tuned model trained further).
- Under ``torchrun --nproc_per_node N`` the same call trains with N processes (DDP; gloo on
  CPU) and checks at the end that every rank holds the same weights.
- The last ``num_average`` epoch checkpoints are averaged into final.pt, with what the
  objective records (its name, graphs, lang) so that decoding needs nothing else.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch
import torch.distributed as dist
import yaml
from lhotse import CutSet

from frugal.data.cmvn import cmvn_kind, require_cmvn
from frugal.data.cuts import hold_out, load_cuts
from frugal.dirs import ModelDir, load_checkpoint, save_checkpoint
from frugal.errors import BadValue, FrugalError
from frugal.graph.fingerprint import checkpoint_fingerprint, first_difference, show
from frugal.logs import log_to_file
from frugal.models.finetune import encoder_record, encoder_state
from frugal.models.presets import type_problem
from frugal.train import checkpoint as ckpt
from frugal.train.objective import Objective, ObjectiveInputs, make_objective
from frugal.train.trainer import Trainer, init_distributed, train_config_from_dict

log = logging.getLogger(__name__)

SECTIONS = ("model", "train", "loss")


@dataclass
class TrainJob:
    """What ``frugal train`` asks for (see the module docstring)."""

    train_config: str
    train_cuts: str
    exp_dir: str
    objective: ObjectiveInputs
    objective_name: str = "lfmmi"
    valid_cuts: Optional[str] = None
    num_valid: int = 0
    num_average: int = 1
    start_fresh: bool = False
    device: Optional[str] = None
    num_threads: int = 0
    init_model: Optional[str] = None
    init_encoder: Optional[str] = None
    encoder_mode: Optional[str] = None
    extra: Dict = field(default_factory=dict)


def read_train_config(path: str) -> Dict[str, Dict]:
    """The sections of a training config file (model, train, loss), each a mapping."""
    if not Path(path).is_file():
        raise BadValue("train_config", path, "no such file")
    try:
        d = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise FrugalError(f"{path}{line}: not valid YAML") from None
    if not isinstance(d, dict):
        raise FrugalError(f"{path}: expected a mapping with sections {', '.join(SECTIONS)}")
    unknown = sorted(set(d) - set(SECTIONS))
    if unknown:
        raise FrugalError(f"{path}: unknown section(s) {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    out = {}
    for name in SECTIONS:
        section = d.get(name) or {}
        if not isinstance(section, dict):
            raise FrugalError(f"{path}: section '{name}' must be a mapping")
        out[name] = section
    for key, value in out["loss"].items():  # every loss option is a weight or coefficient
        what = type_problem(value, 0.0)
        if what:
            raise FrugalError(f"{path} (loss): loss option {key} must be {what} (got {value!r})")
    return out


def _model_differences(stored: Dict, wanted: Dict, limit: int = 3) -> str:
    """'key: checkpoint value vs config value' for the first differing model options."""
    def flat(d: Dict) -> Dict:
        out = {k: v for k, v in d.items() if k != "config"}
        out.update(d.get("config", {}) if isinstance(d.get("config"), dict) else {})
        return out

    a, b = flat(stored), flat(wanted)
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    parts = [f"{k}: {a.get(k)} in the checkpoint, {b.get(k)} in the config" for k in keys[:limit]]
    return "; ".join(parts + ([f"{len(keys) - limit} more"] if len(keys) > limit else []))


def den_graph_difference(state: Dict, path: str, objective: Objective) -> Optional[str]:
    """How checkpoint ``path`` (its ``state``) was trained on another den graph than
    ``objective``'s, by content (`frugal.graph.fingerprint`); None where they agree or
    there is nothing to compare (CTC, or a checkpoint of another objective)."""
    info = objective.checkpoint_info()
    ours = info.get("den_fingerprint")
    if ours is None or state.get("objective", "lfmmi") != objective.name:
        return None
    theirs, name = checkpoint_fingerprint(state, path)
    if theirs is None:
        log.warning("%s records no den graph fingerprint and its den graph %s is not found from here: cannot "
                    "check that it was trained on a den graph like %s", path, name or "(unknown)", info["den_graph"])
        return None
    diff = first_difference(theirs, {"topo": "chain", **ours})
    if diff is None:
        return None
    field, mine, other = diff
    return (f"was trained on den graph {name} with {field} {show(field, mine)} but den graph {info['den_graph']} "
            f"has {field} {show(field, other)}")


def load_init_model(model: torch.nn.Module, path: str, train_config: str,
                    objective: Optional[Objective] = None) -> None:
    """Load the weights of checkpoint ``path`` into ``model``, whose model_info (from the
    training config) must be the checkpoint's, as must its den graph be ``objective``'s."""
    if not Path(path).is_file():
        raise BadValue("init_model", path, "no such file")
    state = load_checkpoint(path)
    if not isinstance(state.get("model"), dict):
        raise BadValue("init_model", path, "no model weights in this checkpoint")
    stored, wanted = state.get("model_info", {}), model.model_info()
    if stored != wanted:
        raise BadValue("init_model", path, f"a different model than {train_config} describes "
                                           f"({_model_differences(stored, wanted)})")
    diff = den_graph_difference(state, path, objective) if objective is not None else None
    if diff:  # its outputs mean other pdfs: training would start from scrambled outputs
        raise BadValue("init_model", path, diff)
    model.load_state_dict(state["model"])


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of the model's parameters and buffers, bit for bit."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def check_ranks_agree(model: torch.nn.Module) -> None:
    """After distributed training every rank must hold the same weights (DDP's invariant)."""
    digests = [None] * dist.get_world_size()
    dist.all_gather_object(digests, weights_digest(model))
    if len(set(digests)) != 1:
        raise RuntimeError(f"model weights differ between ranks after training: {digests}")
    if dist.get_rank() == 0:
        log.info("model weights agree on all %d processes (sha256 %s)", len(digests), digests[0][:16])


def write_final(exp_dir: ModelDir, num_epochs: int, num_average: int, extra: Dict) -> Path:
    """Average the last ``num_average`` epoch checkpoints into final.pt (atomically)."""
    paths = exp_dir.last_epoch_checkpoints(num_epochs, num_average)
    last = load_checkpoint(paths[-1])
    save_checkpoint(exp_dir.final, ckpt.checkpoint_record(
        ckpt.average_checkpoints(paths), last["model_info"], last["train_config"], last.get("valid", {}),
        averaged=[p.name for p in paths], **extra))
    return exp_dir.final


def train(job: TrainJob) -> Optional[Path]:
    """Run the training of ``job`` (see the module docstring); final.pt on rank 0."""
    if job.num_threads < 0:
        raise BadValue("num_threads", job.num_threads, "must be >= 0")
    if job.num_threads:
        torch.set_num_threads(job.num_threads)
    sections = read_train_config(job.train_config)
    if job.device is not None:
        sections["train"]["device"] = job.device
    config = train_config_from_dict(sections["train"], where=f"{job.train_config} (train)")
    if not 1 <= job.num_average <= config.num_epochs:
        raise BadValue("num_average", job.num_average, f"must be in [1, num_epochs = {config.num_epochs}]")
    exp_dir = ModelDir(job.exp_dir)
    # Joined here, not in the Trainer, so that the group outlives training for check_ranks_agree.
    cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    dist_info = init_distributed("cuda" if cuda else "cpu")
    objective = make_objective(job.objective_name, ObjectiveInputs(**{**job.objective.__dict__,
                                                                        "options": sections["loss"]}))
    train_cuts, valid_cuts = _cuts(job, config.seed)
    objective.select_cuts(train_cuts, valid_cuts, str(job.train_cuts))
    cmvn = cmvn_kind(train_cuts, str(job.train_cuts))
    if valid_cuts is not None:
        require_cmvn(cmvn, valid_cuts, f"the training cuts ({job.train_cuts})", "the validation cuts")
    record = {**objective.checkpoint_info(), "cmvn": cmvn}
    encoder = _pretrained_encoder(job, sections["model"])
    torch.manual_seed(config.seed)  # the initial weights (DDP gives every rank rank 0's anyway)
    model = objective.build_model(sections["model"], _input_dim(train_cuts), job.train_config)
    if encoder is not None:
        model.encoder.load_state_dict(encoder)
    info = model.model_info()
    latest = None if job.start_fresh else exp_dir.latest_checkpoint()
    if latest is not None:
        state = load_checkpoint(latest)
        if state.get("model_info", {}) != info:
            raise FrugalError(f"{latest}: checkpoint of a different model than {job.train_config} describes "
                              "(start afresh, or use another experiment directory)")
        diff = den_graph_difference(state, str(latest), objective)
        if not diff and state.get("cmvn", "none") != cmvn:
            diff = f"trained on CMVN '{state.get('cmvn', 'none')}', the cuts have '{cmvn}'"
        if diff:
            raise FrugalError(f"{latest}: checkpoint {diff} (start afresh, or use another experiment directory)")
    if job.init_model:
        load_init_model(model, job.init_model, job.train_config, objective)
    if dist_info.is_main:  # the input is good: the run begins
        if job.start_fresh:
            exp_dir.remove_checkpoints()
        with log_to_file(exp_dir.train_log):
            _log_start(job, objective, sections["model"], model, train_cuts, dist_info.world_size, latest is not None)
    trainer = Trainer(model, objective, train_cuts, exp_dir.path, config, valid_cuts=valid_cuts, model_info=info,
                      record=record)
    if dist_info.world_size > 1:
        dist.barrier()  # starting afresh: nobody resumes from what rank 0 is deleting
    trainer.run()
    if dist_info.owns_group:
        check_ranks_agree(trainer.module)
        dist.destroy_process_group()
    if not dist_info.is_main:
        return None
    final = write_final(exp_dir, config.num_epochs, job.num_average,
                        {**record, "init_model": job.init_model or "", "init_encoder": job.init_encoder or "",
                         **job.extra})
    with log_to_file(exp_dir.train_log):
        log.info("wrote %s (average of the last %d epoch(s))", final, job.num_average)
    return final


def _pretrained_encoder(job: TrainJob, section: Dict) -> Optional[Dict[str, torch.Tensor]]:
    """With --init-encoder: complete the model section with the checkpoint's encoder (in place)
    and return the encoder's weights."""
    kind = section.get("type")
    if not job.init_encoder:
        if job.encoder_mode:
            raise BadValue("encoder_mode", job.encoder_mode, "needs a pre-trained encoder (--init-encoder)")
        if kind == "pretrained" and "encoder" not in section and job.init_model and Path(job.init_model).is_file():
            # a fine-tuned model trained further (semi-supervised, from a fine-tuned seed): its
            # own encoder's configuration; --init-model then loads every weight
            section["encoder"] = encoder_record(load_checkpoint(job.init_model).get("model_info", {}), job.init_model)
        return None
    if kind not in (None, "pretrained"):
        raise BadValue("init_encoder", job.init_encoder, f"needs a model of type pretrained in {job.train_config}, "
                                                         f"not {kind}")
    if not Path(job.init_encoder).is_file():
        raise BadValue("init_encoder", job.init_encoder, "no such file")
    state = load_checkpoint(job.init_encoder)
    if not isinstance(state.get("model"), dict):
        raise BadValue("init_encoder", job.init_encoder, "no model weights in this checkpoint")
    section["type"] = "pretrained"
    section["encoder"] = encoder_record(state.get("model_info", {}), job.init_encoder)
    if job.encoder_mode:
        section["encoder_mode"] = job.encoder_mode
    return encoder_state(state["model"])


def _input_dim(cuts: CutSet) -> int:
    """Feature dimension of the cuts; 1 for raw-audio cuts (frugal compute-fbank --raw)."""
    cut = next(iter(cuts))
    return cut.num_features if cut.has_features else 1


def _cuts(job: TrainJob, seed: int) -> Tuple[CutSet, Optional[CutSet]]:
    paths = job.train_cuts if isinstance(job.train_cuts, (list, tuple)) else [job.train_cuts]
    train_cuts = CutSet.from_cuts(c for p in paths for c in load_cuts(p, features=True))
    valid_cuts = load_cuts(job.valid_cuts, features=True) if job.valid_cuts else None
    if job.num_valid:
        if valid_cuts is not None:
            raise BadValue("num_valid", job.num_valid, "excludes validation cuts of their own")
        train_cuts, valid_cuts = hold_out(train_cuts, job.num_valid, seed)
    return train_cuts, valid_cuts


def _log_start(job: TrainJob, objective: Objective, section: Dict, model, train_cuts, world_size: int,
               resumed: bool) -> None:
    log.info("frugal train: objective %s, %d training cuts (%.1f h), model %s with %.2f M parameters, "
             "output dim %d, %d process(es)", objective.name, len(train_cuts),
             sum(c.duration for c in train_cuts) / 3600, section.get("preset", section.get("type", "tdnnf")),
             sum(p.numel() for p in model.parameters()) / 1e6, objective.output_dim, world_size)
    if job.init_model:
        log.info("%s --init-model %s", "resuming from the experiment's checkpoint, not from" if resumed
                 else "initial weights from", job.init_model)
    if objective.describe(train_cuts):
        log.info("%s", objective.describe(train_cuts))

