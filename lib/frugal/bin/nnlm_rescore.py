"""Rescore lattices N times with a neural LM under Monte-Carlo dropout (n-best rescoring, LM uncertainty).

For each utterance, the K best word sequences of its lattice (--nbest) have their n-gram LM
cost (--old-lm, the ARPA LM of the decoding graph) replaced by the neural LM's cost of one
dropout sample: graph cost - old-lm-scale * n-gram cost + new-lm-scale * neural cost. Each
of the --samples samples gives one rescored (determinised) lattice file. Dropout masks are
seeded from --seed and the utterance id, so a run is reproducible. See
frugal.semisup.lattices.

Outputs: OUT_PREFIX.1 .. OUT_PREFIX.N (Kaldi text), or X.1.pt .. X.N.pt for OUT_PREFIX X.pt
(binary).

  frugal nnlm-rescore --lattices exp/decode_unsup/lat.1.pt --nnlm exp/nnlm/model.pt \\
      --old-lm data/lm/lm.arpa --words data/lang/words.txt --samples 4 --seed 1 --nbest 100 \\
      --output exp/lm_unc/lat.1.pt
"""
from __future__ import annotations

from frugal.errors import BadValue
from frugal.lattice.io import BINARY_SUFFIX
from frugal.semisup.lattices import NbestRescoreConfig
from frugal.semisup.supervision import rescore_lattice_file


def add_arguments(p) -> None:
    p.add_argument("--lattices", required=True, help="input lattice file (Kaldi text, or binary .pt)")
    p.add_argument("--nnlm", required=True, help="neural LM checkpoint (frugal train-nnlm)")
    p.add_argument("--old-lm", required=True, help="ARPA LM whose costs the lattices carry")
    p.add_argument("--words", required=True, help="words.txt of the lattices")
    p.add_argument("--samples", type=int, default=1, help="dropout samples N (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    p.add_argument("--nbest", type=int, default=100, help="paths rescored per lattice (default: %(default)s)")
    p.add_argument("--old-lm-scale", type=float, default=1.0, help="default: %(default)s")
    p.add_argument("--new-lm-scale", type=float, default=1.0, help="default: %(default)s")
    p.add_argument("--acoustic-scale", type=float, default=1.0, help="scale ranking the n-best list (default: %(default)s)")
    p.add_argument("--lm-scale", type=float, default=1.0,
                   help="graph-cost scale ranking the n-best list (default: %(default)s)")
    p.add_argument("--no-dropout", action="store_true", help="score with the deterministic LM (needs --samples 1)")
    p.add_argument("--device", default="cpu", help="device of the neural LM (default: %(default)s)")
    p.add_argument("--output", required=True, help="OUT_PREFIX of the N output files")


def run(a) -> None:
    if a.samples < 1:
        raise BadValue("samples", a.samples, "must be >= 1")
    stem, suffix = (a.output[:-len(BINARY_SUFFIX)], BINARY_SUFFIX) if a.output.endswith(BINARY_SUFFIX) else (a.output, "")
    outputs = [f"{stem}.{i}{suffix}" for i in range(1, a.samples + 1)]
    config = NbestRescoreConfig(a.nbest, a.old_lm_scale, a.new_lm_scale, a.lm_scale, a.acoustic_scale)
    rescore_lattice_file(a.lattices, outputs, a.nnlm, a.old_lm, a.words, a.seed, not a.no_dropout, a.device, config)
