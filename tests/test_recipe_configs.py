"""Every training config of the recipes (egs/*/conf/*.yaml with a train section) is valid: its
train section, its model section for the model's type, and a pre-training task's loss options."""
import re
from pathlib import Path

import pytest

from frugal.models import MODEL_BUILDERS
from frugal.models.finetune import config_from_dict as finetune_config
from frugal.models.mam import PRESETS as MAM_PRESETS, MamEncoder
from frugal.models.mam import config_from_dict as mam_config
from frugal.models.tdnnf import config_from_dict as tdnnf_config
from frugal.models.transformer import config_from_dict as transformer_config
from frugal.models.wav2vec2 import config_from_dict as wav2vec2_config
from frugal.pretrain.common import options_from_mapping
from frugal.pretrain.mam import MamMasking
from frugal.pretrain.wav2vec2 import Wav2Vec2Loss
from frugal.train.run import read_train_config
from frugal.train.trainer import train_config_from_dict

REPO = Path(__file__).resolve().parent.parent
CONFIGS = sorted(p for p in REPO.glob("egs/*/conf/*.yaml") if re.search(r"^train:", p.read_text(), re.M))


def test_there_are_configs():
    assert len(CONFIGS) > 20


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "egs")))
def test_config_is_valid(path):
    sections = read_train_config(str(path))
    train_config_from_dict(sections["train"], where=str(path))
    model = dict(sections["model"])
    kind = model.pop("type", "tdnnf")
    assert kind in MODEL_BUILDERS
    where = str(path)
    if kind == "tdnnf":
        tdnnf_config({**model, "num_pdfs": 10}, where)
    elif kind == "transformer":
        transformer_config({**model, "num_pdfs": 10}, where)
    elif kind == "mam":
        mam_config(model, where)
        options_from_mapping(MamMasking, sections["loss"], where)
    elif kind == "wav2vec2":
        wav2vec2_config(model, where)
        options_from_mapping(Wav2Vec2Loss, sections["loss"], where)
    elif kind == "pretrained":
        encoder = MamEncoder(MAM_PRESETS["mam-small"]).encoder_info()
        cfg = finetune_config({**model, "encoder": encoder, "num_pdfs": 10}, where)
        if cfg.head_type == "tdnnf":
            tdnnf_config({**cfg.head, "feat_dim": 192, "num_pdfs": 10}, where)
