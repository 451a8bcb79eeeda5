"""Acoustic models: TDNN-F and transformer encoders (LF-MMI, CTC), transducers over them, the
pre-training models of ch. 4 (MAM, wav2vec 2.0) and pre-trained encoders with a head.

The encoders take (B, T, F) features and their lengths and return (chain output, xent
log-probs, output lengths) at a third of the frame rate; a transducer
(`frugal.models.transducer`) wraps one with a predictor and a joiner. ``model_info()`` rebuilds them from
checkpoints (`model_from_info`, `load_model`), and `build_model` makes one from the
``model`` section of a training config.
"""
from pathlib import Path
from typing import Callable, Dict, Union

import torch

from frugal.dirs import load_checkpoint
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
from frugal.models.transformer import PRESETS as TRANSFORMER_PRESETS
from frugal.models.transformer import TransformerConfig, TransformerModel, set_attention, transformer_config
from frugal.models.transformer import config_from_dict as transformer_config_from_dict
from frugal.models.transducer import TransducerConfig, TransducerModel
from frugal.models.transducer import config_from_dict as transducer_config_from_dict
from frugal.models.finetune import PretrainedModel
from frugal.models.finetune import config_from_dict as finetune_config_from_dict
from frugal.models.mam import MamModel
from frugal.models.mam import config_from_dict as mam_config_from_dict


def _wav2vec2_model(d: Dict, where: str) -> torch.nn.Module:
    from frugal.models.wav2vec2 import Wav2Vec2Model, config_from_dict as wav2vec2_config_from_dict
    return Wav2Vec2Model(wav2vec2_config_from_dict(d, where))


# model type (``model_info()["type"]``, a config's ``model: type:``) -> model from a config mapping
MODEL_BUILDERS: Dict[str, Callable[[Dict, str], torch.nn.Module]] = {
    "tdnnf": lambda d, where: TdnnfModel(config_from_dict(d, where=where)),
    "transformer": lambda d, where: TransformerModel(transformer_config_from_dict(d, where=where)),
    # a transducer's encoder is any of the others, built through this table
    "transducer": lambda d, where: TransducerModel.from_config(transducer_config_from_dict(d, where=where),
                                                               _build_encoder, where),
    # pre-training models (frugal pretrain) and a pre-trained encoder with a head (frugal train --init-encoder)
    "mam": lambda d, where: MamModel(mam_config_from_dict(d, where)),
    "wav2vec2": _wav2vec2_model,
    "pretrained": lambda d, where: PretrainedModel(finetune_config_from_dict(d, where), where),
}
ENCODER_ONLY = ("tdnnf", "transformer")  # what a transducer's encoder may be


def _build_encoder(section: Dict, where: str) -> torch.nn.Module:
    section = dict(section)
    kind = section.pop("type")
    if kind not in ENCODER_ONLY:
        known = ", ".join(ENCODER_ONLY)
        raise FrugalError(f"{where}: unknown encoder type {kind!r} (known: {known})")
    return MODEL_BUILDERS[kind](section, where)


def model_from_info(info: Dict, where: str = "model_info") -> torch.nn.Module:
    """Build an (untrained) model from ``model.model_info()`` as stored in checkpoints."""
    kind = info.get("type")
    if kind not in MODEL_BUILDERS:
        raise FrugalError(f"{where}: unknown model type {kind!r} (known: {', '.join(MODEL_BUILDERS)})")
    return MODEL_BUILDERS[kind](info["config"], where)


def build_model(section: Dict, feat_dim: int, num_outputs: int, where: str,
                output_source: str) -> torch.nn.Module:
    """A model from a training config's ``model`` section, of its ``type`` (default tdnnf).

    feat_dim and num_pdfs, when the section names them, must agree with the features and
    with the objective's output size (``output_source`` says where that comes from, e.g.
    ``den graph exp/chain/den.pt``); otherwise they are filled in.
    """
    section = dict(section)
    kind = section.pop("type", "tdnnf")
    if kind not in MODEL_BUILDERS:
        raise FrugalError(f"{where}: unknown model type {kind!r} (known: {', '.join(MODEL_BUILDERS)})")
    for key, value, source in (("feat_dim", feat_dim, "the features"), ("num_pdfs", num_outputs, output_source)):
        if key in section:
            given = section[key]
            if isinstance(given, bool) or not isinstance(given, int):
                raise FrugalError(f"{where}: model {key} must be an integer (got {given!r})")
            if given != value:
                raise FrugalError(f"{where}: model {key} is {given} but must be {value} (from {source})")
        section[key] = value
    return MODEL_BUILDERS[kind](section, where)


def model_from_checkpoint(state: Dict, where: str = "checkpoint") -> torch.nn.Module:
    """The model of a loaded checkpoint (`frugal.dirs.load_checkpoint`) with its weights."""
    if not isinstance(state.get("model"), dict):
        raise FrugalError(f"{where}: no model weights in this checkpoint")
    model = model_from_info(state.get("model_info", {}), where=where)
    model.load_state_dict(state["model"])
    return model


def load_model(checkpoint: Union[str, Path], map_location: str = "cpu") -> torch.nn.Module:
    """The model of a trainer checkpoint (e.g. epoch-10.pt or an averaged one), in eval mode."""
    return model_from_checkpoint(load_checkpoint(checkpoint, map_location=map_location), str(checkpoint)).eval()


__all__ = [
    "MODEL_BUILDERS",
    "PRESETS",
    "TRANSFORMER_PRESETS",
    "TdnnfConfig",
    "TdnnfModel",
    "TransducerConfig",
    "TransducerModel",
    "TransformerConfig",
    "TransformerModel",
    "build_model",
    "config_from_dict",
    "constrain_orthonormal_",
    "load_config",
    "load_model",
    "model_from_checkpoint",
    "model_from_info",
    "orthonormality_error",
    "set_attention",
    "tdnnf_config",
    "transformer_config",
    "transformer_config_from_dict",
]
