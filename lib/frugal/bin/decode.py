"""Decode cuts with an acoustic model and a decoding graph into word lattices and 1-best hypotheses.

Kaldi's steps/nnet3/decode.sh: the cuts are split into --nj jobs (processes, one torch
thread each); job J writes OUTPUT_DIR/lat.J.pt (word-determinised lattices; with
--text-lattices also lat.J.txt in Kaldi's text form), hyp.J.txt (1-best, Kaldi text) and
log/decode.J.log; OUTPUT_DIR/.done is written last. Jobs already done with the same cuts,
options and files are skipped, so re-running the same command after a kill finishes the work.

A chain (LF-MMI) model's output is used as log-likelihoods with --acoustic-scale 1.0 over
HCLG; a CTC model's (the checkpoint says which) goes through a log-softmax, over HLG.
Lattice acoustic costs are multiplied by --post-decode-acwt (Kaldi chain: 10), so that
frugal score-lattices' LM-weight sweep (7..17) is centred on the decoding scale.

Before decoding, the model, the graph and --words are compared by content: the den graph
fingerprint in the checkpoint (topology, context, HMM states, pdf count, pdf map hash)
with the one compile-graph wrote into GRAPH.json, and --words with the graph's words.txt
hash. A mismatch, or a graph without GRAPH.json, is refused unless --skip-checks.

Monte-Carlo dropout (thesis ch. 3, Vyas et al. 2019): with --dropout-samples N each
utterance is also decoded N times with the model's dropout active at --dropout-proportion
(continuous masks in [1 - 2p, 1 + 2p], drawn anew for each pass); pass k writes the same
per-job files into OUTPUT_DIR/dropout/k/, a decode directory of its own, and
OUTPUT_DIR/dropout.json records N, the proportion and the seeds. The masks of (pass k,
utterance) depend only on (--dropout-seed, k, utterance id), so the samples do not change
with --nj or --batch-size. frugal uncertainty-report turns such a directory into word
confidences, WER estimates and error localisation.

--attention KIND (with --clusters, --topk) swaps a transformer's self-attention after loading
(thesis ch. 5: a softmax-trained model decoded with clustered or improved clustered
attention, Table 5.2); decode.json records it and it is part of every job's fingerprint.
"""
from __future__ import annotations

from frugal.decode.driver import DecodeOptions, decode
from frugal.models.attention import KINDS as ATTENTION_KINDS

D = DecodeOptions


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="checkpoint, e.g. exp/tdnnf/final.pt")
    p.add_argument("--graph", required=True, help="HCLG.fst / HLG.fst of frugal compile-graph")
    p.add_argument("--words", required=True, help="words.txt of the lang directory the graph was built from")
    p.add_argument("--cuts", required=True, help="lhotse cuts with features (frugal compute-fbank)")
    p.add_argument("--output-dir", required=True, help="decode directory, e.g. exp/tdnnf/decode_tg_test")
    p.add_argument("--nj", type=int, default=1, help="parallel jobs (default: %(default)s)")
    p.add_argument("--beam", type=float, default=D.beam, help="decoding beam (default: %(default)s)")
    p.add_argument("--max-active", type=int, default=D.max_active,
                   help="most tokens kept per frame and utterance (default: %(default)s)")
    p.add_argument("--lattice-beam", type=float, default=D.lattice_beam,
                   help="lattice pruning beam (default: %(default)s)")
    p.add_argument("--acoustic-scale", type=float, default=D.acoustic_scale,
                   help="scale of the log-likelihoods in the search (default: %(default)s, chain)")
    p.add_argument("--post-decode-acwt", type=float, default=D.post_decode_acwt,
                   help="factor on the lattices' acoustic costs when written (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=0,
                   help="utterances decoded together, counting each dropout pass as one "
                        "(default 0: up to 8 on CPU, 32 on GPU, fewer for large graphs)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--text-lattices", action="store_true", help="also write lat.J.txt (Kaldi text)")
    p.add_argument("--dropout-samples", type=int, default=0,
                   help="N: also decode N times with dropout active, into OUTPUT_DIR/dropout/1..N "
                        "(default: %(default)s, no dropout)")
    p.add_argument("--dropout-proportion", type=float, default=D.dropout_proportion,
                   help="dropout proportion of the samples (default: %(default)s)")
    p.add_argument("--dropout-seed", type=int, default=0, help="seed of the dropout masks (default: %(default)s)")
    p.add_argument("--attention", default="", choices=("",) + ATTENTION_KINDS, metavar="KIND",
                   help="decode a transformer with another self-attention than it was trained with: "
                        + ", ".join(ATTENTION_KINDS) + " (default: the model's own)")
    p.add_argument("--clusters", type=int, default=None,
                   help="with --attention (improved-)clustered: clusters of queries (default: the model config's, 100)")
    p.add_argument("--topk", type=int, default=None,
                   help="with --attention improved-clustered or topk: keys recomputed exactly per query "
                        "(default: the model config's, 32)")
    p.add_argument("--skip-checks", action="store_true",
                   help="decode even with a graph that has no GRAPH.json, or whose fingerprint or words.txt hash "
                        "disagrees with the model or --words (warnings instead of errors)")


def run(args) -> None:
    options = DecodeOptions(**{name: getattr(args, name) for name in DecodeOptions.__dataclass_fields__})
    decode(args.cuts, args.output_dir, options, nj=args.nj)
