"""frugal decode's driver: job splitting, graph/model checks, resumable jobs (untrained model, yesno test)."""
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from frugal.bin.main import main as frugal_main
from frugal import jobs
from frugal.decode.acoustic import load_acoustic_model
from frugal.decode.driver import MAX_BATCH_STATES, DecodeOptions, auto_batch_size, decode
from frugal.dirs import DecodeDir
from frugal.lattice.io import read_lattices
from frugal.lang.text import read_text
from frugal.errors import FrugalError
from frugal.lang.symbols import SymbolTable
from frugal.models import TdnnfModel, tdnnf_config


def run(*argv):
    assert frugal_main([str(a) for a in argv]) == 0, argv


@pytest.fixture(scope="module")
def setup(tmp_path_factory, yesno_dir):
    """yesno test features, lang, a trigram HCLG and untrained checkpoints (right and wrong size)."""
    d = tmp_path_factory.mktemp("decode_driver")
    run("prepare-data", "yesno", "--corpus-dir", yesno_dir, "--output-dir", d / "manifests",
        "--lexicon-dir", d / "local")
    run("prepare-lang", "--lexicon", d / "local/lexicon.txt", "--output-dir", d / "lang", "--sil-phone", "SIL")
    run("compute-fbank", "--cuts-in", d / "manifests/yesno_cuts_test.jsonl.gz",
        "--cuts-out", d / "fbank/cuts_test.jsonl.gz", "--storage-dir", d / "fbank/feats")
    run("cuts-to-text", "--cuts", d / "manifests/yesno_cuts_test.jsonl.gz", "--output", d / "text")
    run("make-word-lm", "--text", d / "text", "--order", "3", "--output", d / "lm.arpa")
    run("compile-graph", "--lang", d / "lang", "--arpa", d / "lm.arpa", "--topo", "chain",
        "--output", d / "graph/HCLG.fst")
    num_pdfs = json.loads((d / "graph/HCLG.fst.json").read_text())["num_pdfs"]
    for name, pdfs in (("model.pt", num_pdfs), ("small.pt", num_pdfs - 1)):
        torch.manual_seed(0)
        model = TdnnfModel(tdnnf_config("tdnnf-small", feat_dim=80, num_pdfs=pdfs))
        torch.save({"model": model.state_dict(), "model_info": model.model_info(), "objective": "lfmmi"},
                   d / name)
    return d


def options(d: Path, model="model.pt", **kw) -> DecodeOptions:
    # A narrow lattice beam: an untrained model's lattices hold very many word sequences.
    kw = {"beam": 10.0, "max_active": 200, "lattice_beam": 1.0, **kw}
    return DecodeOptions(model=str(d / model), graph=str(d / "graph/HCLG.fst"),
                         words=str(d / "lang/words.txt"), **kw)


@pytest.mark.parametrize("n,nj", [(30, 1), (30, 2), (30, 7), (5, 5), (31, 4)])
def test_job_split_covers_every_cut_once(n, nj):
    ids = [f"utt{k:03d}" for k in range(n)]
    parts = jobs.split(ids, nj)
    assert len(parts) == nj
    assert [u for part in parts for u in part] == ids  # each once, in order
    sizes = [len(j) for j in parts]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_more_jobs_than_cuts_is_an_error():
    with pytest.raises(FrugalError, match="nj 4: more jobs than the 3 cuts"):
        jobs.split(["a", "b", "c"], 4, "cuts")


def test_graph_reading_more_pdfs_than_the_model_has(setup, tmp_path, capsys):
    d = setup
    argv = ["decode", "--model", d / "small.pt", "--graph", d / "graph/HCLG.fst", "--words",
            d / "lang/words.txt", "--cuts", d / "fbank/cuts_test.jsonl.gz", "--output-dir", tmp_path / "dec"]
    assert frugal_main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("frugal decode: error:")
    assert str(d / "small.pt") in err and str(d / "graph/HCLG.fst") in err
    assert not (tmp_path / "dec" / ".done").exists()


def test_checkpoint_objective(setup):
    am = load_acoustic_model(str(setup / "model.pt"))
    assert am.objective == "lfmmi" and not am.model.training


def test_rerun_skips_finished_jobs_and_redoes_killed_ones(setup, tmp_path):
    d, out = setup, tmp_path / "dec"
    opts = options(d, text_lattices=True)
    assert decode(str(d / "fbank/cuts_test.jsonl.gz"), str(out), opts, nj=2, show_progress=False) == [1, 2]
    assert (out / ".done").is_file() and (out / "num_jobs").read_text() == "2\n"
    refs = read_text(d / "text")
    hyps = {**read_text(out / "hyp.1.txt"), **read_text(out / "hyp.2.txt")}
    assert set(hyps) == set(refs)
    lats = {**read_lattices(out / "lat.1.pt"), **read_lattices(out / "lat.2.pt")}
    assert set(lats) == set(refs)
    assert read_lattices(out / "lat.1.txt") == read_lattices(out / "lat.1.pt")
    for j in (1, 2):
        log = DecodeDir(out).job(j).log.read_text()
        assert f"job {j} done: 15 utterances" in log
    stamp = {p: p.stat().st_mtime_ns for p in out.glob("*.[1-2].*")}

    # Everything done: nothing is run again, nothing rewritten.
    assert decode(str(d / "fbank/cuts_test.jsonl.gz"), str(out), opts, nj=2, show_progress=False) == []
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.[1-2].*")} == stamp

    # Job 2 killed before its done-marker (its lattices missing, a temporary left): redone alone.
    (out / "lat.2.pt").unlink()
    (out / ".done.2").unlink()
    (out / ".tmp.999.lat.2.pt").write_bytes(b"partial")
    (out / ".done").unlink()
    assert decode(str(d / "fbank/cuts_test.jsonl.gz"), str(out), opts, nj=2, show_progress=False) == [2]
    assert (out / ".done").is_file() and not (out / ".tmp.999.lat.2.pt").exists()
    assert DecodeDir(out).job(1).lattices.stat().st_mtime_ns == stamp[out / "lat.1.pt"]
    assert read_text(out / "hyp.2.txt") == {u: hyps[u] for u in read_text(out / "hyp.2.txt")}
    assert set(read_lattices(out / "lat.2.pt")) == set(read_text(out / "hyp.2.txt"))

    # Other options, or a retrained model under the same name: both jobs are redone.
    assert decode(str(d / "fbank/cuts_test.jsonl.gz"), str(out), options(d, beam=9.0), nj=2,
                      show_progress=False) == [1, 2]
    os.utime(d / "model.pt")
    assert decode(str(d / "fbank/cuts_test.jsonl.gz"), str(out), options(d, beam=9.0), nj=2,
                      show_progress=False) == [1, 2]


def test_a_killed_job_resumes_from_its_partial_results(setup, tmp_path, monkeypatch):
    # Flush after every batch; the job dies reading its fourth batch (as if killed).
    from frugal.decode import driver
    from frugal.data.dataset import FeatureDataset  # (its batches are counted)
    d, cuts = setup, str(setup / "fbank/cuts_test.jsonl.gz")
    opts = options(d, batch_size=4)  # 30 cuts: 8 batches
    decode(cuts, str(tmp_path / "whole"), opts, nj=1, show_progress=False)
    monkeypatch.setattr(driver.PartialResults, "FLUSH_SECONDS", 0.0)
    calls, dies_at = [], [4]
    real = FeatureDataset.__getitem__

    def dying(self, *a, **k):
        calls.append(1)
        if len(calls) == dies_at[0]:
            raise KeyboardInterrupt("killed")
        return real(self, *a, **k)
    monkeypatch.setattr(FeatureDataset, "__getitem__", dying)
    out = tmp_path / "dec"
    with pytest.raises(KeyboardInterrupt):
        decode(cuts, str(out), opts, nj=1, show_progress=False)
    partial = DecodeDir(out).job(1).partial
    assert sorted(p.name for p in partial.glob("chunk.*.json")) == ["chunk.0.json", "chunk.1.json", "chunk.2.json"]
    assert not DecodeDir(out).job(1).done.exists() and not (out / ".done").exists()
    # The re-run decodes the other 5 batches only, and its files equal a whole run's.
    calls.clear()
    dies_at[0] = 0
    decode(cuts, str(out), opts, nj=1, show_progress=False)
    assert len(calls) == 5 and not partial.exists()
    assert "resuming: 12 of 30 cuts were decoded by an earlier run" in DecodeDir(out).job(1).log.read_text()
    assert (out / "hyp.1.txt").read_text() == (tmp_path / "whole/hyp.1.txt").read_text()
    assert read_lattices(out / "lat.1.pt") == read_lattices(tmp_path / "whole/lat.1.pt")
    # Partial results of other options are not taken.
    other = tmp_path / "other"
    calls.clear()
    dies_at[0] = 4
    with pytest.raises(KeyboardInterrupt):
        decode(cuts, str(other), opts, nj=1, show_progress=False)
    monkeypatch.setattr(FeatureDataset, "__getitem__", real)
    decode(cuts, str(other), options(d, batch_size=4, beam=9.0), nj=1, show_progress=False)
    assert "resuming" not in DecodeDir(other).job(1).log.read_text()


def test_one_job_in_process_matches_two_processes(setup, tmp_path):
    d = setup
    threads = torch.get_num_threads()
    decode(str(d / "fbank/cuts_test.jsonl.gz"), str(tmp_path / "a"), options(d), nj=1, show_progress=False)
    assert torch.get_num_threads() == threads  # the in-process job gives its thread setting back
    decode(str(d / "fbank/cuts_test.jsonl.gz"), str(tmp_path / "b"), options(d, batch_size=4), nj=2,
               show_progress=False)
    one = read_text(tmp_path / "a/hyp.1.txt")
    two = {**read_text(tmp_path / "b/hyp.1.txt"), **read_text(tmp_path / "b/hyp.2.txt")}
    assert one == two


def test_ctc_model_over_hlg_and_topology_mismatch(setup, tmp_path):
    d = setup
    run("make-word-lm", "--text", d / "text", "--order", "2", "--output", tmp_path / "lm2.arpa")
    run("compile-graph", "--lang", d / "lang", "--arpa", tmp_path / "lm2.arpa", "--topo", "ctc",
        "--output", tmp_path / "HLG.fst")
    num_units = 1 + max(i for s, i in SymbolTable.read(d / "lang/phones.txt") if not s.startswith("#"))
    torch.manual_seed(0)
    model = TdnnfModel(tdnnf_config("tdnnf-small", feat_dim=80, num_pdfs=num_units))
    torch.save({"model": model.state_dict(), "model_info": model.model_info(), "objective": "ctc"},
               tmp_path / "ctc.pt")
    opts = DecodeOptions(model=str(tmp_path / "ctc.pt"), graph=str(tmp_path / "HLG.fst"),
                         words=str(d / "lang/words.txt"), beam=10.0, max_active=200, lattice_beam=1.0)
    cuts = str(d / "fbank/cuts_test.jsonl.gz")
    assert decode(cuts, str(tmp_path / "ctc"), opts, nj=1, show_progress=False) == [1]
    assert set(read_text(tmp_path / "ctc/hyp.1.txt")) == set(read_text(d / "text"))
    # A chain model over the CTC graph, and the CTC model over HCLG: refused, naming both files.
    with pytest.raises(FrugalError, match=r"topology ctc but model .*model\.pt was trained with lfmmi"):
        decode(cuts, str(tmp_path / "x"), DecodeOptions(**{**opts.__dict__, "model": str(d / "model.pt")}),
                   nj=1, show_progress=False)
    with pytest.raises(FrugalError, match=r"HCLG\.fst .* model .*ctc\.pt"):
        decode(cuts, str(tmp_path / "y"), DecodeOptions(**{**opts.__dict__, "graph": str(d / "graph/HCLG.fst")}),
                   nj=1, show_progress=False)


def test_graph_of_another_hmm_topology_than_the_den_graph_is_refused(setup, tmp_path):
    """1- and 2-state chain topologies have equally many pdfs; the graph's and the den
    graph's JSON say which, and a mismatch is refused (it once let a 2-state model decode
    with a 1-state graph, whose lattices then exhausted memory in determinisation)."""
    d = setup
    graph_meta = json.loads((d / "graph/HCLG.fst.json").read_text())
    assert (graph_meta["context"], graph_meta["hmm_states"]) == ("biphone", 1)
    state = torch.load(d / "model.pt", weights_only=True)
    cuts = str(d / "fbank/cuts_test.jsonl.gz")
    for field, value in (("hmm_states", 2), ("context", "mono")):
        den = tmp_path / field / "den.pt"
        den.parent.mkdir()
        meta = {"context": "biphone", "hmm_states": 1, field: value}
        (tmp_path / field / "den.pt.json").write_text(json.dumps(meta))
        torch.save({**state, "den_graph": str(den)}, tmp_path / field / "model.pt")
        opts = DecodeOptions(**{**options(d).__dict__, "model": str(tmp_path / field / "model.pt")})
        with pytest.raises(FrugalError, match=rf"graph .*HCLG\.fst has {field} .* but model .*model\.pt "
                                              rf"was trained on den graph .*den\.pt with {field} {value}"):
            decode(cuts, str(tmp_path / field / "dec"), opts, nj=1, show_progress=False)
    # The same den graph metadata as the graph's: accepted.
    (tmp_path / "hmm_states" / "den.pt.json").write_text(json.dumps({"context": "biphone", "hmm_states": 1}))
    opts = DecodeOptions(**{**options(d).__dict__, "model": str(tmp_path / "hmm_states" / "model.pt")})
    assert decode(cuts, str(tmp_path / "ok"), opts, nj=1, show_progress=False) == [1]


def test_automatic_batch_size():
    # Up to 8 utterance-passes a call on CPU (larger batches only slowed lattices down), 32 on
    # a GPU, and never more (utterance, state) pairs than MAX_BATCH_STATES. (It only reads
    # the graph's size and device.)
    def graph(num_states, device="cpu"):
        return SimpleNamespace(num_states=num_states, device=torch.device(device))

    assert auto_batch_size(graph(100)) == 8
    assert auto_batch_size(graph(100, "cuda")) == 32
    assert auto_batch_size(graph(MAX_BATCH_STATES // 3)) == 3
    assert auto_batch_size(graph(MAX_BATCH_STATES // 20, "cuda")) == 20
    assert auto_batch_size(graph(2 * MAX_BATCH_STATES)) == 1


def test_prepare_drops_partial_results_of_jobs_beyond_num_jobs(tmp_path):
    for j in (1, 3):
        (tmp_path / f"partial.{j}").mkdir()
        (tmp_path / f"partial.{j}" / "chunk.0.json").write_text("{}")
    DecodeDir(tmp_path).prepare(2, {"nj": 2})
    assert (tmp_path / "partial.1" / "chunk.0.json").is_file() and not (tmp_path / "partial.3").exists()
