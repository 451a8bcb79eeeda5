"""Acoustic models: TDNN-F (chain/CTC)."""
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

__all__ = [
    "PRESETS",
    "TdnnfConfig",
    "TdnnfModel",
    "config_from_dict",
    "constrain_orthonormal_",
    "load_config",
    "orthonormality_error",
    "tdnnf_config",
]
