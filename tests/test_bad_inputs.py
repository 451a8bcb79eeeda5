"""Bad input, as a new user gives it: every case gets one line naming the culprit, no traceback.

One case a row: the tool's arguments (built from a small yesno set-up), the part of the
message that must name the culprit, and the exit status. Tools run in-process through
`frugal.bin.main` with file descriptors captured (C++ libraries write to fd 2 directly), so
an unexpected exception fails the test with its traceback; recipes and pipes run as
processes. README.md's "Bad input" table lists these cases.
"""
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import proc_testing
from frugal.bin.main import main as frugal_main

TINY_TRAIN = """model:
  preset: tdnnf-small
  hidden_dim: 32
  bottleneck_dim: 16
  prefinal_bottleneck_dim: 16
train:
  num_epochs: 1
  max_duration: 20.0
  num_buckets: 2
  lr: 0.003
  warmup_steps: 1
  device: cpu
"""


def ok(*argv):
    assert frugal_main([str(a) for a in argv]) == 0, argv


@pytest.fixture(scope="module")
def yn(tmp_path_factory, yesno_dir):
    """yesno with 6 training and 4 test cuts: manifests, lang, features, den graph, trigram
    HCLG and a one-epoch model; plus a directory of bad files."""
    d = tmp_path_factory.mktemp("bad_inputs")
    ok("prepare-data", "yesno", "--corpus-dir", yesno_dir, "--output-dir", d / "man", "--lexicon-dir", d / "local")
    for part, n in (("train", 6), ("test", 4)):  # small parts: a few seconds for everything
        lines = gzip.open(d / f"man/yesno_cuts_{part}.jsonl.gz", "rt").read().splitlines()[:n]
        with gzip.open(d / f"man/{part}.jsonl.gz", "wt") as f:
            f.write("\n".join(lines) + "\n")
        ok("compute-fbank", "--cuts-in", d / f"man/{part}.jsonl.gz", "--cuts-out", d / f"fbank/{part}.jsonl.gz",
           "--storage-dir", d / f"fbank/feats_{part}")
    ok("prepare-lang", "--lexicon", d / "local/lexicon.txt", "--output-dir", d / "lang", "--sil-phone", "SIL")
    ok("make-den-graph", "--lang", d / "lang", "--cuts", d / "man/train.jsonl.gz", "--output", d / "den.pt")
    ok("cuts-to-text", "--cuts", d / "man/train.jsonl.gz", "--output", d / "text")
    ok("make-word-lm", "--text", d / "text", "--order", "3", "--output", d / "lm.arpa")
    ok("compile-graph", "--lang", d / "lang", "--arpa", d / "lm.arpa", "--topo", "chain", "--den-graph", d / "den.pt",
       "--output", d / "graph/HCLG.fst")
    (d / "train.yaml").write_text(TINY_TRAIN)
    ok("train", "--train-config", d / "train.yaml", "--train-cuts", d / "fbank/train.jsonl.gz", "--lang", d / "lang",
       "--den-graph", d / "den.pt", "--exp-dir", d / "exp", "--num-threads", "1")
    make_bad_files(d, yesno_dir)
    return d


def make_bad_files(d: Path, yesno_dir: Path) -> None:
    b = d / "bad"
    b.mkdir()
    good = gzip.open(d / "man/test.jsonl.gz", "rt").read()
    (b / "empty.jsonl.gz").write_bytes(b"")
    with gzip.open(b / "no_cuts.jsonl.gz", "wt") as f:
        f.write("")
    with gzip.open(b / "cut_line.jsonl.gz", "wt") as f:  # a partial last line, as from a killed writer
        f.write(good[: len(good.splitlines()[0]) + 200])
    (b / "cut_gzip.jsonl.gz").write_bytes(gzip.compress(good.encode())[:300])  # the gzip stream cut short
    (b / "recordings.jsonl.gz").write_bytes((d / "man/yesno_recordings_test.jsonl.gz").read_bytes())
    (b / "cuts.txt").write_text(good)

    # Audio: one file truncated after its manifest was made, one missing, one at another rate.
    wavs = b / "wavs"
    wavs.mkdir()
    for src in sorted(yesno_dir.glob("*.wav")):
        shutil.copy(src, wavs / src.name)
    first, second = [json.loads(line) for line in good.splitlines()[:2]]
    for cut in (first, second):
        source = cut["recording"]["sources"][0]
        source["source"] = str(wavs / Path(source["source"]).name)
    truncated = Path(first["recording"]["sources"][0]["source"])
    truncated.write_bytes(truncated.read_bytes()[:3000])
    with gzip.open(b / "truncated_wav.jsonl.gz", "wt") as f:
        f.write(json.dumps(first) + "\n")
    second["recording"]["sources"][0]["source"] = str(wavs / "gone.wav")
    with gzip.open(b / "missing_wav.jsonl.gz", "wt") as f:
        f.write(json.dumps(second) + "\n")
    mixed = b / "mixed"
    shutil.copytree(yesno_dir, mixed, ignore=shutil.ignore_patterns("*.tar.gz", "*.md"))
    odd = sorted(mixed.glob("*.wav"))[0]
    x, rate = sf.read(odd)
    sf.write(odd, np.repeat(x, 2), 2 * rate)
    rates = gzip.open(d / "man/test.jsonl.gz", "rt").read().splitlines()[:2]
    c = json.loads(rates[1])
    c["recording"]["sampling_rate"] = 16000
    c["recording"]["num_samples"] *= 2
    with gzip.open(b / "mixed_rates.jsonl.gz", "wt") as f:
        f.write(rates[0] + "\n" + json.dumps(c) + "\n")

    # Features: a relative path read from elsewhere, and an archive cut short.
    feats = gzip.open(d / "fbank/test.jsonl.gz", "rt").read()
    (b / "feats").mkdir()
    archive = next((d / "fbank/feats_test").iterdir())
    (b / "feats" / archive.name).write_bytes(archive.read_bytes()[:2000])
    with gzip.open(b / "short_feats.jsonl.gz", "wt") as f:
        f.write(feats.replace(str(archive), str(b / "feats" / archive.name)))
    with gzip.open(b / "relative_feats.jsonl.gz", "wt") as f:
        f.write(feats.replace(str(d / "fbank"), "data/fbank"))

    # Kaldi data directories.
    wav = sorted(yesno_dir.glob("*.wav"))[:3]
    for name, text in (("kaldi_empty_text", ""), ("kaldi_missing_text", "".join(f"{w.stem} YES\n" for w in wav[:2])),
                       ("kaldi_extra_text", "".join(f"{w.stem} YES\n" for w in wav) + "ghost NO\n")):
        k = b / name
        k.mkdir()
        (k / "wav.scp").write_text("".join(f"{w.stem} {w}\n" for w in wav))
        (k / "utt2spk").write_text("".join(f"{w.stem} {w.stem}\n" for w in wav))
        (k / "text").write_text(text)
    (b / "kaldi_no_wav_scp").mkdir()

    # ARPA files.
    arpa = (d / "lm.arpa").read_text()
    (b / "truncated.arpa").write_text(arpa[: len(arpa) // 2])
    lines = arpa.splitlines()
    first_gram = lines.index("\\1-grams:") + 1
    (b / "nonnumeric.arpa").write_text("\n".join(lines[:first_gram] + ["abc\t" + lines[first_gram].split("\t", 1)[1]]
                                                 + lines[first_gram + 1:]) + "\n")
    (b / "garbage.arpa").write_text("garbage\nmore garbage\n")
    count = next(line for line in lines if line.startswith("ngram 1="))
    (b / "counts.arpa").write_text(arpa.replace(count, "ngram 1=" + str(int(count.split("=")[1]) + 5)))

    # Lexicons and texts.
    (b / "lexicon_no_phones.txt").write_text("YES Y\nNO\n")

    # Torch files: pickled objects, and a checkpoint cut short.
    torch.save({"model": {}, "hook": print}, b / "pickled.pt")
    (b / "truncated.pt").write_bytes((d / "exp/final.pt").read_bytes()[:5000])
    (b / "lattice_cut.pt").write_bytes((d / "exp/final.pt").read_bytes()[:100])
    (b / "lat.txt").write_text("utt1\n0 1 4 1.0,2.0,1_1\n0 1 x\n")
    (b / "graph.fst").write_bytes((d / "graph/HCLG.fst").read_bytes()[:300])
    (b / "pickled.fst").write_bytes((b / "pickled.pt").read_bytes())

    # Artefacts that do not belong together: a graph of another HMM topology, a graph
    # without its metadata, a words.txt with one word changed.
    ok("compile-graph", "--lang", d / "lang", "--arpa", d / "lm.arpa", "--topo", "chain", "--hmm-states", "2",
       "--output", b / "graph2/HCLG.fst")
    (b / "bare").mkdir()
    shutil.copy(d / "graph/HCLG.fst", b / "bare/HCLG.fst")
    (b / "words.txt").write_text((d / "lang/words.txt").read_text().replace("YES", "YEP"))

    # Configs.
    (b / "lr_fast.yaml").write_text(TINY_TRAIN.replace("lr: 0.003", "lr: fast"))
    (b / "lr_exp.yaml").write_text(TINY_TRAIN.replace("lr: 0.003", "lr: 3e-3"))
    (b / "unknown_key.yaml").write_text(TINY_TRAIN.replace("lr: 0.003", "learning_rate: 0.003"))
    (b / "loss_type.yaml").write_text(TINY_TRAIN + "loss:\n  leaky_hmm_coefficient: lots\n")
    (b / "one_bucket.yaml").write_text(TINY_TRAIN.replace("num_buckets: 2", "num_buckets: 1"))
    (b / "bad_yaml.yaml").write_text("train:\n  lr: [0.1\n")
    (b / "fbank_typo.yaml").write_text("num_mel_bins: 23\ndithr: 1.0\n")


def decode_args(d, **over):
    args = {"--model": d / "exp/final.pt", "--graph": d / "graph/HCLG.fst", "--words": d / "lang/words.txt",
            "--cuts": d / "fbank/test.jsonl.gz", "--output-dir": d / "dec", "--nj": 1}
    args.update(over)
    return ["decode"] + [str(x) for kv in args.items() for x in kv]


def train_args(d, **over):
    args = {"--train-config": d / "train.yaml", "--train-cuts": d / "fbank/train.jsonl.gz", "--lang": d / "lang",
            "--den-graph": d / "den.pt", "--exp-dir": d / "bad/exp"}
    args.update(over)
    return ["train"] + [str(x) for kv in args.items() for x in kv]


def fbank_args(d, cuts):
    return ["compute-fbank", "--cuts-in", str(cuts), "--cuts-out", str(d / "bad/out.jsonl.gz"),
            "--storage-dir", str(d / "bad/out_feats")]


def graph_args(d, arpa):
    return ["compile-graph", "--lang", str(d / "lang"), "--arpa", str(arpa), "--topo", "chain",
            "--output", str(d / "bad/g/HCLG.fst")]


def kaldi_args(d, name):
    return ["import-kaldi-dir", "--kaldi-dir", str(d / "bad" / name), "--corpus", "x", "--part", "p",
            "--output-dir", str(d / "bad/kaldi_out")]


B = "{d}/bad"
# (case, argv from the set-up dir d, what the message must say; "{d}" is the set-up dir). The
# numbers in brackets are the defects of the issue that asked for this table.
CASES = [
    # Cut manifests [2, 3]
    ("empty manifest: compute-fbank", lambda d: fbank_args(d, d / "bad/empty.jsonl.gz"), f"{B}/empty.jsonl.gz: empty manifest"),
    ("empty manifest: decode", lambda d: decode_args(d, **{"--cuts": d / "bad/no_cuts.jsonl.gz"}), f"{B}/no_cuts.jsonl.gz: empty manifest"),
    ("empty manifest: train", lambda d: train_args(d, **{"--train-cuts": d / "bad/no_cuts.jsonl.gz"}), f"{B}/no_cuts.jsonl.gz: empty manifest"),
    ("empty manifest: make-den-graph", lambda d: ["make-den-graph", "--lang", f"{d}/lang", "--cuts", f"{d}/bad/empty.jsonl.gz", "--output", f"{d}/bad/den.pt"], f"{B}/empty.jsonl.gz: empty manifest"),
    ("empty manifest: cuts-to-text", lambda d: ["cuts-to-text", "--cuts", f"{d}/bad/no_cuts.jsonl.gz", "--output", f"{d}/bad/t"], f"{B}/no_cuts.jsonl.gz: empty manifest"),
    ("partial last line of a manifest: decode", lambda d: decode_args(d, **{"--cuts": d / "bad/cut_line.jsonl.gz"}), f"{B}/cut_line.jsonl.gz:2: not a lhotse manifest line"),
    ("gzip stream cut short: decode", lambda d: decode_args(d, **{"--cuts": d / "bad/cut_gzip.jsonl.gz"}), f"{B}/cut_gzip.jsonl.gz: not a readable lhotse manifest"),
    ("recordings given as cuts", lambda d: decode_args(d, **{"--cuts": d / "bad/recordings.jsonl.gz"}), f"{B}/recordings.jsonl.gz: a manifest of Recording, not a CutSet"),
    ("manifest not .jsonl(.gz)", lambda d: decode_args(d, **{"--cuts": d / "bad/cuts.txt"}), f"{B}/cuts.txt: a cut manifest is a .jsonl"),
    ("missing manifest", lambda d: decode_args(d, **{"--cuts": d / "bad/none.jsonl.gz"}), f"{B}/none.jsonl.gz: cut manifest not found"),
    # Kaldi data directories [4]
    ("Kaldi dir: empty text", lambda d: kaldi_args(d, "kaldi_empty_text"), f"{B}/kaldi_empty_text/text: empty"),
    ("Kaldi dir: utterance without text", lambda d: kaldi_args(d, "kaldi_missing_text"), f"{B}/kaldi_missing_text/utt2spk:3: utterance"),
    ("Kaldi dir: text without audio", lambda d: kaldi_args(d, "kaldi_extra_text"), f"{B}/kaldi_extra_text/text:4: utterance ghost has no audio"),
    ("Kaldi dir: no wav.scp", lambda d: kaldi_args(d, "kaldi_no_wav_scp"), f"{B}/kaldi_no_wav_scp/wav.scp: missing"),
    # Audio and features [5, 9]
    ("wav truncated after its manifest was made", lambda d: fbank_args(d, d / "bad/truncated_wav.jsonl.gz"), f"{B}/truncated_wav.jsonl.gz: cut "),
    ("missing wav", lambda d: fbank_args(d, d / "bad/missing_wav.jsonl.gz"), f"no such audio file {B}/wavs/gone.wav"),
    ("mixed sampling rates: prepare-data yesno", lambda d: ["prepare-data", "yesno", "--corpus-dir", f"{d}/bad/mixed", "--output-dir", f"{d}/bad/mm"], "recordings have several sampling rates (29 at 8000 Hz, 1 at 16000 Hz)"),
    ("mixed sampling rates: compute-fbank", lambda d: fbank_args(d, d / "bad/mixed_rates.jsonl.gz"), f"{B}/mixed_rates.jsonl.gz: recordings have several sampling rates"),
    ("feature file path relative to another directory", lambda d: decode_args(d, **{"--cuts": d / "bad/relative_feats.jsonl.gz"}), "feature file data/fbank/feats_test/"),
    ("feature archive cut short", lambda d: decode_args(d, **{"--cuts": d / "bad/short_feats.jsonl.gz"}), "cannot read its features from"),
    # ARPA [6]
    ("ARPA cut short", lambda d: graph_args(d, d / "bad/truncated.arpa"), f"{B}/truncated.arpa: unexpected end of file"),
    ("ARPA non-numeric log-prob", lambda d: graph_args(d, d / "bad/nonnumeric.arpa"), "log10 prob 'abc' is not a number"),
    ("ARPA garbage", lambda d: graph_args(d, d / "bad/garbage.arpa"), f"{B}/garbage.arpa: no \\data\\ section"),
    ("ARPA wrong \\data\\ counts", lambda d: graph_args(d, d / "bad/counts.arpa"), "-grams but"),
    ("ARPA wrong counts: lm-perplexity", lambda d: ["lm-perplexity", "--arpa", f"{d}/bad/counts.arpa", "--text", f"{d}/text"], "-grams but"),
    # Train configs [10, 11]
    ("train YAML: wrong type (lr: fast)", lambda d: train_args(d, **{"--train-config": d / "bad/lr_fast.yaml"}), "training option lr must be a number (got 'fast')"),
    ("train YAML: 3e-3 read as a string", lambda d: train_args(d, **{"--train-config": d / "bad/lr_exp.yaml"}), "YAML reads 3e-3 as a string"),
    ("train YAML: unknown key", lambda d: train_args(d, **{"--train-config": d / "bad/unknown_key.yaml"}), "unknown training option(s): learning_rate"),
    ("train YAML: loss option of the wrong type", lambda d: train_args(d, **{"--train-config": d / "bad/loss_type.yaml"}), "loss option leaky_hmm_coefficient must be a number (got 'lots')"),
    ("train YAML: one bucket", lambda d: train_args(d, **{"--train-config": d / "bad/one_bucket.yaml"}), "num_buckets must be at least 2"),
    ("train YAML: not YAML", lambda d: train_args(d, **{"--train-config": d / "bad/bad_yaml.yaml"}), f"{B}/bad_yaml.yaml:3: not valid YAML"),
    ("tool --config: typo'd key", lambda d: ["compute-fbank", "--config", f"{d}/bad/fbank_typo.yaml"], f"{B}/fbank_typo.yaml:2: unknown option 'dithr'"),
    ("tool: unknown option", lambda d: fbank_args(d, d / "man/test.jsonl.gz") + ["--dithr", "1"], "unrecognized arguments: --dithr"),
    # Torch files [11]
    ("pickled objects as a lattice", lambda d: ["lattice", "show", f"{d}/bad/pickled.pt"], f"{B}/pickled.pt: not a complete frugal binary lattice file (pickled objects"),
    ("pickled objects as a den graph", lambda d: train_args(d, **{"--den-graph": d / "bad/pickled.pt"}), f"{B}/pickled.pt: not a saved denominator graph"),
    ("pickled objects as a checkpoint", lambda d: decode_args(d, **{"--model": d / "bad/pickled.pt"}), f"{B}/pickled.pt: not a frugal checkpoint (pickled objects"),
    ("checkpoint cut short", lambda d: decode_args(d, **{"--model": d / "bad/truncated.pt"}), f"{B}/truncated.pt: not a frugal checkpoint (unreadable, cut short or foreign"),
    ("binary lattice cut short", lambda d: ["lattice", "show", f"{d}/bad/lattice_cut.pt"], f"{B}/lattice_cut.pt: not a complete frugal binary lattice"),
    ("text lattice with a bad arc line", lambda d: ["lattice", "show", f"{d}/bad/lat.txt"], f"{B}/lat.txt:3:"),
    ("graph FST cut short", lambda d: decode_args(d, **{"--graph": d / "bad/graph.fst"}) + ["--skip-checks"], f"{B}/graph.fst: not a readable OpenFst StdVectorFst"),
    ("a pickle as a graph FST", lambda d: decode_args(d, **{"--graph": d / "bad/pickled.fst"}) + ["--skip-checks"], f"{B}/pickled.fst: not an OpenFst binary FST"),
    # Lexicons, texts, options
    ("lexicon line without phones", lambda d: ["prepare-lang", "--lexicon", f"{d}/bad/lexicon_no_phones.txt", "--output-dir", f"{d}/bad/lang"], f"{B}/lexicon_no_phones.txt:2"),
    ("graph of another HMM topology than the model's den graph", lambda d: decode_args(d, **{"--graph": d / "bad/graph2/HCLG.fst"}), "has hmm_states 2 but model"),
    ("graph without its metadata", lambda d: decode_args(d, **{"--graph": d / "bad/bare/HCLG.fst"}), f"graph {B}/bare/HCLG.fst has no metadata"),
    ("words.txt of another lang", lambda d: decode_args(d, **{"--words": d / "bad/words.txt"}), f"words file {B}/words.txt is not the words.txt graph"),
    ("decode --nj 0", lambda d: decode_args(d, **{"--nj": 0}), "--nj 0: must be at least 1"),
    ("decode negative beam", lambda d: decode_args(d, **{"--beam": -1}), "--beam -1"),
    ("compute-fbank --nj 0", lambda d: fbank_args(d, d / "man/test.jsonl.gz") + ["--nj", "0"], "--nj 0: must be at least 1"),
    ("missing words.txt", lambda d: decode_args(d, **{"--words": d / "bad/none.txt"}), f"{B}/none.txt"),
    ("missing model", lambda d: decode_args(d, **{"--model": d / "bad/none.pt"}), f"{B}/none.pt: no such file"),
]


@pytest.mark.parametrize("case,argv,expected", CASES, ids=[c[0] for c in CASES])
def test_one_line_naming_the_culprit(yn, capfd, case, argv, expected):
    args = argv(yn)
    rc = frugal_main(args)
    out, err = capfd.readouterr()
    lines = [line for line in err.splitlines() if line.strip() and "WARNING" not in line and "it/s]" not in line
             and not line.startswith(("decode:", "fbank:"))]
    tool = args[0]
    assert rc in (1, 2), (rc, err)
    assert len(lines) == 1 and lines[0].startswith(f"frugal {tool}: error: "), err
    assert expected.format(d=yn) in lines[0], lines[0]
    assert "Traceback" not in err


def test_frugal_help_lists_every_lattice_command(capsys):
    assert frugal_main(["--help"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("lattice "))
    for sub in ("show", "copy", "best-path", "nbest", "oracle", "to-ctm", "lm-rescore", "determinize"):
        assert sub in line, sub


def test_a_reader_that_goes_away_ends_the_tool_quietly(yn):
    """`frugal show-alignments ... | head`: no BrokenPipeError traceback, SIGPIPE's status."""
    frugal = str(Path(sys.executable).parent / "frugal")
    lattices = yn / "bad/many_lattices.txt"
    lattices.write_text("".join(f"u{i}\n0 1 4 1.5,2.5,1_1_1\n1\n\n" for i in range(2000)))
    proc = subprocess.Popen([frugal, "lattice", "show", str(lattices)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # gone before the tool writes, as head is after its lines
    err = proc.stderr.read().decode()
    assert proc.wait() == 141 and "Traceback" not in err and "BrokenPipe" not in err, err


# Recipes [1, 11, 13]: option types, stages that do not exist, a tool's error on stderr.
RECIPE_CASES = [
    ("yesno", ["--stage", "abc"], "option --stage takes an integer, not 'abc'"),
    ("yesno", ["--stop-stage", "abc"], "option --stop-stage takes an integer, not 'abc'"),
    ("yesno", ["--nj", "1.5"], "option --nj takes an integer, not '1.5'"),
    ("yesno", ["--beam", "wide"], "option --beam takes a number, not 'wide'"),
    ("yesno", ["--force", "yes"], "option --force takes true or false, not 'yes'"),
    ("yesno", ["--stage", "11"], "--stage 11: the recipe's last stage is 10"),
    ("yesno", ["--stage", "5", "--stop-stage", "3"], "--stop-stage 3 is before --stage 5"),
    ("yesno", ["--no-such-option", "1"], "unknown option --no-such-option"),
    ("yesno", ["5"], "unexpected argument '5'"),
    ("wsj", ["--stage", "4"], "--stage 4: the recipe's last stage is 3"),
]


@pytest.fixture(scope="module")
def recipes(tmp_path_factory, repo_dir):
    root = tmp_path_factory.mktemp("recipes")
    for name in ("path.sh", "run.sh"):
        shutil.copy(repo_dir / name, root / name)
    for name in ("tools", "steps", ".venv"):
        (root / name).symlink_to(repo_dir / name)
    shutil.copytree(repo_dir / "egs", root / "egs", ignore=shutil.ignore_patterns("data", "exp", "corpus"))
    return root


@pytest.mark.parametrize("recipe,args,expected", RECIPE_CASES, ids=[" ".join([r, *a]) for r, a, _ in RECIPE_CASES])
def test_recipe_options(recipes, recipe, args, expected):
    r = proc_testing.run([str(recipes / "egs" / recipe / "run.sh"), *args])
    assert r.returncode == 1 and expected in r.stderr and len(r.stderr.strip().splitlines()) == 1, r
    assert "stage" not in r.stdout  # nothing ran


def test_recipe_config_file_types(recipes, tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("nj=2\nlm_order=two\n")
    r = proc_testing.run([str(recipes / "egs/yesno/run.sh"), "--config", str(conf)])
    assert r.returncode == 1 and f"{conf}:2: option lm_order takes an integer, not 'two'" in r.stderr, r


def test_recipe_shows_the_tools_error_on_stderr(recipes, yesno_dir):
    """A failed step's error line reaches the terminal, not only its log (--nj 0 here)."""
    r = proc_testing.run([str(recipes / "egs/yesno/run.sh"), "--corpus-dir", str(yesno_dir), "--stop-stage", "3",
                          "--nj", "0"])
    assert r.returncode == 1, r
    lines = r.stderr.strip().splitlines()
    assert lines[-2].startswith("frugal compute-fbank: error: ") and "--nj 0: must be at least 1" in lines[-2], r.stderr
    assert "stage 3 (fbank features) FAILED; log: exp/log/stage3_fbank_" in lines[-1], r.stderr
