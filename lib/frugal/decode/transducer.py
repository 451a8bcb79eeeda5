"""Decoding transducers: greedy or modified beam search over cuts, into a hypothesis directory.

A transducer checkpoint (frugal train --objective transducer) is decoded without a graph:
`frugal.decode.transducer_search` runs on the encoder's output, batched over utterances
of similar lengths, and the token sequences become words through the units of the lang
directory the model was trained with (`frugal.lang.units.UnitCodec`; the checkpoint's
record of tokens.txt must match, by content). Modified beam search can add a token-level
n-gram LM by shallow fusion (``lm_scale`` x its log-probs). With Monte-Carlo dropout
(thesis ch. 3) each of ``dropout_samples`` passes decodes every utterance alone with
dropout on in the encoder, its masks seeded by (pass seed, utterance id) as in
`frugal.decode.dropout`, into dropout/K of the directory (`frugal.dirs.HypDir`).
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional

import torch
from tqdm import tqdm

from frugal.data.cmvn import require_cmvn
from frugal.data.cuts import load_cuts
from frugal.data.dataset import FeatureDataset
from frugal.decode.dropout import dropout_active, dropout_samples, pass_seeds, set_dropout
from frugal.decode.transducer_search import Hypothesis, NgramTokenLm, greedy_search, modified_beam_search
from frugal.dirs import HypDir, load_checkpoint
from frugal.errors import BadValue, FrugalError
from frugal.fileio import atomic_write_text
from frugal.graph.fingerprint import file_sha256
from frugal.lang.text import text_lines
from frugal.lang.units import UnitCodec
from frugal.lm.arpa import read_arpa
from frugal.logs import log_to_file
from frugal.models import model_from_checkpoint

log = logging.getLogger(__name__)

METHODS = ("greedy", "modified_beam_search")


@dataclass
class TransducerDecodeOptions:
    model: str                      # a transducer checkpoint (final.pt)
    lang: str                       # the units lang directory it was trained with
    method: str = "greedy"
    max_sym_per_frame: int = 1      # greedy: symbols a frame at most (icefall's default 1)
    beam: int = 4
    nbest: int = 1
    lm: Optional[str] = None        # ARPA LM over the tokens (shallow fusion; beam search only)
    lm_scale: float = 0.0
    batch_size: int = 20            # utterances a search call
    device: str = "cpu"
    dropout_samples: int = 0
    dropout_proportion: float = 0.1
    dropout_seed: int = 0
    skip_checks: bool = False       # decode even where the checkpoint's tokens.txt differs from --lang's

    def validate(self) -> None:
        if self.method not in METHODS:
            raise BadValue("method", self.method, f"must be one of {', '.join(METHODS)}")
        if self.beam < 1:
            raise BadValue("beam", self.beam, "must be at least 1")
        if self.max_sym_per_frame < 1:
            raise BadValue("max_sym_per_frame", self.max_sym_per_frame, "must be at least 1")
        if self.max_sym_per_frame > 1 and self.method != "greedy":
            raise BadValue("max_sym_per_frame", self.max_sym_per_frame, "is for greedy search (modified beam "
                                                                        "search emits one symbol a frame)")
        if not 1 <= self.nbest <= self.beam:
            raise BadValue("nbest", self.nbest, f"must be in [1, beam = {self.beam}]")
        if self.method == "greedy" and (self.nbest > 1 or self.lm):
            raise BadValue("method", self.method, "has one hypothesis and no LM: use modified_beam_search "
                                                  "for --nbest and --lm")
        if self.lm and self.lm_scale <= 0:
            raise BadValue("lm_scale", self.lm_scale, "must be positive with --lm")
        if not self.lm and self.lm_scale:
            raise BadValue("lm_scale", self.lm_scale, "needs --lm")
        if self.batch_size < 1:
            raise BadValue("batch_size", self.batch_size, "must be at least 1")
        if self.dropout_samples < 0:
            raise BadValue("dropout_samples", self.dropout_samples, "must be 0 or more")


def load_transducer(options: TransducerDecodeOptions, codec: UnitCodec) -> torch.nn.Module:
    """The checkpoint's transducer in eval mode, checked against the units of --lang."""
    state = load_checkpoint(options.model)
    if state.get("objective") != "transducer":
        raise BadValue("model", options.model, f"a {state.get('objective', 'lfmmi')} model, not a transducer "
                                               "(decode it with frugal decode and a graph)")
    model = model_from_checkpoint(state, options.model).eval().to(options.device)
    if model.vocab_size != codec.vocab_size:
        raise BadValue("lang", options.lang, f"has {codec.vocab_size} tokens (with blank) but model "
                                             f"{options.model} has {model.vocab_size} outputs")
    ours, theirs = file_sha256(codec.lang_dir / "tokens.txt"), state.get("tokens_sha256")
    if theirs is not None and ours != theirs:
        message = (f"its tokens.txt differs from the one model {options.model} was trained with "
                   f"({state.get('lang', '?')}/tokens.txt)")
        if not options.skip_checks:
            raise BadValue("lang", options.lang, message + " (--skip-checks decodes anyway)")
        log.warning("--lang %s: %s; decoding anyway (--skip-checks)", options.lang, message)
    return model


def search(model, enc: torch.Tensor, enc_lens: torch.Tensor, options: TransducerDecodeOptions,
           lm: Optional[NgramTokenLm]) -> List[List[Hypothesis]]:
    if options.method == "greedy":
        return [[Hypothesis(tokens, float("nan"))]
                for tokens in greedy_search(model, enc, enc_lens, options.max_sym_per_frame)]
    return modified_beam_search(model, enc, enc_lens, beam=options.beam, nbest=options.nbest, lm=lm,
                                lm_scale=options.lm_scale)


def _encode_with_dropout(model, features, feature_lens, cut_ids, seed: int) -> tuple:
    """The encoder output of each utterance alone under its own dropout masks, padded."""
    outs = [dropout_samples(lambda x, n: model.encode(x, n)[0], features[i], int(feature_lens[i]), cut_id, [seed])[0]
            for i, cut_id in enumerate(cut_ids)]
    lens = torch.tensor([o.shape[0] for o in outs], device=features.device)
    enc = features.new_zeros(len(outs), int(lens.max()), outs[0].shape[1])
    for i, o in enumerate(outs):
        enc[i, :o.shape[0]] = o
    return enc, lens


@torch.no_grad()
def decode_cuts(cuts, model, options: TransducerDecodeOptions, lm: Optional[NgramTokenLm]
                ) -> List[Dict[str, List[Hypothesis]]]:
    """Per pass (dropout off, then the dropout passes) cut id -> n-best, in the cuts' order."""
    seeds = pass_seeds(options.dropout_seed, options.dropout_samples)
    cut_list = sorted(cuts, key=lambda c: (c.num_frames or 0, c.id))
    dataset = FeatureDataset()
    out: List[Dict[str, List[Hypothesis]]] = [{} for _ in range(1 + len(seeds))]
    device = torch.device(options.device)
    with tqdm(total=len(cut_list) * len(out), desc="decode", unit="utt-pass" if seeds else "utt") as bar:
        for start in range(0, len(cut_list), options.batch_size):
            batch = dataset[cut_list[start:start + options.batch_size]]
            features, feature_lens = batch["features"].to(device), batch["feature_lens"].to(device)
            enc, enc_lens = model.encode(features, feature_lens)
            for cut_id, hyps in zip(batch["cut_ids"], search(model, enc, enc_lens, options, lm)):
                out[0][cut_id] = hyps
            bar.update(len(batch["cut_ids"]))
            for k, seed in enumerate(seeds, 1):
                with dropout_active(model, options.dropout_proportion, device):
                    enc, enc_lens = _encode_with_dropout(model, features, feature_lens, batch["cut_ids"], seed)
                for cut_id, hyps in zip(batch["cut_ids"], search(model, enc, enc_lens, options, lm)):
                    out[k][cut_id] = hyps
                bar.update(len(batch["cut_ids"]))
    order = {c.id: i for i, c in enumerate(cuts)}
    return [dict(sorted(o.items(), key=lambda kv: order[kv[0]])) for o in out]


def write_hypotheses(d: HypDir, nbests: Dict[str, List[Hypothesis]], codec: UnitCodec, scored: bool) -> None:
    """hyp.txt and, for a search that scores its hypotheses, nbest.txt of one pass, each atomically."""
    atomic_write_text(d.hyp, text_lines({u: codec.decode(h[0].tokens) for u, h in nbests.items()}, sort=False))
    d.nbest.unlink(missing_ok=True)
    if not scored:
        return
    lines = []
    for u, hyps in nbests.items():
        for rank, h in enumerate(hyps, 1):
            words = " ".join(codec.decode(h.tokens))
            lines.append(f"{u} {rank} {h.score:.4f} {h.lm_score:.4f} {words}".rstrip() + "\n")
    atomic_write_text(d.nbest, "".join(lines))


def decode(cuts_path: str, output_dir: str, options: TransducerDecodeOptions) -> HypDir:
    """Decode ``cuts_path`` into the hypothesis directory ``output_dir`` (see the module docstring)."""
    options.validate()
    codec = UnitCodec(options.lang)
    model = load_transducer(options, codec)
    if options.dropout_samples:
        set_dropout(model, options.dropout_proportion, active=False, where=options.model)
    lm = NgramTokenLm(read_arpa(options.lm), codec.tokens) if options.lm else None
    cuts = load_cuts(cuts_path, features=True)
    require_cmvn(load_checkpoint(options.model).get("cmvn", "none"), cuts, f"model {options.model}", cuts_path)
    out = HypDir(output_dir)
    num_passes = 1 + options.dropout_samples
    info = {"cuts": str(cuts_path), **asdict(options),
            "pass_seeds": pass_seeds(options.dropout_seed, options.dropout_samples)}
    out.prepare(info, num_passes)
    with log_to_file(out.log, mode="w"):
        t0 = time.perf_counter()
        log.info("decode-transducer: %d cuts, %s", len(cuts), info)
        passes = decode_cuts(cuts, model, options, lm)
        for k, nbests in enumerate(passes):
            write_hypotheses(out.pass_dir(k), nbests, codec, scored=options.method != "greedy")
        seconds = time.perf_counter() - t0
        audio = sum(c.duration for c in cuts)
        log.info("decoded %d utterances (%d pass(es)), %.1f s of audio in %.1f s (real-time factor %.3f)",
                 len(cuts), num_passes, audio, seconds, seconds / max(audio, 1e-9))
    if not passes[0]:
        raise FrugalError(f"{cuts_path}: no cuts to decode")
    out.finish(num_passes)
    return out
