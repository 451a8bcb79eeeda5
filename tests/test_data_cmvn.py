"""frugal compute-cmvn: per-speaker statistics kept in the cuts, applied where features are loaded.

Reference: numpy in float64 over the raw features of each group (Kaldi's compute-cmvn-stats
with --spk2utt, apply-cmvn --norm-vars), speed-perturbed copies as speakers of their own.
"""
from collections import defaultdict

import numpy as np
import pytest

from frugal.bin.main import main as frugal_main
from frugal.data.cmvn import cmvn_kind, require_cmvn
from frugal.data.cuts import load_cuts, source_id
from frugal.data.dataset import FeatureDataset
from frugal.errors import FrugalError
from test_data_an4 import TRAIN, make_an4


def run(*argv) -> None:
    assert frugal_main([str(a) for a in argv]) == 0, argv


@pytest.fixture(scope="module")
def fbank(tmp_path_factory):
    d = tmp_path_factory.mktemp("cmvn")
    corpus = make_an4(d / "an4", TRAIN)
    run("prepare-data", "an4", "--corpus-dir", corpus, "--output-dir", d / "m", "--dev-utterances", "0")
    run("compute-fbank", "--num-mel-bins", "23", "--speed-perturb", "--cuts-in", d / "m/an4_cuts_train.jsonl.gz",
        "--cuts-out", d / "cuts.jsonl.gz", "--storage-dir", d / "feats")
    return d


def loaded(cuts):
    batch = FeatureDataset()[list(cuts)]
    return {cid: batch["features"][i, :n].double().numpy()
            for i, (cid, n) in enumerate(zip(batch["cut_ids"], batch["feature_lens"].tolist()))}


@pytest.mark.parametrize("norm_vars", [False, True])
def test_per_speaker_statistics(fbank, norm_vars):
    out = fbank / f"cmvn_{norm_vars}.jsonl.gz"
    run("compute-cmvn", "--cuts-in", fbank / "cuts.jsonl.gz", "--cuts-out", out, *(["--norm-vars"] if norm_vars else []))
    raw = load_cuts(fbank / "cuts.jsonl.gz")
    cuts = load_cuts(out, features=True)
    assert cmvn_kind(cuts, "x") == "speaker" + ("+vars" if norm_vars else "")
    groups = defaultdict(list)
    for c in raw:
        groups[(c.supervisions[0].speaker, c.id[len(source_id(c.id)):])].append(c.id)
    assert len(groups) == 4 * 3  # 4 speakers, each at 3 speeds
    raw_feats = {c.id: c.load_features().astype(np.float64) for c in raw}
    normed = loaded(cuts)
    for ids in groups.values():
        x = np.concatenate([raw_feats[i] for i in ids])
        y = np.concatenate([normed[i] for i in ids])
        expected = x - x.mean(0)
        if norm_vars:
            expected = expected / x.std(0)
        np.testing.assert_allclose(y, expected, atol=2e-4, rtol=1e-4)


def test_per_utterance_and_mismatch(fbank, tmp_path):
    out = tmp_path / "utt.jsonl.gz"
    run("compute-cmvn", "--per", "utterance", "--cuts-in", fbank / "cuts.jsonl.gz", "--cuts-out", out)
    cuts = load_cuts(out)
    for feats in loaded(cuts).values():
        np.testing.assert_allclose(feats.mean(0), 0.0, atol=1e-4)
    require_cmvn("utterance", cuts, "model m.pt", "--cuts")
    with pytest.raises(FrugalError, match="--cuts: cuts with CMVN 'utterance', but model m.pt had CMVN 'speaker'"):
        require_cmvn("speaker", cuts, "model m.pt", "--cuts")
    with pytest.raises(FrugalError, match="cuts with CMVN 'none', but model m.pt had CMVN 'utterance'"):
        require_cmvn("utterance", load_cuts(fbank / "cuts.jsonl.gz"), "model m.pt", "--cuts")
    mixed = list(cuts)[:2] + list(load_cuts(fbank / "cuts.jsonl.gz"))[2:]
    with pytest.raises(FrugalError, match="mixed: cuts with different CMVN"):
        cmvn_kind(mixed, "mixed")
