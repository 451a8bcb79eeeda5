"""Training: the generic trainer, objectives as its plug-ins, checkpoints, schedules, runs."""
from frugal.train import ctc, lfmmi, transducer  # noqa: F401  (the built-in objectives register themselves)
from frugal.train.checkpoint import average_checkpoints, average_state_dicts
from frugal.train.objective import OBJECTIVES, Objective, ObjectiveInputs, make_objective, register
from frugal.train.schedule import DropoutSchedule, LrSchedule
from frugal.train.trainer import TrainConfig, Trainer, load_train_config, train_config_from_dict

__all__ = [
    "DropoutSchedule", "LrSchedule", "OBJECTIVES", "Objective", "ObjectiveInputs", "TrainConfig", "Trainer",
    "average_checkpoints", "average_state_dicts", "load_train_config", "make_objective", "register",
    "train_config_from_dict",
]
