"""The generic trainer: any model, any loss callable, lhotse cuts with precomputed features.

``loss_fn(model, batch) -> dict`` computes the loss of one batch (see data.FeatureDataset
for the batch) and returns scalar tensors: ``"loss"``, the total to minimise, and any
other named components to log. ``model`` is what the loss must call (the DDP wrapper
under torchrun, so that gradients are synchronised).

Reproducibility: the data order depends only on (seed, epoch) (lhotse's sampler), and
before every batch the RNGs are seeded from (seed, epoch, batch index, rank), so dropout
masks do not depend on where a run was interrupted. The learning rate and the dropout
proportion are functions of the optimizer step and of the progress
``(epoch - 1 + batch / batches_in_epoch) / num_epochs``, identical on every rank. A run
killed at any point and restarted resumes from the last complete checkpoint and ends
with the same model as an uninterrupted run.

Distributed training: run the same script under ``torchrun``; the trainer initialises
torch.distributed (gloo on CPU, nccl on GPU), wraps the model in DistributedDataParallel,
and gives each rank its share of the sampler's batches. Rank 0 writes checkpoints and logs.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Union

import numpy as np
import torch
import torch.distributed as dist
import yaml
from lhotse import CutSet
from tqdm import tqdm

from frugal.dirs import ModelDir, load_checkpoint
from frugal.errors import FrugalError
from frugal.logs import log_to_file
from frugal.models.presets import type_problem
from frugal.train import checkpoint as ckpt
from frugal.data.dataset import FeatureDataset, count_batches, make_loader, make_sampler
from frugal.train.schedule import DropoutSchedule, LrSchedule

LossFn = Callable[[torch.nn.Module, Dict], Dict[str, torch.Tensor]]

log = logging.getLogger("frugal.train")


@dataclass
class TrainConfig:
    num_epochs: int = 10
    max_duration: float = 200.0  # seconds of audio per batch (per rank)
    num_buckets: int = 10
    shuffle: bool = True
    seed: int = 42
    lr: float = 1e-3
    warmup_steps: int = 500
    lr_decay: str = "exponential"  # exponential | linear | cosine | noam | constant | tri_stage
    final_lr_ratio: float = 0.1
    # A model with param_groups() (a pre-trained encoder with a head): the encoder's learning
    # rate is this times lr (the head's); the thesis's head = 20 x encoder is 0.05.
    encoder_lr_scale: float = 1.0
    weight_decay: float = 0.0
    betas: tuple = (0.9, 0.98)
    grad_clip: float = 5.0  # max gradient 2-norm; 0 disables clipping
    dropout_schedule: Optional[str] = None  # Kaldi syntax, e.g. '0,0@0.20,0.5@0.50,0'
    save_every_steps: int = 0  # extra mid-epoch checkpoints; 0: only at the end of epochs
    keep_step_checkpoints: int = 2  # newest mid-epoch checkpoints kept
    num_workers: int = 0
    log_every_steps: int = 20
    device: str = "auto"  # auto | cpu | cuda
    find_unused_parameters: bool = False  # for DDP when the loss leaves some outputs unused

    def validate(self, where: str = "train config") -> None:
        if self.num_epochs < 1:
            raise FrugalError(f"{where}: num_epochs must be at least 1")
        if self.max_duration <= 0:
            raise FrugalError(f"{where}: max_duration must be positive")
        if self.num_buckets < 2:  # lhotse's bucketing sampler asserts it
            raise FrugalError(f"{where}: num_buckets must be at least 2")
        if self.keep_step_checkpoints < 1:
            raise FrugalError(f"{where}: keep_step_checkpoints must be at least 1 (the newest is resumed from)")
        if self.device not in ("auto", "cpu", "cuda"):
            raise FrugalError(f"{where}: device must be auto, cpu or cuda (got {self.device})")
        self.lr_schedule().validate()
        if self.encoder_lr_scale < 0:
            raise FrugalError(f"{where}: encoder_lr_scale must be non-negative")
        if self.dropout_schedule is not None:
            DropoutSchedule(self.dropout_schedule)

    def lr_schedule(self) -> LrSchedule:
        return LrSchedule(lr=self.lr, warmup_steps=self.warmup_steps, decay=self.lr_decay,
                          final_ratio=self.final_lr_ratio)

    def to_dict(self) -> Dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d


def train_config_from_dict(d: Dict, where: str = "train config") -> TrainConfig:
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise FrugalError(f"{where}: unknown training option(s): {', '.join(unknown)}")
    d = dict(d)
    defaults = TrainConfig()
    for name, value in d.items():
        what = type_problem(value, getattr(defaults, name))
        if what:
            raise FrugalError(f"{where}: training option {name} must be {what} (got {value!r})")
    if "betas" in d:
        d["betas"] = tuple(float(b) for b in d["betas"])
    cfg = TrainConfig(**d)
    cfg.validate(where)
    return cfg


def load_train_config(path: Union[str, Path], section: Optional[str] = "train") -> TrainConfig:
    """Read a TrainConfig from YAML (safe_load), from key ``section`` if present."""
    path = Path(path)
    try:
        d = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise FrugalError(f"{path}: not valid YAML: {e}".replace("\n", " ")) from None
    if section is not None and isinstance(d, dict) and section in d:
        d = d[section]
    if not isinstance(d, dict):
        raise FrugalError(f"{path}: expected a mapping of training options")
    return train_config_from_dict(d, where=str(path))


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> DistInfo:
    """Join the process group that torchrun describes in the environment, if any.

    ``owns_group`` says whether this call created the group (Trainer.run then destroys it).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    created = False
    if not dist.is_initialized():
        if device_kind == "cuda":
            torch.cuda.set_device(local_rank)  # before NCCL initialises, so each rank owns its GPU
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
        created = True
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                    owns_group=created)


def batch_seed(seed: int, epoch: int, batch_idx: int, rank: int) -> int:
    """A seed that depends only on where in training a batch is (not on resumption)."""
    return (seed * 1_000_003 + epoch * 100_003 + batch_idx * 7_919 + rank * 104_729) % (2**31 - 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _to_device(batch: Dict, device: torch.device) -> Dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class _Averager:
    """Frame-weighted running means of loss components."""

    def __init__(self) -> None:
        self.sums: Dict[str, float] = {}
        self.frames = 0.0

    def add(self, values: Dict[str, torch.Tensor], frames: int) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v.detach()) * frames
        self.frames += frames

    def all_reduce(self, dist_info: DistInfo, device: torch.device) -> None:
        if dist_info.world_size == 1:
            return
        keys = sorted(self.sums)
        t = torch.tensor([self.sums[k] for k in keys] + [self.frames], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        self.sums = dict(zip(keys, t[:-1].tolist()))
        self.frames = float(t[-1])

    def means(self) -> Dict[str, float]:
        return {k: s / max(self.frames, 1.0) for k, s in self.sums.items()}

    @staticmethod
    def format(means: Dict[str, float]) -> str:
        return ", ".join(f"{k}={v:.4f}" for k, v in means.items())


class Trainer:
    """Train ``model`` with ``loss_fn`` on ``train_cuts``; checkpoints go to ``exp_dir``.

    ``model_info`` (primitives only) is stored in every checkpoint, e.g.
    ``{"type": "tdnnf", "config": dataclasses.asdict(model_config)}``, so that later
    stages can rebuild the model; ``record`` (primitives, e.g. the objective's den graph
    fingerprint) too, so that an epoch checkpoint can be decoded as final.pt is. If the
    model has ``after_optimizer_step(step)`` it is called after each optimizer step
    (TDNN-F's semi-orthogonal constraint), and if it has ``set_dropout_proportion(p)`` the
    config's dropout schedule drives it.
    """

    def __init__(self, model: torch.nn.Module, loss_fn: LossFn, train_cuts: CutSet,
                 exp_dir: Union[str, Path], config: TrainConfig, valid_cuts: Optional[CutSet] = None,
                 dataset: Optional[torch.utils.data.Dataset] = None,
                 model_info: Optional[Dict] = None, record: Optional[Dict] = None) -> None:
        config.validate()
        self.config = config
        self.exp_dir = Path(exp_dir)
        self.dirs = ModelDir(exp_dir)
        self.loss_fn = loss_fn
        self.train_cuts = train_cuts
        self.valid_cuts = valid_cuts
        self.dataset = dataset if dataset is not None else FeatureDataset()
        self.model_info = model_info or {}
        self.record = record or {}
        kind = config.device
        if kind == "auto":
            kind = "cuda" if torch.cuda.is_available() else "cpu"
        self.dist = init_distributed(kind)
        self.device = torch.device(f"cuda:{self.dist.local_rank}" if kind == "cuda" else "cpu")
        if kind == "cuda":
            torch.cuda.set_device(self.device)
        self.module = model.to(self.device)
        if self.dist.world_size > 1:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.module, device_ids=[self.device.index] if kind == "cuda" else None,
                find_unused_parameters=(config.find_unused_parameters
                                        or bool(getattr(loss_fn, "leaves_parameters_unused", False))
                                        or bool(getattr(model, "leaves_parameters_unused", False))))
        else:
            self.model = self.module
        self.optimizer = torch.optim.AdamW(self._param_groups(), lr=config.lr, betas=config.betas,
                                           weight_decay=config.weight_decay)
        self.lr_schedule = config.lr_schedule()
        self.dropout_schedule = (DropoutSchedule(config.dropout_schedule)
                                 if config.dropout_schedule is not None else None)
        if self.dropout_schedule is not None and not hasattr(self.module, "set_dropout_proportion"):
            raise FrugalError("train config: dropout_schedule is set but the model has no dropout to schedule")
        self.sampler = make_sampler(train_cuts, config.max_duration, config.shuffle, config.seed,
                                    config.num_buckets, self.dist.world_size, self.dist.rank)
        self.epoch = 1
        self.batch_in_epoch = 0  # batches of self.epoch already trained on
        self.step = 0  # optimizer steps done

    def _param_groups(self) -> list:
        """One group of every parameter, or the model's groups (``param_groups()``: name ->
        parameters) with their learning-rate scales: encoder_lr_scale for "encoder", 1 otherwise."""
        if not hasattr(self.module, "param_groups"):
            return [{"params": list(self.module.parameters()), "name": "all", "lr_scale": 1.0}]
        return [{"params": params, "name": name,
                 "lr_scale": self.config.encoder_lr_scale if name == "encoder" else 1.0}
                for name, params in self.module.param_groups().items() if params]

    # ---- logging --------------------------------------------------------------------

    def _log_file(self):
        """Everything the library logs while training goes to exp_dir/log/train.log (rank 0;
        appended on resume)."""
        return log_to_file(self.dirs.train_log) if self.dist.is_main else contextlib.nullcontext()

    # ---- checkpoints ----------------------------------------------------------------

    def _checkpoint(self, valid: Optional[Dict[str, float]] = None) -> Dict:
        return ckpt.checkpoint_record(
            self.module.state_dict(), self.model_info, self.config.to_dict(), valid,
            optimizer=self.optimizer.state_dict(),
            scheduler={"step": self.step, "lr": self.optimizer.param_groups[0]["lr"]},
            sampler={"seed": self.config.seed, "epoch": self.epoch, "batches_done": self.batch_in_epoch,
                     "world_size": self.dist.world_size},
            trainer={"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "step": self.step},
            rng=ckpt.get_rng_state(), **self.record)

    def _save(self, path: Path, valid: Optional[Dict[str, float]] = None) -> None:
        if self.dist.is_main:
            self.dirs.save(path, self._checkpoint(valid))
            log.info("saved %s", path)
            self._remove_old_step_checkpoints()
        if self.dist.world_size > 1:
            dist.barrier()

    def _remove_old_step_checkpoints(self) -> None:
        steps = self.dirs.step_checkpoints()
        for path in steps[: max(0, len(steps) - self.config.keep_step_checkpoints)]:
            path.unlink()

    def resume(self) -> bool:
        """Load the last complete checkpoint of exp_dir, if any."""
        path = self.dirs.latest_checkpoint()
        if path is None:
            return False
        state = load_checkpoint(path, map_location=self.device)
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        t = state["trainer"]
        self.epoch, self.batch_in_epoch, self.step = t["epoch"], t["batch_in_epoch"], t["step"]
        if state["sampler"]["world_size"] != self.dist.world_size:
            raise FrugalError(f"{path}: written with {state['sampler']['world_size']} processes, "
                              f"resumed with {self.dist.world_size}; the data order would differ")
        ckpt.set_rng_state(state["rng"])
        if self.dist.is_main:
            log.info("resumed from %s (epoch %d, batch %d, step %d)", path, self.epoch, self.batch_in_epoch,
                     self.step)
        return True

    # ---- training -------------------------------------------------------------------

    def run(self) -> torch.nn.Module:
        """Train to the last epoch, resuming if exp_dir has a checkpoint; return the model."""
        with self._log_file():
            self.resume()
            while self.epoch <= self.config.num_epochs:
                self._train_epoch()
                valid = self.validate()
                if self.dist.is_main and valid is not None:
                    log.info("epoch %d validation: %s", self.epoch, _Averager.format(valid))
                finished = self.epoch
                self.epoch += 1
                self.batch_in_epoch = 0
                self._save(self.dirs.epoch_checkpoint(finished), valid)
        if self.dist.owns_group:
            dist.destroy_process_group()
        return self.module

    def _set_progress(self, progress: float) -> float:
        lr = self.lr_schedule(self.step + 1, progress)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        if self.dropout_schedule is not None:
            self.module.set_dropout_proportion(self.dropout_schedule(progress))
        return lr

    def _train_epoch(self) -> None:
        cfg = self.config
        self.sampler.set_epoch(self.epoch)
        num_batches = count_batches(self.sampler)
        skip = self.batch_in_epoch
        loader = make_loader(self.dataset, self.sampler, cfg.num_workers, skip=skip)
        self.model.train()
        averager = _Averager()
        frames_seen, t_start = 0, time.time()
        bar = tqdm(total=num_batches, initial=skip, desc=f"epoch {self.epoch}", disable=not self.dist.is_main,
                   leave=False)
        for batch_idx, batch in enumerate(loader, start=skip):
            progress = (self.epoch - 1 + batch_idx / num_batches) / cfg.num_epochs
            lr = self._set_progress(progress)
            seed_everything(batch_seed(cfg.seed, self.epoch, batch_idx, self.dist.rank))
            batch = _to_device(batch, self.device)
            self._tell_step()
            values = self.loss_fn(self.model, batch)
            if "loss" not in values:
                raise KeyError("the loss callable must return a dict with the total under 'loss'")
            self.optimizer.zero_grad(set_to_none=True)
            values["loss"].backward()
            norm = self._clip_gradients()
            if math.isfinite(norm):
                self.optimizer.step()
            elif self.dist.is_main:
                log.warning("epoch %d batch %d: gradient norm %s, step skipped", self.epoch, batch_idx, norm)
            self.step += 1
            self.batch_in_epoch = batch_idx + 1
            if hasattr(self.module, "after_optimizer_step"):
                with torch.no_grad():
                    self.module.after_optimizer_step(self.step)
            frames = int(batch["feature_lens"].sum())
            averager.add(values, frames)
            frames_seen += frames
            bar.update(1)
            if self.dist.is_main and self.step % cfg.log_every_steps == 0:
                fps = frames_seen / max(time.time() - t_start, 1e-9)
                msg = (f"epoch {self.epoch} batch {batch_idx + 1}/{num_batches} step {self.step}: "
                       f"{_Averager.format(averager.means())}, lr={lr:.3g}, grad_norm={norm:.3g}, "
                       f"frames/s={fps * self.dist.world_size:.0f}")
                log.info(msg)
                bar.set_postfix_str(f"loss={averager.means()['loss']:.4f}")
            if cfg.save_every_steps and self.step % cfg.save_every_steps == 0 and self.batch_in_epoch < num_batches:
                self._save(self.dirs.step_checkpoint(self.step))
        bar.close()
        self._broadcast_buffers()
        averager.all_reduce(self.dist, self.device)
        if self.dist.is_main:
            seconds = max(time.time() - t_start, 1e-9)
            log.info("epoch %d training: %s, frames/s=%.0f, s/step=%.4f", self.epoch,
                     _Averager.format(averager.means()), frames_seen / seconds * self.dist.world_size,
                     seconds / max(num_batches - skip, 1))

    def _tell_step(self) -> None:
        """Objectives and models with a clock (a loss warm-up, an encoder frozen for the first
        updates) learn the optimizer steps done so far."""
        for owner in (self.loss_fn, self.module):
            set_step = getattr(owner, "set_step", None)
            if callable(set_step):
                set_step(self.step)

    def _broadcast_buffers(self) -> None:
        """Give every rank rank 0's buffers (batchnorm statistics).

        DDP does this at the start of each forward, so the other ranks' own updates from
        the last batch would otherwise survive to the end of training.
        """
        if self.dist.world_size > 1:
            for buf in self.module.buffers():
                dist.broadcast(buf, src=0)

    def _clip_gradients(self) -> float:
        """Clip the gradient's 2-norm to grad_clip (if > 0); return the norm before clipping."""
        max_norm = self.config.grad_clip if self.config.grad_clip > 0 else float("inf")
        return float(torch.nn.utils.clip_grad_norm_(self.module.parameters(), max_norm))

    @torch.no_grad()
    def validate(self) -> Optional[Dict[str, float]]:
        """Frame-weighted mean loss components over valid_cuts (all ranks together)."""
        if self.valid_cuts is None:
            return None
        sampler = make_sampler(self.valid_cuts, self.config.max_duration, False, self.config.seed,
                               self.config.num_buckets, self.dist.world_size, self.dist.rank)
        self.module.eval()
        self._tell_step()
        averager = _Averager()
        for batch in make_loader(self.dataset, sampler, self.config.num_workers):
            batch = _to_device(batch, self.device)
            averager.add(self.loss_fn(self.module, batch), int(batch["feature_lens"].sum()))
        self.module.train()
        averager.all_reduce(self.dist, self.device)
        return averager.means()
