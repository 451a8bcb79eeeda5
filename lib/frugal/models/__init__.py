"""Acoustic models: TDNN-F (chain/CTC)."""
from pathlib import Path
from typing import Dict, Union

import torch

from frugal.errors import FrugalError
from frugal.models.tdnnf import (
    PRESETS,
    TdnnfConfig,
    TdnnfModel,
    config_from_dict,
    constrain_orthonormal_,
    load_config,
    orthonormality_error,
    tdnnf_config,
)


def model_from_info(info: Dict, where: str = "model_info") -> torch.nn.Module:
    """Build an (untrained) model from ``model.model_info()`` as stored in checkpoints."""
    kind = info.get("type")
    if kind == "tdnnf":
        return TdnnfModel(config_from_dict(info["config"], where=where))
    raise FrugalError(f"{where}: unknown model type {kind!r}")


def load_model(checkpoint: Union[str, Path], map_location: str = "cpu") -> torch.nn.Module:
    """The model of a trainer checkpoint (e.g. epoch-10.pt or an averaged one), in eval mode."""
    from frugal.train.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint, map_location=map_location)
    model = model_from_info(state.get("model_info", {}), where=str(checkpoint))
    model.load_state_dict(state["model"])
    return model.eval()


__all__ = [
    "PRESETS",
    "TdnnfConfig",
    "TdnnfModel",
    "config_from_dict",
    "constrain_orthonormal_",
    "load_config",
    "load_model",
    "model_from_info",
    "orthonormality_error",
    "tdnnf_config",
]
