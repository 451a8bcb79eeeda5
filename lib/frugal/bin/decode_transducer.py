"""Decode cuts with a transducer (greedy or modified beam search) into a hypothesis directory: hyp.txt, nbest.txt.

The model is a checkpoint of frugal train --objective transducer; --lang the units
directory (frugal prepare-units) it was trained with, whose tokens.txt must be the one its
checkpoint records. Modified beam search (icefall's: one symbol a frame, hypotheses of the
same tokens merged) keeps --beam hypotheses and writes the --nbest best of each utterance;
--lm adds an ARPA n-gram LM over the tokens by shallow fusion (score + --lm-scale x its
log-probs). With --dropout-samples N the cuts are also decoded N times with Monte-Carlo
dropout in the encoder, into OUTPUT_DIR/dropout/1..N. Score hyp.txt with frugal score.
"""
from __future__ import annotations

from frugal.decode.transducer import METHODS, TransducerDecodeOptions, decode

D = TransducerDecodeOptions


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, help="transducer checkpoint (final.pt)")
    p.add_argument("--lang", required=True, help="units lang directory (frugal prepare-units) of the model")
    p.add_argument("--cuts", required=True, help="lhotse cuts with features")
    p.add_argument("--output-dir", required=True, help="hypothesis directory to write")
    p.add_argument("--method", choices=METHODS, default=D.method, help="search (default: %(default)s)")
    p.add_argument("--max-sym-per-frame", type=int, default=D.max_sym_per_frame,
                   help="greedy search: symbols a frame at most (default: %(default)s)")
    p.add_argument("--beam", type=int, default=D.beam, help="modified beam search: hypotheses kept "
                                                            "(default: %(default)s)")
    p.add_argument("--nbest", type=int, default=D.nbest, help="hypotheses written an utterance (default: %(default)s)")
    p.add_argument("--lm", help="ARPA LM over the tokens for shallow fusion (modified beam search)")
    p.add_argument("--lm-scale", type=float, default=D.lm_scale, help="weight of --lm (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=D.batch_size, help="utterances a search (default: %(default)s)")
    p.add_argument("--device", default=D.device, help="cpu or cuda (default: %(default)s)")
    p.add_argument("--dropout-samples", type=int, default=D.dropout_samples,
                   help="N Monte-Carlo dropout decodings besides the dropout-off one (default: %(default)s)")
    p.add_argument("--dropout-proportion", type=float, default=D.dropout_proportion,
                   help="their dropout proportion (default: %(default)s)")
    p.add_argument("--dropout-seed", type=int, default=D.dropout_seed, help="their masks' seed (default: %(default)s)")
    p.add_argument("--skip-checks", action="store_true",
                   help="decode even where --lang's tokens.txt is not the one the model was trained with")


def run(a) -> None:
    decode(a.cuts, a.output_dir, TransducerDecodeOptions(
        model=a.model, lang=a.lang, method=a.method, max_sym_per_frame=a.max_sym_per_frame, beam=a.beam,
        nbest=a.nbest, lm=a.lm, lm_scale=a.lm_scale, batch_size=a.batch_size, device=a.device,
        dropout_samples=a.dropout_samples, dropout_proportion=a.dropout_proportion, dropout_seed=a.dropout_seed,
        skip_checks=a.skip_checks))
