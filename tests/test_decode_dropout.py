"""frugal decode --dropout-samples: Monte-Carlo dropout decoding on a briefly trained yesno model
(pass directories, masks independent of jobs, batch size and N, reruns, errors)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dropout_testing import DECODE_OPTS, make_yesno_model, run
from frugal.bin.main import main as frugal_main
from frugal.decode import Decoder, DecoderConfig
from frugal import jobs
from frugal.decode.acoustic import load_graph
from frugal.decode.driver import DecodeOptions, decode, decode_cuts, load_checked
from frugal.decode.dropout import pass_seeds, utterance_seed
from frugal.dirs import DecodeDir
from frugal.lang.text import read_texts
from frugal.lattice.io import read_lattice_files
from frugal.lang.text import read_text
from frugal.errors import FrugalError
from frugal.lang.symbols import SymbolTable
from frugal.models import TdnnfModel, load_model
from frugal.data.cuts import load_cuts
from frugal.data.dataset import FeatureDataset

PROPORTION = 0.2


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, repo_dir, yesno_dir):
    return make_yesno_model(tmp_path_factory.mktemp("decode_dropout"), repo_dir, yesno_dir)


def cuts_path(d: Path) -> str:
    return str(d / "data/fbank/cuts_test.jsonl.gz")


def options(d: Path, **kw) -> DecodeOptions:
    kw = {"beam": 15.0, "lattice_beam": 1.0, "dropout_proportion": PROPORTION, **kw}
    return DecodeOptions(model=str(d / "exp/chain/tdnnf/final.pt"), graph=str(d / "exp/chain/graph/HCLG.fst"),
                         words=str(d / "data/lang/words.txt"), **kw)


def read_pass(out: Path, k: int):
    """(uttid -> words, uttid -> lattice) of pass k of a decode directory."""
    p = DecodeDir(out).pass_dir(k)
    return read_texts(p.hyp_files()), read_lattice_files(p.lattice_files())


def assert_lattices_close(a, b):
    """The same lattices up to float rounding of the network's batched forward."""
    assert set(a) == set(b)
    for u in a:
        assert np.array_equal(a[u].arcs, b[u].arcs) and a[u].alignments == b[u].alignments, u
        np.testing.assert_allclose(a[u].weights, b[u].weights, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(a[u].finals, b[u].finals, rtol=1e-5, atol=1e-3)


@pytest.fixture(scope="module")
def one_job(model_dir, tmp_path_factory):
    """N = 2 with one job, automatic batch size."""
    out = tmp_path_factory.mktemp("one_job") / "dec"
    assert decode(cuts_path(model_dir), str(out), options(model_dir, dropout_samples=2), nj=1,
                      show_progress=False) == [1]
    return out


@pytest.fixture(scope="module")
def three_jobs(model_dir, tmp_path_factory):
    """N = 2 with three job processes, 4 utterance-passes a decoder call (one utterance a batch)."""
    out = tmp_path_factory.mktemp("three_jobs") / "dec"
    assert decode(cuts_path(model_dir), str(out), options(model_dir, dropout_samples=2, batch_size=4), nj=3,
                      show_progress=False) == [1, 2, 3]
    return out


def test_pass_directories_and_dropout_json(model_dir, one_job):
    out = one_job
    cut_ids = [c.id for c in load_cuts(cuts_path(model_dir))]
    info = json.loads((out / "dropout.json").read_text())
    assert info["dropout_samples"] == 2 and info["dropout_proportion"] == PROPORTION and info["dropout_seed"] == 0
    assert info["pass_seeds"] == pass_seeds(0, 2) and len(set(info["pass_seeds"])) == 2
    assert (out / ".done").is_file() and set(read_text(out / "hyp.1.txt")) == set(cut_ids)
    for k in (1, 2):
        p = out / "dropout" / str(k)
        assert (p / ".done").is_file() and (p / "num_jobs").read_text() == "1\n"
        dec = json.loads((p / "decode.json").read_text())
        assert dec["dropout_pass"] == k and dec["dropout_pass_seed"] == info["pass_seeds"][k - 1]
        assert list(read_text(p / "hyp.1.txt")) == cut_ids  # in the cuts' order, like pass 0
    log = (out / "log/decode.1.log").read_text()
    assert "36 utterance-passes (1 dropout-off + 2 dropout)" in log and "forward (dropout on)" in log
    # A pass directory is a decode directory for the scoring and lattice tools.
    run("score-lattices", "--decode-dir", out / "dropout/2", "--ref-cuts", cuts_path(model_dir),
        "--words", model_dir / "data/lang/words.txt", "--lmwt", "10", "--wip", "0.0")
    assert (out / "dropout/2/wer_10_0.0").read_text().startswith("%WER")
    run("lattice", "best-path", out / "dropout/1/lat.1.pt", "--acoustic-scale", "0.1",
        "--words", model_dir / "data/lang/words.txt", "--output", out.parent / "best1.txt")
    assert read_text(out.parent / "best1.txt") == read_text(out / "dropout/1/hyp.1.txt")


def test_samples_do_not_depend_on_jobs_batch_size_or_n(model_dir, one_job, three_jobs, tmp_path):
    # One sample, one utterance-pass a decoder call (so one utterance a batch): pass 1 as with N = 2.
    n1 = tmp_path / "n1"
    decode(cuts_path(model_dir), str(n1), options(model_dir, dropout_samples=1, batch_size=1), nj=1,
               show_progress=False)
    for k in (1, 2):
        assert read_pass(one_job, k) == read_pass(three_jobs, k)
    assert read_pass(n1, 1) == read_pass(one_job, 1)
    assert not (n1 / "dropout/2").exists()
    # The dropout-off pass is the usual batched forward: same 1-best, lattice costs up to rounding.
    for other in (three_jobs, n1):
        hyps, lats = read_pass(other, 0)
        assert hyps == read_pass(one_job, 0)[0]
        assert_lattices_close(lats, read_pass(one_job, 0)[1])


def test_samples_differ_and_follow_their_seeds(model_dir, one_job, monkeypatch):
    passes = [read_pass(one_job, k) for k in range(3)]
    uttids = list(passes[0][0])
    # Fresh masks a pass: the samples disagree with each other and with the dropout-off decode.
    assert sum(passes[1][1][u] != passes[2][1][u] for u in uttids) >= len(uttids) // 2
    assert any(len({tuple(p[0][u]) for p in passes}) > 1 for u in uttids)
    # Pass k of an utterance is the model run on that utterance alone, dropout on, with torch's
    # RNG seeded from (pass seed, cut id), then searched.
    model = load_model(model_dir / "exp/chain/tdnnf/final.pt")
    model.set_dropout_active(True, PROPORTION)
    words = SymbolTable.read(model_dir / "data/lang/words.txt")
    decoder = Decoder(load_graph(str(model_dir / "exp/chain/graph/HCLG.fst")),
                      DecoderConfig(beam=15.0, max_active=7000, lattice_beam=1.0))
    cuts = list(load_cuts(cuts_path(model_dir)))
    for cut in cuts[:4]:
        batch = FeatureDataset()[[cut]]
        for k, seed in enumerate(pass_seeds(0, 2), 1):
            torch.manual_seed(utterance_seed(seed, cut.id))
            with torch.no_grad():
                chain, _, lens = model(batch["features"], batch["feature_lens"])
            (result,) = decoder.decode(chain, lens)
            assert [words.symbol(w) for w in result.words] == passes[k][0][cut.id], (cut.id, k)
    # Progress counts utterance-passes.
    am, graph = load_checked(options(model_dir, dropout_samples=2))
    counted = []
    monkeypatch.setattr(jobs, "_report", counted.append)
    out = decode_cuts(load_cuts(cuts_path(model_dir)).subset(first=3), options(model_dir, dropout_samples=2),
                      am, graph)
    assert sum(counted) == 9 and len(out) == 3


def test_no_samples_is_a_plain_decode_and_removes_old_samples(model_dir, one_job, tmp_path):
    out = tmp_path / "dec"
    shutil.copytree(one_job, out)
    # Fewer samples: the second sample of an earlier run goes.
    torch.manual_seed(7)
    decode(cuts_path(model_dir), str(out), options(model_dir, dropout_samples=1), nj=1, show_progress=False)
    rng_after_samples = torch.get_rng_state()
    assert not (out / "dropout/2").exists() and json.loads((out / "dropout.json").read_text())["dropout_samples"] == 1
    assert read_pass(out, 1) == read_pass(one_job, 1)
    # Another seed: new samples (the job is redone).
    assert decode(cuts_path(model_dir), str(out), options(model_dir, dropout_samples=1, dropout_seed=5), nj=1,
                      show_progress=False) == [1]
    assert json.loads((out / "dropout.json").read_text())["pass_seeds"] == pass_seeds(5, 1) != pass_seeds(0, 1)
    assert read_pass(out, 1)[1] != read_pass(one_job, 1)[1]
    # No samples: today's decode; nothing of dropout is left or recorded.
    torch.manual_seed(7)
    assert decode(cuts_path(model_dir), str(out), options(model_dir), nj=1, show_progress=False) == [1]
    # Sampling leaves the caller's RNG as a plain decode does (model building draws from it).
    assert torch.equal(torch.get_rng_state(), rng_after_samples)
    assert not (out / "dropout").exists() and not (out / "dropout.json").exists()
    decode_json = json.loads((out / "decode.json").read_text())
    assert not any(k.startswith("dropout") for k in decode_json)
    assert not any("dropout" in k for k in json.loads((out / ".done.1").read_text())["options"])
    hyps, lats = read_pass(out, 0)
    assert hyps == read_pass(one_job, 0)[0]
    assert_lattices_close(lats, read_pass(one_job, 0)[1])


def test_rerun_skips_done_jobs_and_redoes_incomplete_ones(model_dir, three_jobs, tmp_path):
    out = tmp_path / "dec"
    shutil.copytree(three_jobs, out)
    opts = options(model_dir, dropout_samples=2, batch_size=4)
    assert decode(cuts_path(model_dir), str(out), opts, nj=3, show_progress=False) == []
    # Job 2 killed while writing its passes: no done-marker, one pass file missing, a temporary left.
    (out / "dropout/2/lat.2.pt").unlink()
    (out / ".done.2").unlink()
    (out / "dropout/2/.tmp.999.lat.2.pt").write_bytes(b"partial")
    # Job 3's marker is there but one of its pass files is not: redone too; job 1 is kept.
    (out / "dropout/1/hyp.3.txt").unlink()
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("**/*.1.*")}
    assert decode(cuts_path(model_dir), str(out), opts, nj=3, show_progress=False) == [2, 3]
    assert not (out / "dropout/2/.tmp.999.lat.2.pt").exists()
    assert {p: p.stat().st_mtime_ns for p in out.glob("**/*.1.*")} == stamps
    for k in range(3):
        assert read_pass(out, k) == read_pass(three_jobs, k)


def test_errors(model_dir, tmp_path, monkeypatch, capsys):
    cuts = cuts_path(model_dir)
    argv = ["decode", "--model", model_dir / "exp/chain/tdnnf/final.pt", "--graph", model_dir / "exp/chain/graph/HCLG.fst",
            "--words", model_dir / "data/lang/words.txt", "--cuts", cuts, "--output-dir", tmp_path / "x",
            "--dropout-samples", "2", *DECODE_OPTS]
    for extra, message in ((["--dropout-proportion", "0.7"], "--dropout-proportion 0.7: dropout proportion 0.7 is out of range"),
                           (["--dropout-proportion", "0"], "--dropout-proportion 0.0: must be positive"),
                           (["--dropout-samples", "-1"], "--dropout-samples -1: must be 0")):
        assert frugal_main([str(a) for a in argv + extra]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("frugal decode: error: ") and message in err, err
    assert not (tmp_path / "x/.done").exists()
    # A model without Monte-Carlo dropout.
    monkeypatch.delattr(TdnnfModel, "set_dropout_active")
    with pytest.raises(FrugalError, match=r"model .*final\.pt: a TdnnfModel has no dropout to sample"):
        decode(cuts, str(tmp_path / "y"), options(model_dir, dropout_samples=1), nj=1, show_progress=False)
    # ... decodes as before without samples.
    assert decode(cuts, str(tmp_path / "z"), options(model_dir), nj=1, show_progress=False) == [1]
