"""Semi-supervised LF-MMI training: derivative weights against the unweighted gradient and
against the loss's parts, lattice supervision against transcripts in mixed batches,
frugal set-cut-texts for the den graph, and frugal train --init-model --supervision-lattices
on the real yesno corpus (start from the seed, kill -9 and resume, bad input).

The supervision lattices are written here: compact lattices over each cut's transcript
(every word aligned to an equal share of the output frames), some with a second path
that swaps one word at a known graph cost, so every expected value follows by hand.
"""
import logging
import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from lhotse import CutSet
from lhotse.utils import fastcopy

from frugal.bin.main import main as frugal_main
from frugal.dirs import DecodeDir
from frugal.lattice.lattice import Lattice
from frugal.lattice.io import write_lattices
from frugal.errors import FrugalError
from frugal.fsa.leaky_hmm import denominator_log_likelihood
from frugal.graph.chain import ChainLexicon
from frugal.graph.den_graph import ChainDenGraph
from frugal.lang.symbols import SymbolTable
from frugal.losses.lfmmi import lfmmi_loss, numerator_log_likelihood
from frugal.models import load_model, model_from_info
from frugal.train.lfmmi import LatticeSupervisionOptions
from frugal.data.dataset import FeatureDataset
from frugal.train.lfmmi import LfmmiObjective
from test_losses_lfmmi import toy_setup

VENV_BIN = Path(sys.executable).parent
SWAP_COST = 1.2  # graph cost of the second path of a two-path lattice over the first


# ------------------------------------------------------------------------------------ helpers
def path_lattice(word_ids, num_frames, swap=None):
    """A compact lattice of ``word_ids`` over ``num_frames`` frames (word k's frames carry
    label 2 + k); with ``swap = (position, word)`` a second path has that word there, with
    graph cost SWAP_COST more and labels 99 on its frames (the same acoustic cost)."""
    n = len(word_ids)
    bounds = [round(i * num_frames / n) for i in range(n + 1)]
    arcs, weights, aligns = [], [], []
    for k, w in enumerate(word_ids):
        arcs.append((k, k + 1, w, w))
        weights.append((0.5, 40.0))
        aligns.append(tuple([2 + k] * (bounds[k + 1] - bounds[k])))
    if swap is not None:
        k, w = swap
        arcs.append((k, k + 1, w, w))
        weights.append((0.5 + SWAP_COST, 40.0))
        aligns.append(tuple([99] * (bounds[k + 1] - bounds[k])))
    finals = np.full((n + 1, 2), np.inf)
    finals[n] = 0.0
    return Lattice(np.array(arcs), np.array(weights), finals, aligns, {})


def swapped_word(words, position):
    return {"YES": "NO", "NO": "YES"}[words[position]]


def output_frames(cut):
    return -(-cut.num_frames // 3)  # TDNN-F: a third of the frame rate, rounded up


def run_frugal(*args):
    """frugal TOOL ARGS in this process; its exit status."""
    return frugal_main([str(a) for a in args])


# ---------------------------------------------------------------------- derivative weights
def test_frame_weights_scale_each_frames_gradient():
    pdf_map, den, nums = toy_setup(context_width=2)
    gen = torch.Generator().manual_seed(0)
    lengths, T, D = torch.tensor([7, 4]), 7, pdf_map.num_pdfs
    y = torch.randn(2, T, D, dtype=torch.float64, generator=gen).requires_grad_(True)
    xent = torch.randn(2, T, D, dtype=torch.float64, generator=gen).log_softmax(-1).requires_grad_(True)
    w = torch.rand(2, T, dtype=torch.float64, generator=gen)
    w[1, 4:] = 7.0  # padding: ignored
    opts = dict(leaky_hmm_coefficient=0.1, l2_regularize=0.01, xent_regularize=0.3)
    plain = lfmmi_loss(y, lengths, nums.fsas, den.graph, xent, **opts)
    weighted = lfmmi_loss(y, lengths, nums.fsas, den.graph, xent, **opts, frame_weights=w)
    # The values are the unweighted ones.
    assert plain.keys() == weighted.keys()
    for k in plain:
        assert torch.equal(plain[k].detach(), weighted[k].detach()), k
    gy, gx = torch.autograd.grad(plain["loss"], (y, xent))
    gy_w, gx_w = torch.autograd.grad(weighted["loss"], (y, xent))
    valid = (torch.arange(T)[None, :] < lengths[:, None])[..., None]
    assert torch.allclose(gy_w, torch.where(valid, gy * w[..., None], 0.0), rtol=1e-12, atol=0)
    assert torch.allclose(gx_w, torch.where(valid, gx * w[..., None], 0.0), rtol=1e-12, atol=0)

    # The same from the loss's parts: w_t * (den occupation - num occupation + l2 * y_t) for
    # the chain output and -xent_regularize * w_t * num occupation for the xent head, per frame.
    frames = float(lengths.sum())
    (num_post,) = torch.autograd.grad(numerator_log_likelihood(nums.fsas, y, lengths).sum(), y)
    (den_post,) = torch.autograd.grad(denominator_log_likelihood(den.graph, y, lengths, 0.1), y)
    ref_y = w[..., None] * (den_post - num_post + 0.01 * y.detach()) / frames
    ref_x = -0.3 * w[..., None] * num_post / frames
    assert torch.allclose(gy_w, torch.where(valid, ref_y, 0.0), rtol=1e-6, atol=1e-12)
    assert torch.allclose(gx_w, torch.where(valid, ref_x, 0.0), rtol=1e-6, atol=1e-12)

    # All-ones weights are no weights, bit for bit.
    ones = lfmmi_loss(y, lengths, nums.fsas, den.graph, xent, **opts, frame_weights=torch.ones(2, T))
    g1y, g1x = torch.autograd.grad(ones["loss"], (y, xent))
    assert torch.equal(g1y, gy) and torch.equal(g1x, gx)
    with pytest.raises(ValueError, match="frame_weights"):
        lfmmi_loss(y, lengths, nums.fsas, den.graph, xent, frame_weights=torch.ones(2, T - 1))


# ------------------------------------------------------------------------------ yesno setup
SEED_CONFIG = """
loss:
  xent_regularize: 0.1
model:
  preset: tdnnf-small
  hidden_dim: 64
  bottleneck_dim: 16
  prefinal_bottleneck_dim: 16
train:
  num_epochs: 5
  max_duration: 13.0
  num_buckets: 2
  lr: 0.01
  warmup_steps: 2
  seed: 7
  log_every_steps: 1
  device: cpu
"""
# Fine-tuning from the seed: a small learning rate, mid-epoch checkpoints for the kill test.
SEMI_CONFIG = (SEED_CONFIG.replace("num_epochs: 5", "num_epochs: 3").replace("lr: 0.01", "lr: 0.0003")
               .replace("seed: 7", "seed: 7\n  save_every_steps: 4"))


@pytest.fixture(scope="module")
def yesno(tmp_path_factory, yesno_dir):
    """The yesno train set with features, split into 12 supervised cuts, 12 unsupervised
    cuts (hypotheses: the transcripts with the 2nd word swapped in every 3rd cut) and 6
    validation cuts; lang; lattices of the unsupervised cuts (every 2nd with a second
    path) in two lat.J.pt files of a directory, plus one of a cut that does not exist."""
    d = tmp_path_factory.mktemp("semisup")
    for args in (["prepare-data", "yesno", "--corpus-dir", yesno_dir, "--output-dir", d / "manifests",
                  "--lexicon-dir", d / "local"],
                 ["prepare-lang", "--lexicon", d / "local/lexicon.txt", "--output-dir", d / "lang",
                  "--sil-phone", "SIL"]):
        assert run_frugal(*args) == 0
    (d / "fbank.yaml").write_text("num_mel_bins: 23\n")
    assert run_frugal("compute-fbank", "--config", d / "fbank.yaml", "--cuts-in",
                      d / "manifests/yesno_cuts_train.jsonl.gz", "--cuts-out", d / "cuts_all.jsonl.gz",
                      "--storage-dir", d / "feats") == 0
    cuts = list(CutSet.from_file(d / "cuts_all.jsonl.gz"))
    assert len(cuts) == 30
    sup, unsup, valid = cuts[:12], cuts[12:24], cuts[24:]
    for part, name in ((sup, "sup"), (unsup, "unsup"), (valid, "valid")):
        CutSet.from_cuts(part).to_file(d / f"cuts_{name}.jsonl.gz")
    words = SymbolTable.read(d / "lang/words.txt")
    hyps, lats = {}, {}
    for k, c in enumerate(unsup):
        text = c.supervisions[0].text.split()
        hyps[c.id] = text[:1] + [swapped_word(text, 1)] + text[2:] if k % 3 == 0 else text
        ids = [words[w] for w in text]
        lats[c.id] = path_lattice(ids, output_frames(c), (1, words[swapped_word(text, 1)]) if k % 2 else None)
    lat_dir = DecodeDir(d / "lats")  # as frugal make-supervision writes it
    lat_dir.prepare(2, {"kind": "regular"})
    ids = list(lats)
    write_lattices(lat_dir.job(1).lattices, {k: lats[k] for k in ids[:6]})
    write_lattices(lat_dir.job(2).lattices, {**{k: lats[k] for k in ids[6:]},
                                             "no-such-cut": path_lattice([words["YES"]], 10)})
    lat_dir.finish()
    return {"dir": d, "sup": sup, "unsup": unsup, "valid": valid, "hyps": hyps, "lats": lats, "words": words}


@pytest.fixture(scope="module")
def semi_data(yesno):
    """frugal set-cut-texts (from a decode directory's hyp.J.txt) and the semi-supervised den
    graph of sup:1.5 + unsup 1-best:1.0; the training cuts sup + unsup 1-best."""
    d = yesno["dir"]
    decode = d / "decode_unsup"
    decode.mkdir()
    items = list(yesno["hyps"].items())
    for j, part in ((1, items[:5]), (2, items[5:])):
        (decode / f"hyp.{j}.txt").write_text("".join(" ".join([k, *ws]) + "\n" for k, ws in part))
    (decode / "num_jobs").write_text("2\n")
    (decode / ".done").write_text("")
    assert run_frugal("set-cut-texts", "--cuts", d / "cuts_unsup.jsonl.gz", "--text", decode,
                      "--output", d / "cuts_unsup_1best.jsonl.gz") == 0
    assert run_frugal("make-den-graph", "--lang", d / "lang", "--context", "mono", "--output", d / "chain/den.pt",
                      "--cuts", f"{d / 'cuts_sup.jsonl.gz'}:1.5", f"{d / 'cuts_unsup_1best.jsonl.gz'}:1.0") == 0
    train = CutSet.from_file(d / "cuts_sup.jsonl.gz") + CutSet.from_file(d / "cuts_unsup_1best.jsonl.gz")
    train.to_file(d / "cuts_train.jsonl.gz")
    return d


def test_set_cut_texts(yesno, semi_data, tmp_path, capsys):
    d = semi_data
    out = {c.id: c for c in CutSet.from_file(d / "cuts_unsup_1best.jsonl.gz")}
    assert list(out) == [c.id for c in yesno["unsup"]]
    for c in yesno["unsup"]:
        new = out[c.id]
        assert [s.text for s in new.supervisions] == [" ".join(yesno["hyps"][c.id])]
        assert new.supervisions[0].duration == pytest.approx(c.duration) and new.has_features
        assert np.array_equal(new.load_features(), c.load_features())
    # Unknown cut: file and line; cuts without a text: how many, and the first.
    bad = tmp_path / "hyp.txt"
    lines = [f"{c.id} YES" for c in yesno["unsup"][:2]] + ["nobody NO"]
    bad.write_text("\n".join(lines) + "\n")
    assert run_frugal("set-cut-texts", "--cuts", d / "cuts_unsup.jsonl.gz", "--text", bad,
                      "--output", tmp_path / "o.jsonl.gz") == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"frugal set-cut-texts: error: {bad}:3: cut nobody is not in --cuts {d / 'cuts_unsup.jsonl.gz'}")
    bad.write_text("\n".join(lines[:2]) + "\n")
    assert run_frugal("set-cut-texts", "--cuts", d / "cuts_unsup.jsonl.gz", "--text", bad,
                      "--output", tmp_path / "o.jsonl.gz") == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("frugal set-cut-texts: error: --text: 10 of 12 cuts of --cuts ")
    assert err.endswith(f"have no text, e.g. {yesno['unsup'][2].id}")
    assert not (tmp_path / "o.jsonl.gz").exists()


def fixed_output_model(chain, xent, lengths):
    class Fixed(torch.nn.Module):
        def forward(self, features, feature_lens):
            return chain, xent, lengths
    return Fixed()


def test_lattice_cuts_in_a_batch_with_transcript_cuts(yesno, semi_data):
    """Cut a: transcript; cut b: one-path lattice of its transcript (= the transcript's
    numerator); cut c: two paths, its transcript and a swapped word at graph cost SWAP_COST
    (numerator: both transcripts', the second scaled by exp(-0.5 * SWAP_COST))."""
    d = semi_data
    lexicon, den = ChainLexicon.from_lang_dir(d / "lang"), ChainDenGraph.load(d / "chain/den.pt")
    words = yesno["words"]
    a, b, c = yesno["sup"][:3]
    texts = [x.supervisions[0].text for x in (a, b, c)]
    ids = [a.id, b.id, c.id]
    lens = torch.tensor([40, 36, 30])  # output frames (the model outputs are made up)
    lats = {b.id: path_lattice([words[w] for w in texts[1].split()], int(lens[1])),
            c.id: path_lattice([words[w] for w in texts[2].split()], int(lens[2]),
                               (1, words[swapped_word(texts[2].split(), 1)]))}
    plain = LfmmiObjective(lexicon, den)
    by_lattice = LfmmiObjective(lexicon, den, lattices=lats)
    gen = torch.Generator().manual_seed(3)
    y = torch.randn(3, int(lens.max()), den.num_pdfs, generator=gen)

    def num_ll(task, cut_ids, cut_texts, rows=slice(None)):
        graphs, _ = task.numerators(cut_ids, cut_texts)
        return numerator_log_likelihood(graphs.fsas, y[rows], lens[rows]).tolist()

    got = num_ll(by_lattice, ids, texts)
    ref = num_ll(plain, ids, texts)
    assert got[:2] == pytest.approx(ref[:2], rel=1e-6)
    c_words = texts[2].split()
    alt = " ".join(c_words[:1] + [swapped_word(c_words, 1)] + c_words[2:])
    alt_ll = num_ll(plain, [c.id], [alt], rows=slice(2, 3))[0]
    assert got[2] == pytest.approx(float(np.logaddexp(ref[2], alt_ll - 0.5 * SWAP_COST)), rel=1e-5)

    # Loss of a batch of a (transcript) and b (lattice) = that of their transcripts.
    batch = {"cut_ids": ids[:2], "texts": texts[:2], "features": None, "feature_lens": None}
    xent = torch.randn(y.shape, generator=gen).log_softmax(-1)
    model = fixed_output_model(y[:2], xent[:2], lens[:2])
    expected, got = plain(model, batch), by_lattice(model, batch)
    assert expected.keys() == got.keys()
    for k in expected:
        assert float(got[k].detach()) == pytest.approx(float(expected[k].detach()), rel=1e-5), k

    # Numerators of lattice cuts are built once.
    assert by_lattice.lattices.num_built == 2
    first, seconds = by_lattice.lattices.get(c.id)[0], by_lattice.lattices.build_seconds
    by_lattice.numerators(ids, texts)
    assert by_lattice.lattices.get(c.id)[0] is first and by_lattice.lattices.build_seconds == seconds

    # Frame weights and the unsupervised weight 0.5: a's gradient is unchanged, b's (one
    # path: posterior 1 everywhere) halved, c's halved and, on the swapped word's frames,
    # scaled by the best path's posterior 1 / (1 + exp(-SWAP_COST)).
    weighted = LfmmiObjective(lexicon, den, lattices=lats,
                         lattice_options=LatticeSupervisionOptions(frame_weights=True, weight=0.5))
    batch = {"cut_ids": ids, "texts": texts, "features": None, "feature_lens": None}

    def grad(task):
        out = y.clone().requires_grad_(True)
        return torch.autograd.grad(task(fixed_output_model(out, xent, lens), batch)["loss"], out)[0]

    g_lat, g_w = grad(by_lattice), grad(weighted)
    n = int(lens[2])
    bounds = [round(i * n / len(c_words)) for i in range(len(c_words) + 1)]
    w_c = torch.ones(n)
    w_c[bounds[1]:bounds[2]] = 1 / (1 + math.exp(-SWAP_COST))
    assert torch.equal(g_w[0], g_lat[0])
    assert torch.allclose(g_w[1], 0.5 * g_lat[1], rtol=1e-6, atol=1e-12)
    assert torch.allclose(g_w[2, :n], 0.5 * w_c[:, None] * g_lat[2, :n], rtol=1e-5, atol=1e-12)

    # Lattices of another frame rate cannot give frame weights.
    wrong = {b.id: path_lattice([words[w] for w in texts[1].split()], int(lens[1]) + 2)}
    task = LfmmiObjective(lexicon, den, lattices=wrong, lattice_options=LatticeSupervisionOptions(frame_weights=True))
    with pytest.raises(FrugalError, match=rf"cut {b.id}: its supervision lattice has {int(lens[1]) + 2} frames "
                                          rf"but the model gives {int(lens[1])} output frames"):
        task(fixed_output_model(y, xent, lens), batch)


# --------------------------------------------------------------------------- frugal train
def train_cmd(d, conf, cuts, exp_dir, *extra):
    return [str(VENV_BIN / "frugal"), "train", "--train-config", str(conf), "--train-cuts", str(cuts),
            "--lang", str(d / "lang"), "--den-graph", str(d / "chain/den.pt"), "--exp-dir", str(exp_dir),
            "--num-threads", "1", *map(str, extra)]


def semi_cmd(d, exp_dir):
    return train_cmd(d, d / "semi.yaml", d / "cuts_train.jsonl.gz", exp_dir, "--valid-cuts",
                     d / "cuts_valid.jsonl.gz", "--init-model", d / "seed/final.pt",
                     "--supervision-lattices", d / "lats", "--frame-weights", "--unsup-weight", "0.7")


class Messages(logging.Handler):
    """The log messages of frugal's loggers while it is installed."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def __enter__(self):
        logger = logging.getLogger("frugal")
        self.old_level = logger.level
        logger.setLevel(logging.INFO)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("frugal").removeHandler(self)
        logging.getLogger("frugal").setLevel(self.old_level)


@pytest.fixture(scope="module")
def semi_run(semi_data):
    """The seed (flat-start on the 12 supervised cuts) and an uninterrupted semi-supervised
    run from it, in this process (a subprocess costs a torch import on a loaded machine):
    (data dir, its exp dir, the run's log messages)."""
    d = semi_data
    (d / "seed.yaml").write_text(SEED_CONFIG)
    (d / "semi.yaml").write_text(SEMI_CONFIG)
    with Messages():
        assert frugal_main(train_cmd(d, d / "seed.yaml", d / "cuts_sup.jsonl.gz", d / "seed")[1:]) == 0
    t0 = time.time()
    with Messages() as messages:
        assert frugal_main(semi_cmd(d, d / "semi")[1:]) == 0
    print(f"semi-supervised run: {time.time() - t0:.1f} s")
    return d, d / "semi", "\n".join(messages.messages)


def epoch_objectives(train_log, kind):
    """Per-epoch objf of the 'training' or 'validation' lines of a train.log."""
    pattern = re.compile(rf"epoch (\d+) {kind}: .*?objf=(-?[0-9.]+)")
    return [float(m.group(2)) for m in map(pattern.search, Path(train_log).read_text().splitlines()) if m]


def validation_objf(task, model, cuts):
    batch = FeatureDataset()[CutSet.from_cuts(cuts)]
    with torch.no_grad():
        return float(task(model.eval(), batch)["objf"])


def test_semisupervised_run_starts_from_the_seed(yesno, semi_run):
    d, exp, messages = semi_run
    log = (exp / "log/train.log").read_text()
    assert "12 of 24 training cuts are supervised by lattices" in log
    assert f"initial weights from --init-model {d / 'seed/final.pt'}" in log
    assert "1 lattice(s) of cuts that are not training or validation cuts are not used, e.g. no-such-cut" in messages
    cost = re.search(r"built the numerators of all 12 supervision lattices in [0-9.]+ s \(([0-9.]+) ms a lattice\)",
                     log)
    assert cost, log
    print(f"lattice numerator: {cost.group(1)} ms a lattice")
    # Starting from the seed: after the first epoch (a small learning rate) the weights are
    # close to the seed's, far from those of the same model at its random initialisation ...
    seed = load_model(d / "seed/final.pt")
    torch.manual_seed(7)
    fresh = model_from_info(seed.model_info())
    first = torch.load(exp / "epoch-1.pt", weights_only=True)["model"]
    seed_w, fresh_w = dict(seed.named_parameters()), dict(fresh.named_parameters())

    def distance(a, b):
        return math.sqrt(sum(float((a[k].detach() - b[k].detach()).pow(2).sum()) for k in seed_w))

    assert distance(first, seed_w) < 0.1 * distance(seed_w, fresh_w)
    # ... and the first epoch's training objective is the seed's last one, far from the
    # objective of the untrained model.
    task = LfmmiObjective(ChainLexicon.from_lang_dir(d / "lang"), ChainDenGraph.load(d / "chain/den.pt"))
    fresh_objf = validation_objf(task, fresh, yesno["valid"])
    seed_last = epoch_objectives(d / "seed/log/train.log", "training")[-1]
    semi_first = epoch_objectives(exp / "log/train.log", "training")[0]
    assert abs(semi_first - seed_last) < 0.1 * abs(seed_last - fresh_objf), (semi_first, seed_last, fresh_objf)
    final = torch.load(exp / "final.pt", weights_only=True)
    assert final["init_model"] == str(d / "seed/final.pt")
    assert final["supervision_lattices"] == [str(d / "lats")]


@pytest.mark.slow
def test_killed_semisupervised_run_resumes_to_the_same_model(semi_run):
    d, ref, _ = semi_run
    exp = d / "killed"
    proc = subprocess.Popen(semi_cmd(d, exp), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill it after the first mid-epoch checkpoint of epoch 2: the resumed run rebuilds the
    # lattice numerators mid-epoch.
    deadline, epoch_steps = time.time() + 120, None
    while proc.poll() is None and time.time() < deadline:
        if epoch_steps is None and (exp / "epoch-1.pt").exists():
            epoch_steps = torch.load(exp / "epoch-1.pt", weights_only=True)["trainer"]["step"]
        if epoch_steps is not None and any(int(p.stem.split("-")[1]) > epoch_steps
                                           for p in exp.glob("checkpoint-*.pt")):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert (exp / "epoch-1.pt").exists() and not (exp / "final.pt").exists()
    with Messages():
        assert frugal_main(semi_cmd(d, exp)[1:]) == 0
    log = (exp / "log/train.log").read_text()
    assert "resuming from the experiment's checkpoint, not from --init-model" in log
    print(re.search(r"resumed from .*", log).group(0))
    a = torch.load(exp / "final.pt", weights_only=True)["model"]
    b = torch.load(ref / "final.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].double(), b[k].double(), rtol=1e-5, atol=1e-6), k


def test_bad_input_gives_one_line_errors(yesno, semi_run, tmp_path, capsys):
    d, _, _ = semi_run
    seed = d / "seed/final.pt"

    def error(*extra, conf=d / "semi.yaml", cuts=d / "cuts_train.jsonl.gz", objective=()):
        cmd = train_cmd(d, conf, cuts, tmp_path / "exp", *extra)[1:]
        if objective:
            cmd = [x for x in cmd if x not in ("--den-graph", str(d / "chain/den.pt"))] + list(objective)
        assert frugal_main(cmd) == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines and lines[-1].startswith("frugal train: error: "), lines
        return lines[-1][len("frugal train: error: "):]

    assert error("--supervision-lattices", tmp_path / "nope") == \
        f"--supervision-lattices {tmp_path / 'nope'}: no such file or directory"
    (tmp_path / "empty").mkdir()
    assert error("--supervision-lattices", tmp_path / "empty") == \
        f"--supervision-lattices {tmp_path / 'empty'}: not a finished decode directory (no .done; run frugal decode)"
    bigger = tmp_path / "bigger.yaml"
    bigger.write_text(SEMI_CONFIG.replace("hidden_dim: 64", "hidden_dim: 32"))
    msg = error("--init-model", seed, conf=bigger)
    assert msg.startswith(f"--init-model {seed}: a different model than {bigger} describes")
    assert "hidden_dim: 64 in the checkpoint, 32 in the config" in msg
    # Unsupervised cuts without hypotheses: those without a lattice cannot be trained on.
    no_text = CutSet.from_file(d / "cuts_sup.jsonl.gz") + CutSet.from_cuts(
        [c.map_supervisions(lambda s: fastcopy(s, text="")) for c in yesno["unsup"]])
    no_text.to_file(tmp_path / "no_text.jsonl.gz")
    some = tmp_path / "some.pt"
    write_lattices(some, {k: yesno["lats"][k] for k in list(yesno["lats"])[1:]})
    assert error("--supervision-lattices", some, cuts=tmp_path / "no_text.jsonl.gz") == (
        f"{tmp_path / 'no_text.jsonl.gz'}: cut {yesno['unsup'][0].id} has neither a transcript nor "
        "a supervision lattice")
    assert error("--supervision-lattices", d / "lats", objective=["--objective", "ctc"]) == \
        f"--supervision-lattices {d / 'lats'}: are for LF-MMI only"
    assert not (tmp_path / "exp").exists()
