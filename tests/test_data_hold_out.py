"""Held-out validation cuts: perturbed copies go with their utterance (frugal hold-out-cuts, --num-valid)."""
import random

from lhotse import load_manifest

from cuts_testing import write_text_cuts
from frugal.bin.main import main as frugal_main
from frugal.data.cuts import hold_out, load_cuts, source_id


def test_source_id():
    assert source_id("an251-fash-b_sp0.9") == "an251-fash-b"
    assert source_id("u1_sp1.1_vp0.5") == "u1"
    assert source_id("u_sp") == "u_sp" and source_id("spk_sp-3") == "spk_sp-3"


def test_perturbed_copies_never_train_when_held_out(tmp_path):
    utts = [f"u{i:02d}" for i in range(30)]
    refs = {f"{u}{suffix}": ["W"] for u in utts for suffix in ("", "_sp0.9", "_sp1.1")}
    cuts = load_cuts(write_text_cuts(tmp_path / "c.jsonl.gz", refs))
    rest, held = hold_out(cuts, 5, seed=3)
    held_ids = sorted(c.id for c in held)
    assert len(held_ids) == 5 and all(source_id(i) == i for i in held_ids)  # the unperturbed copies
    assert not {source_id(c.id) for c in rest} & set(held_ids)
    assert len(rest) == 3 * 25
    # Unperturbed cuts alone: the draw random.sample makes over the sorted ids (trainer's --num-valid).
    plain = load_cuts(write_text_cuts(tmp_path / "p.jsonl.gz", {u: ["W"] for u in utts}))
    assert sorted(c.id for c in hold_out(plain, 5, seed=3)[1]) == sorted(random.Random(3).sample(utts, 5))
    assert held_ids == sorted(c.id for c in hold_out(plain, 5, seed=3)[1])  # copies do not change the draw


def test_cli(tmp_path, capsys):
    cuts = write_text_cuts(tmp_path / "c.jsonl.gz", {f"u{i}": ["W"] for i in range(10)})
    assert frugal_main(["hold-out-cuts", "--cuts", str(cuts), "--num", "3", "--rest", str(tmp_path / "r.jsonl.gz"),
                        "--held", str(tmp_path / "h.jsonl.gz")]) == 0
    rest, held = load_manifest(tmp_path / "r.jsonl.gz"), load_manifest(tmp_path / "h.jsonl.gz")
    assert len(rest) == 7 and len(held) == 3 and not {c.id for c in rest} & {c.id for c in held}
    assert frugal_main(["hold-out-cuts", "--cuts", str(cuts), "--num", "10", "--rest", str(tmp_path / "x"),
                        "--held", str(tmp_path / "y")]) == 1
    assert "--num 10: must be in [1, 9] for 10 training utterances" in capsys.readouterr().err
