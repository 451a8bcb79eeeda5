"""Combine lattices of the same utterances (dropout decodings, LM rescorings) into one lattice file.

Each input is pruned with --beam and determinised, its cost is removed (--normalize: "best"
gives each input's best path cost 0, "total" removes its log-sum as Kaldi's lattice-combine,
"none" keeps it), the inputs are united, and the union is pruned and determinised (unless
--no-determinize): one path per word sequence with its best weight and alignment. An
utterance missing from some inputs is combined from the others (with a warning); the
utterances are those of the first input. frugal make-supervision does this for whole
dropout decodes. See frugal.semisup.lattices.

  frugal combine-lattices --inputs lat.1.pt lm.1.1.pt lm.2.1.pt --output sup.1.pt --beam 4
"""
from __future__ import annotations

from frugal.semisup.lattices import DEFAULT_BEAM, NORMALIZE_MODES
from frugal.semisup.supervision import combine_lattice_files


def add_arguments(p) -> None:
    p.add_argument("--inputs", nargs="+", required=True, help="lattice files")
    p.add_argument("--output", required=True, help="output lattice file")
    p.add_argument("--beam", type=float, default=DEFAULT_BEAM,
                   help="pruning beam for each input and the union (default: %(default)s; <= 0: no pruning)")
    p.add_argument("--normalize", choices=NORMALIZE_MODES, default="best", help="default: %(default)s")
    p.add_argument("--determinize", action="store_true", default=True, help="determinise the union (default)")
    p.add_argument("--no-determinize", dest="determinize", action="store_false")
    p.add_argument("--acoustic-scale", type=float, default=1.0, help="default: %(default)s")
    p.add_argument("--lm-scale", type=float, default=1.0, help="graph-cost scale (default: %(default)s)")


def run(a) -> None:
    combine_lattice_files(a.inputs, a.output, a.beam if a.beam > 0 else None, a.normalize, a.determinize,
                          a.lm_scale, a.acoustic_scale)
