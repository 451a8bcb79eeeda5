"""The transformer acoustic model through the tools: `frugal train` with ``type: transformer``,
then Monte-Carlo dropout decoding (`frugal decode --dropout-samples`)."""
import json

import torch

from dropout_testing import DECODE_OPTS, make_yesno_model, run
from frugal.lattice.io import read_lattices


def _hyps(path):
    return dict(line.split(maxsplit=1) if " " in line.strip() else (line.strip(), "")
                for line in path.read_text().splitlines())


def test_transformer_trains_and_decodes_with_dropout_samples(tmp_path, repo_dir, yesno_dir):
    d = make_yesno_model(tmp_path, repo_dir, yesno_dir, num_test_cuts=8,
                         model_section={"type": "transformer", "preset": "transformer-small",
                                        "d_model": 96, "num_layers": 2, "ff_dim": 192})
    model_dir = d / "exp/chain/tdnnf"
    final = torch.load(model_dir / "final.pt", weights_only=True)
    assert final["model_info"]["type"] == "transformer"
    out = d / "decode"
    run("decode", "--model", model_dir / "final.pt", "--graph", d / "exp/chain/graph/HCLG.fst",
        "--words", d / "data/lang/words.txt", "--cuts", d / "data/fbank/cuts_test.jsonl.gz",
        "--output-dir", out, "--dropout-samples", "2", "--dropout-proportion", "0.2", *DECODE_OPTS)
    info = json.loads((out / "dropout.json").read_text())
    assert info["dropout_samples"] == 2 and info["dropout_proportion"] == 0.2 and len(info["pass_seeds"]) == 2
    off = _hyps(out / "hyp.1.txt")
    assert len(off) == 8
    samples = [_hyps(out / "dropout" / str(k) / "hyp.1.txt") for k in (1, 2)]
    assert all(set(s) == set(off) for s in samples)
    # Dropout active at 0.2 in a transformer changes its scores: some sampled lattice differs.
    lat_off = read_lattices(out / "lat.1.pt")
    lat_1 = read_lattices(out / "dropout/1/lat.1.pt")
    assert any(not (lat_off[k] == lat_1[k]) for k in lat_off)
