"""Fingerprints: a model meets a graph, a den graph or a words.txt by content, not by path.

One yesno lang, a den graph, a model trained on it for one epoch (its den graph named
relative to the training directory, as a recipe does), and decoding graphs that disagree
with it in one thing each. Decoding runs from another directory, where that relative path
means nothing: the content check still holds.
"""
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from lhotse import CutSet

from frugal.bin.main import main as frugal_main
from frugal.errors import BadValue
from frugal.graph.fingerprint import den_graph_fingerprint
from frugal.models import model_from_checkpoint
from frugal.train.objective import ObjectiveInputs, make_objective
from frugal.train.run import load_init_model

CONFIG = """
model:
  preset: tdnnf-small
  hidden_dim: 64
  bottleneck_dim: 16
  prefinal_bottleneck_dim: 16
train:
  num_epochs: 1
  max_duration: 20.0
  device: cpu
  seed: 1
"""
MISMATCH = "they were not built for each other"


def run(*argv):
    assert frugal_main([str(a) for a in argv]) == 0, argv


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def d(tmp_path_factory, yesno_dir):
    """A training directory: lang, lang_j (phone Y renamed J: same sizes, another pdf map),
    den/den.pt, exp/model/final.pt trained on it, graphs graph (matching), graph_2state,
    graph_mono and graph_j, and 2 test cuts with features."""
    d = tmp_path_factory.mktemp("fingerprints")
    here, threads = os.getcwd(), torch.get_num_threads()
    os.chdir(d)
    try:
        run("prepare-data", "yesno", "--corpus-dir", yesno_dir, "--output-dir", "m", "--lexicon-dir", "local")
        run("prepare-lang", "--lexicon", "local/lexicon.txt", "--output-dir", "lang", "--sil-phone", "SIL")
        Path("lexicon_j.txt").write_text(Path("local/lexicon.txt").read_text().replace("YES Y", "YES J"))
        run("prepare-lang", "--lexicon", "lexicon_j.txt", "--output-dir", "lang_j", "--sil-phone", "SIL")
        for part, n in (("train", 4), ("test", 2)):
            CutSet.from_file(f"m/yesno_cuts_{part}.jsonl.gz").subset(first=n).to_file(f"{part}.jsonl.gz")
            run("compute-fbank", "--cuts-in", f"{part}.jsonl.gz", "--cuts-out", f"fbank_{part}.jsonl.gz",
                "--storage-dir", d / f"feats_{part}")  # absolute: decoding runs from elsewhere
        run("cuts-to-text", "--cuts", "m/yesno_cuts_train.jsonl.gz", "--output", "text")
        run("make-word-lm", "--text", "text", "--order", "2", "--output", "lm.arpa")
        run("make-den-graph", "--lang", "lang", "--cuts", "m/yesno_cuts_train.jsonl.gz", "--output", "den/den.pt")
        run("make-den-graph", "--lang", "lang", "--cuts", "m/yesno_cuts_train.jsonl.gz", "--output",
            "den2/den.pt", "--hmm-states", "2")
        graphs = {"graph": ["--den-graph", "den/den.pt"], "graph_2state": ["--hmm-states", "2"],
                  "graph_mono": ["--context", "mono"]}
        for name, extra in graphs.items():
            run("compile-graph", "--lang", "lang", "--arpa", "lm.arpa", "--topo", "chain", "--output",
                f"{name}/HCLG.fst", *extra)
        run("compile-graph", "--lang", "lang_j", "--arpa", "lm.arpa", "--topo", "chain", "--output",
            "graph_j/HCLG.fst")
        Path("tiny.yaml").write_text(CONFIG)
        run("train", "--train-config", "tiny.yaml", "--train-cuts", "fbank_train.jsonl.gz", "--lang", "lang",
            "--den-graph", "den/den.pt", "--exp-dir", "exp/model", "--num-threads", "1")
    finally:
        os.chdir(here)
        torch.set_num_threads(threads)
    return d


def decode(d, out, model="exp/model/final.pt", graph="graph", words="lang/words.txt", *extra):
    return frugal_main([str(a) for a in (
        "decode", "--model", d / model, "--graph", d / graph / "HCLG.fst", "--words", d / words, "--cuts",
        d / "fbank_test.jsonl.gz", "--output-dir", out, "--beam", 8, "--max-active", 50, "--lattice-beam", 1,
        *extra)])


def error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err.rstrip("\n")


def test_checkpoints_and_graphs_record_fingerprints(d):
    den = den_graph_fingerprint(d / "den/den.pt")
    assert den == {"topo": "chain", "context": "biphone", "hmm_states": 1, "num_pdfs": den["num_pdfs"],
                   "pdf_map_sha256": sha(d / "den/pdf_map.txt")}
    for name in ("final.pt", "epoch-1.pt"):
        state = torch.load(d / "exp/model" / name, weights_only=True)
        assert state["den_fingerprint"] == den and state["den_graph"] == "den/den.pt", name
    meta = json.loads((d / "graph/HCLG.fst.json").read_text())
    assert {k: meta[k] for k in den} == den and meta["words_sha256"] == sha(d / "lang/words.txt")


@pytest.mark.parametrize("graph,field,theirs,ours", [
    ("graph_2state", "hmm_states", "2", "1"),
    ("graph_mono", "context", "mono", "biphone"),
    ("graph_j", "pdf_map_sha256", "graph_j/pdf_map.txt", "den/pdf_map.txt"),
])
def test_a_graph_of_another_den_graph_is_refused_from_any_directory(d, graph, field, theirs, ours, tmp_path,
                                                                    monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # den/den.pt, as the checkpoint names it, is not here
    if field == "pdf_map_sha256":
        theirs, ours = sha(d / theirs)[:12], sha(d / ours)[:12]
    assert decode(d, tmp_path / "dec", graph=graph) == 1
    assert error(capsys) == (f"frugal decode: error: graph {d / graph / 'HCLG.fst'} has {field} {theirs} but model "
                             f"{d / 'exp/model/final.pt'} was trained on den graph den/den.pt with {field} {ours}: "
                             f"{MISMATCH}")
    assert not (tmp_path / "dec/.done").exists()


def test_the_matching_graph_decodes_from_another_directory(d, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert decode(d, tmp_path / "dec") == 0
    assert (tmp_path / "dec/.done").is_file()


def test_a_graph_without_metadata_is_refused_unless_checks_are_skipped(d, tmp_path, capsys):
    (tmp_path / "bare").mkdir()
    shutil.copy(d / "graph/HCLG.fst", tmp_path / "bare/HCLG.fst")
    graph = tmp_path / "bare/HCLG.fst"
    args = ("decode", "--model", d / "exp/model/final.pt", "--graph", graph, "--words", d / "lang/words.txt",
            "--cuts", d / "fbank_test.jsonl.gz", "--output-dir", tmp_path / "dec", "--beam", 8, "--max-active", 50,
            "--lattice-beam", 1)  # a narrow lattice beam: an untrained model's lattices are huge
    assert frugal_main([str(a) for a in args]) == 1
    assert error(capsys) == (f"frugal decode: error: graph {graph} has no metadata {graph}.json (written by frugal "
                             f"compile-graph): cannot check that it suits model {d / 'exp/model/final.pt'}; "
                             f"--skip-checks decodes anyway")
    assert frugal_main([str(a) for a in args + ("--skip-checks",)]) == 0
    assert (tmp_path / "dec/.done").is_file()
    assert json.loads((tmp_path / "dec/decode.json").read_text())["skip_checks"] is True


def test_words_of_another_lang_are_refused(d, tmp_path, capsys):
    words = tmp_path / "words.txt"
    words.write_text((d / "lang/words.txt").read_text().replace("NO ", "NOPE ", 1))
    assert decode(d, tmp_path / "dec", "exp/model/final.pt", "graph", words) == 1
    assert error(capsys) == (f"frugal decode: error: words file {words} is not the words.txt graph "
                             f"{d / 'graph/HCLG.fst'} was compiled with (sha256 {sha(words)[:12]}, the graph's "
                             f"{sha(d / 'lang/words.txt')[:12]}): every word would be wrong")


def test_graph_metadata_from_before_fingerprints_warns(d, tmp_path, caplog):
    old = tmp_path / "old"
    shutil.copytree(d / "graph", old)
    meta = json.loads((old / "HCLG.fst.json").read_text())
    del meta["words_sha256"], meta["pdf_map_sha256"]
    (old / "HCLG.fst.json").write_text(json.dumps(meta))
    assert decode(d, tmp_path / "dec", "exp/model/final.pt", old) == 0
    assert (f"graph {old / 'HCLG.fst'}: {old / 'HCLG.fst.json'} records no words.txt hash (compiled before frugal "
            f"recorded it): cannot check that {d / 'lang/words.txt'} is the graph's words.txt") in caplog.text
    # Its pdf map is still compared, from the pdf_map.txt beside it.
    shutil.copy(d / "graph_j/pdf_map.txt", old / "pdf_map.txt")
    assert decode(d, tmp_path / "dec2", "exp/model/final.pt", old) == 1


def test_checkpoints_from_before_fingerprints(d, tmp_path, monkeypatch, capsys, caplog):
    state = torch.load(d / "exp/model/final.pt", weights_only=True)
    del state["den_fingerprint"]
    # den_info (the pdf map's text): compared by content.
    info = {"context": "biphone", "hmm_states": 1, "pdf_map": (d / "den/pdf_map.txt").read_text()}
    torch.save({**state, "den_info": info}, tmp_path / "info.pt")
    assert decode(d, tmp_path / "a", tmp_path / "info.pt", "graph_j") == 1
    assert "has pdf_map_sha256" in error(capsys)
    # Only the den graph's path: found from the checkpoint's directory upwards ...
    (d / "exp/old").mkdir(exist_ok=True)
    torch.save(state, d / "exp/old/final.pt")
    monkeypatch.chdir(tmp_path)
    assert decode(d, tmp_path / "b", "exp/old/final.pt", "graph_2state") == 1
    assert error(capsys).startswith(f"frugal decode: error: graph {d / 'graph_2state/HCLG.fst'} has hmm_states 2 "
                                    f"but model {d / 'exp/old/final.pt'} was trained on den graph ")
    # ... or nowhere: a warning that nothing can be checked.
    torch.save(state, tmp_path / "lost.pt")
    assert decode(d, tmp_path / "c", tmp_path / "lost.pt") == 0
    assert (f"model {tmp_path / 'lost.pt'} records no den graph fingerprint and its den graph den/den.pt is not "
            f"found from here") in caplog.text


def test_align_refuses_a_den_graph_of_another_topology(d, tmp_path, capsys):
    args = ("align", "--model", d / "exp/model/final.pt", "--cuts", d / "fbank_test.jsonl.gz", "--lang", d / "lang",
            "--den-graph", d / "den2/den.pt", "--output", tmp_path / "ali.pt")
    assert frugal_main([str(a) for a in args]) == 1
    assert error(capsys) == (f"frugal align: error: den graph {d / 'den2/den.pt'} has hmm_states 2 but model "
                             f"{d / 'exp/model/final.pt'} was trained on den graph den/den.pt with hmm_states 1: "
                             f"{MISMATCH}")
    assert not (tmp_path / "ali.pt").exists()


def test_compile_graph_refuses_a_den_graph_of_another_lang(d, tmp_path, capsys):
    den = d / "den/den.pt"
    assert frugal_main([str(a) for a in ("compile-graph", "--lang", d / "lang_j", "--arpa", d / "lm.arpa", "--topo",
                                         "chain", "--den-graph", den, "--output", tmp_path / "HCLG.fst")]) == 1
    assert error(capsys) == (f"frugal compile-graph: error: --den-graph {den}: has another pdf map (sha256 "
                             f"{sha(d / 'den/pdf_map.txt')[:12]}) than lang {d / 'lang_j'} gives (sha256 "
                             f"{sha(d / 'graph_j/pdf_map.txt')[:12]}): made from another lang")
    assert not (tmp_path / "HCLG.fst").exists()


def test_init_model_of_another_den_graph_is_refused(d):
    objective = make_objective("lfmmi", ObjectiveInputs(str(d / "lang"), str(d / "den2/den.pt")))
    state = torch.load(d / "exp/model/final.pt", weights_only=True)
    model = model_from_checkpoint(state)
    init = str(d / "exp/model/final.pt")
    with pytest.raises(BadValue) as e:
        load_init_model(model, init, "tiny.yaml", objective)
    assert e.value.message("--init-model") == (
        f"--init-model {init}: was trained on den graph den/den.pt with hmm_states 1 but den graph "
        f"{d / 'den2/den.pt'} has hmm_states 2")
