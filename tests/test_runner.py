"""The recipe runner: parse_options.sh, stage_lib.sh, run.sh, and the frugal CLI dispatcher."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from frugal.bin import main as cli
from frugal.errors import FrugalError
from frugal.fileio import atomic_path, atomic_write_text


def _script(tmp_path, repo_dir, body, stage_lib=True):
    script = tmp_path / "recipe.sh"
    script.write_text(textwrap.dedent(f"""\
        #!/usr/bin/env bash
        set -eu
        stage=0
        stop_stage=100   # last stage to run
        nj=2             # parallel jobs
        force=false      # redo finished stages
        lm_order=3
        help_message="Usage: recipe.sh [options]"
        . {repo_dir}/tools/parse_options.sh
        """) + (f". {repo_dir}/tools/stage_lib.sh\n" if stage_lib else "") + textwrap.dedent(body))
    script.chmod(0o755)
    return script


def _run(script, *args, cwd):
    return subprocess.run(["bash", str(script), *args], cwd=cwd, capture_output=True, text=True)


def test_parse_options_sets_declared_variables(tmp_path, repo_dir):
    # Without stage_lib.sh (a script with positional arguments): they are left in "$@".
    s = _script(tmp_path, repo_dir, 'echo "$stage $stop_stage $nj $force $lm_order $*"\n', stage_lib=False)
    r = _run(s, "--stage", "3", "--stop-stage=5", "--nj", "4", "--force", "--lm-order", "4", "a", "b",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "3 5 4 true 4 a b"
    r = _run(s, "--force", "false", cwd=tmp_path)
    assert r.stdout.split()[3] == "false"


def test_parse_options_rejects_unknown_and_lists_help(tmp_path, repo_dir):
    s = _script(tmp_path, repo_dir, "echo ran\n")
    r = _run(s, "--no-such-option", "1", cwd=tmp_path)
    assert r.returncode != 0 and "ran" not in r.stdout
    assert "unknown option --no-such-option" in r.stderr
    r = _run(s, "--nj", cwd=tmp_path)
    assert r.returncode != 0 and "needs a value" in r.stderr
    r = _run(s, "--help", cwd=tmp_path)
    assert r.returncode == 0
    assert "Usage: recipe.sh" in r.stdout
    assert "--stop-stage" in r.stdout and "last stage to run" in r.stdout and "[100]" in r.stdout


def test_recipe_rejects_a_bad_boolean_and_leftover_words(tmp_path, repo_dir):
    """`--force yes` and a bare word used to end the options silently: the options after
    them (here --stop-stage) were dropped and the recipe ran with its defaults."""
    s = _script(tmp_path, repo_dir, 'echo "ran $stop_stage"\n')
    r = _run(s, "--force", "yes", "--stop-stage", "3", cwd=tmp_path)
    assert r.returncode != 0 and "ran" not in r.stdout
    assert "option --force takes true or false, not 'yes'" in r.stderr
    r = _run(s, "--force=yes", cwd=tmp_path)
    assert r.returncode != 0 and "option --force takes true or false, not 'yes'" in r.stderr
    r = _run(s, "5", "--stop-stage", "3", cwd=tmp_path)
    assert r.returncode != 0 and "ran" not in r.stdout
    assert "unexpected argument '5'" in r.stderr
    r = _run(s, "--force", "--stop-stage", "3", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "ran 3", r.stderr


def test_parse_options_config_file(tmp_path, repo_dir):
    s = _script(tmp_path, repo_dir, 'echo "$nj $lm_order"\n')
    (tmp_path / "ok.conf").write_text("# comment\nnj=8\n--lm-order=2\n")
    r = _run(s, "--config", "ok.conf", "--nj", "3", cwd=tmp_path)
    assert r.stdout.strip() == "3 2", r.stderr
    (tmp_path / "bad.conf").write_text("nj=8\nbogus=1\n")
    r = _run(s, "--config", "bad.conf", cwd=tmp_path)
    assert r.returncode != 0 and "bad.conf:2" in r.stderr


STAGES = """\
if stage_begin 1 "first" out/.done.first; then
  stage_run first bash -c 'echo one >> out/count1'
  stage_end
fi
if stage_begin 2 "second" out/.done.second; then
  stage_run second bash -c '[ -z "${FAIL:-}" ] && echo two >> out/count2'
  stage_end
fi
stage_not_implemented 2
"""


def test_stages_skip_done_force_redo_and_failure(tmp_path, repo_dir):
    (tmp_path / "out").mkdir()
    s = _script(tmp_path, repo_dir, STAGES)
    r = _run(s, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "not implemented yet" in r.stdout
    assert (tmp_path / "exp/log/stage1_first.log").is_file()
    r = _run(s, cwd=tmp_path)
    assert "done already" in r.stdout
    assert (tmp_path / "out/count1").read_text() == "one\n"
    r = _run(s, "--stage", "2", "--force", cwd=tmp_path)
    assert (tmp_path / "out/count1").read_text() == "one\n"
    assert (tmp_path / "out/count2").read_text() == "two\ntwo\n"
    # A failing stage stops the recipe, names its log and leaves no done-marker.
    env = dict(os.environ, FAIL="1")
    r = subprocess.run(["bash", str(s), "--stage", "2", "--force"], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "stage 2 (second) FAILED; log: exp/log/stage2_second.log" in r.stderr
    assert not (tmp_path / "out/.done.second").exists()
    r = _run(s, "--stage", "2", "--stop-stage", "2", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "out/.done.second").exists()


def test_top_run_sh_unknown_recipe(repo_dir):
    r = subprocess.run([str(repo_dir / "run.sh"), "--recipe", "nonesuch"], capture_output=True, text=True)
    assert r.returncode != 0 and "no recipe 'nonesuch'" in r.stderr


def test_cli_lists_tools_and_rejects_unknown(capsys):
    assert cli.main(["--help"]) == 0
    assert "usage: frugal <tool>" in capsys.readouterr().out
    assert cli.main(["no-such-tool"]) == 2
    assert "unknown tool 'no-such-tool'" in capsys.readouterr().err


def test_cli_config_expansion(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("num_mel_bins: 40\nspeed_perturb: true\nvolume_perturb: false\nparts: [a, b]\n")
    assert cli.expand_config(["--config", str(conf), "--nj", "2"]) == [
        "--num-mel-bins", "40", "--speed-perturb", "--parts", "a", "b", "--nj", "2"]
    # In place: a sub-command keeps its position, later options override the file's.
    assert cli.expand_config(["show", "--config", str(conf), "--num-mel-bins", "80"]) == [
        "show", "--num-mel-bins", "40", "--speed-perturb", "--parts", "a", "b", "--num-mel-bins", "80"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\nb: [unclosed\n")
    with pytest.raises(FrugalError, match=r"bad.yaml:\d+: not valid YAML"):
        cli.expand_config(["--config", str(bad)])
    with pytest.raises(FrugalError, match="cannot read config"):
        cli.expand_config(["--config", str(tmp_path / "missing.yaml")])


def test_atomic_path_keeps_old_on_error(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise ValueError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    d = tmp_path / "dir"
    for content in ("1", "2"):
        with atomic_path(d, is_dir=True) as tmp:
            (tmp / "f").write_text(content)
    assert (d / "f").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "dir"]
    # Writers that pick the format from the suffix see the target's suffix.
    with atomic_path(tmp_path / "m.jsonl.gz") as tmp:
        assert tmp.name.endswith(".m.jsonl.gz")
        tmp.write_text("x")


def test_atomic_path_survives_kill_9(tmp_path):
    """A writer killed mid-write leaves only a temporary; the target stays absent or old."""
    target = tmp_path / "out.bin"
    code = textwrap.dedent(f"""\
        import sys, time
        from frugal.fileio import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            with open(tmp, "w") as f:
                f.write("partial"); f.flush()
                print("writing", flush=True)
                time.sleep(60)
        """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "writing"
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not target.exists()
    assert any(x.name.startswith(".tmp.") and x.name.endswith(".out.bin") for x in tmp_path.iterdir())
    atomic_write_text(target, "complete")  # the re-run cleans the stale temporary
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.bin"]
    assert target.read_text() == "complete"
