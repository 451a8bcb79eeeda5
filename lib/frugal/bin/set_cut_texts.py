"""Write a cut manifest whose transcripts are given texts (e.g. the 1-best hypotheses of a decoding).

Semi-supervised LF-MMI estimates its den graph's phone LM from the supervised transcripts
and the unsupervised cuts' 1-best hypotheses (Kaldi's chain semi-supervised recipe):

  frugal set-cut-texts --cuts data/fbank/cuts_unsup.jsonl.gz --text exp/seed/decode_unsup \\
      --output data/fbank/cuts_unsup_1best.jsonl.gz
  frugal make-den-graph --lang data/lang --output exp/chain_semisup/den.pt \\
      --cuts data/fbank/cuts_sup.jsonl.gz:1.5 data/fbank/cuts_unsup_1best.jsonl.gz:1.0

--text is Kaldi text (``<cut-id> word ...`` a line) in files, or decode directories (their
hyp.J.txt). Every cut of --cuts needs exactly one text, and every text line must name a cut
of --cuts. Each output cut has one supervision over the whole cut carrying the text (the
first old supervision's speaker and language are kept). The output serves frugal train
--train-cuts too (combined with the supervised cuts, e.g. by ``lhotse combine``): a cut
with a lattice in --supervision-lattices is trained on the lattice, one without it on this
text, never on the transcript it had before.
"""
from __future__ import annotations

from frugal.semisup.supervision import set_cut_texts


def add_arguments(p) -> None:
    p.add_argument("--cuts", required=True, help="lhotse cut manifest (.jsonl.gz)")
    p.add_argument("--text", nargs="+", required=True, metavar="PATH",
                   help="Kaldi text files, or decode directories (their hyp.*.txt)")
    p.add_argument("--output", required=True, help="the new cut manifest (.jsonl.gz)")


def run(a) -> None:
    set_cut_texts(a.cuts, a.text, a.output)
