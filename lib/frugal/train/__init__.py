"""Training: the generic trainer, checkpoints, averaging, schedules, datasets."""
from frugal.train.checkpoint import (
    average_checkpoints,
    average_state_dicts,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from frugal.train.data import FeatureDataset, make_sampler
from frugal.train.schedule import DropoutSchedule, LrSchedule
from frugal.train.trainer import TrainConfig, Trainer, load_train_config, train_config_from_dict

__all__ = [
    "DropoutSchedule",
    "FeatureDataset",
    "LrSchedule",
    "TrainConfig",
    "Trainer",
    "average_checkpoints",
    "average_state_dicts",
    "latest_checkpoint",
    "load_checkpoint",
    "load_train_config",
    "make_sampler",
    "save_checkpoint",
    "train_config_from_dict",
]
