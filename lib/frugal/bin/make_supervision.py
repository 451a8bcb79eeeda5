"""Make the supervision lattices of untranscribed cuts from their dropout decode: regular, am, lm or am_lm.

From a decode directory of frugal decode --dropout-samples N (the dropout-off lattice and
N dropout passes), one supervision lattice an utterance, combined (each input pruned with
--beam, its best path's cost removed, united, pruned and determinised):

  regular  the dropout-off lattice alone;
  am       the dropout-off lattice and the dropout lattices (--num-samples: the first K);
  lm       the dropout-off lattice and its rescorings by --nnlm with dropout on (N samples);
  am_lm    the dropout-off lattice and the dropout lattices, the i-th rescored with its own
           dropout sample of --nnlm.

With --nnlm (lm and am_lm need it) every lattice is rescored before the combination, as in
the thesis's table 3.5: the dropout-off lattice, and am's dropout lattices, by the LM with
its dropout off.

The output is a directory of lattices in the decode's jobs (lat.J.pt, .done), read by
frugal train --supervision-lattices and frugal supervision-report; jobs done with the
same inputs and options are skipped on a re-run. See frugal.semisup.supervision.

  frugal make-supervision --kind am_lm --decode-dir exp/seed/decode_3g_train_unsup \\
      --nnlm exp/semisup/nnlm/model.pt --old-lm data/local/lm_3g.arpa --words data/lang/words.txt \\
      --seed 1 --output-dir exp/semisup/sup_am_lm --nj 2
"""
from __future__ import annotations

from frugal.semisup.supervision import KINDS, SupervisionOptions, make_supervision


def add_arguments(p) -> None:
    p.add_argument("--kind", choices=KINDS, required=True)
    p.add_argument("--decode-dir", required=True, help="dropout decode of the untranscribed cuts")
    p.add_argument("--output-dir", required=True, help="the supervision lattices, e.g. exp/semisup/sup_am")
    p.add_argument("--num-samples", type=int, help="dropout passes (am, am_lm) or LM samples (lm) used "
                                                   "(default: the decode's N)")
    p.add_argument("--beam", type=float, default=SupervisionOptions.beam,
                   help="pruning beam of each input and the union (default: %(default)s; <= 0: none)")
    p.add_argument("--acoustic-scale", type=float,
                   help="scale of the lattices' acoustic costs (default: the decode's search scale, "
                        "acoustic_scale / post_decode_acwt)")
    p.add_argument("--nnlm", help="neural LM of frugal train-nnlm (needed by lm, am_lm; rescores every kind)")
    p.add_argument("--old-lm", help="the ARPA LM whose costs the lattices carry (with --nnlm)")
    p.add_argument("--words", help="words.txt of the lattices (with --nnlm)")
    p.add_argument("--seed", type=int, default=0, help="seed of the LM's dropout samples (default: %(default)s)")
    p.add_argument("--nbest", type=int, default=100, help="paths rescored per lattice (default: %(default)s)")
    p.add_argument("--nj", type=int, default=1, help="parallel jobs (default: %(default)s)")


def run(a) -> None:
    options = SupervisionOptions(a.kind, a.num_samples, a.beam if a.beam > 0 else None, a.acoustic_scale,
                                 nnlm=a.nnlm, old_lm=a.old_lm, words=a.words, seed=a.seed, nbest=a.nbest)
    make_supervision(a.decode_dir, a.output_dir, options, a.nj)
