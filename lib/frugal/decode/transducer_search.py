"""Decoding a transducer (RNN-T) model: greedy search and modified beam search, with an
optional token n-gram LM in shallow fusion.

The searches take encoder output, not features: ``enc`` (B, T, E) padded, ``enc_lens`` (B,);
``model`` is a `frugal.models.transducer.TransducerModel` (its stateless predictor's state is
the last ``context_size`` tokens, blanks at the start). They run under ``torch.no_grad`` and
leave the model's train/eval mode as it is (the predictor and joiner have no dropout).

Conventions:

- token ids are the model's output ids; id ``model.blank`` (0) is the blank and is never part
  of a result; a hypothesis's ``tokens`` are the emitted non-blank ids in order;
- scores are natural-log and accumulated in float64 whatever the model's dtype;
- `modified_beam_search` emits at most one symbol per frame (the "modified" topology). Its
  hypotheses are distinct token sequences: the alignments that reach the same sequence are
  merged by log-add of their acoustic scores before pruning, so with a beam at least as large
  as the number of sequences the scores are exact sums over all alignments. The LM part is a
  function of the token sequence, so merged candidates share it exactly;
- shallow fusion: a hypothesis's score is acoustic + ``lm_scale`` * LM log-prob, the LM scoring
  every non-blank token as it is emitted and ``</s>`` at the end of the utterance.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from frugal.errors import BadValue, FrugalError
from frugal.lm.arpa import BOS, EOS, UNK, ArpaLm

LN10 = math.log(10.0)
BLANK_ID = 0  # the blank of frugal's token tables (`frugal.lang.units`)


@dataclass
class Hypothesis:
    tokens: List[int]        # emitted non-blank token ids, in order
    score: float             # acoustic log-prob (log-sum over merged alignments) + lm_scale * lm_score
    lm_score: float = 0.0    # the LM log-prob of the tokens and </s> (natural log), 0 without LM


class NgramTokenLm:
    """Shallow-fusion LM over token strings from an ARPA n-gram model whose 'words' are the
    tokens (pieces) of tokens.txt; ``tokens[i]`` is the symbol of token id i, id 0 the blank
    (never scored). Tokens absent from the LM get its ``<unk>`` probability; an LM that lacks
    some token and has no ``<unk>`` is refused when the object is made."""

    def __init__(self, arpa: ArpaLm, tokens: Sequence[str]):
        self.arpa = arpa
        self.tokens = list(tokens)
        if EOS not in arpa:
            raise FrugalError(f"the token LM has no {EOS}")
        missing = [t for t in self.tokens[BLANK_ID + 1:] if t not in arpa]
        if missing and UNK not in arpa:
            shown = ", ".join(repr(t) for t in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise FrugalError(f"the token LM has no {UNK} and lacks {len(missing)} token(s): {shown}")
        self._words = [t if t in arpa else UNK for t in self.tokens]
        self._words[BLANK_ID] = ""
        self._ctx_len = arpa.order - 1
        self._scores: Dict[Tuple[Tuple[str, ...], int], float] = {}
        self._vectors: Dict[Tuple[str, ...], Tensor] = {}

    def _word(self, token: int) -> str:
        if not 0 < token < len(self.tokens):
            raise ValueError(f"token id {token} is the blank or not a token id (vocabulary {len(self.tokens)})")
        return self._words[token]

    def _context(self, history: Sequence[int]) -> Tuple[str, ...]:
        """The last order - 1 words of <s> + history: all that the LM can see of it."""
        n = self._ctx_len
        if n == 0:
            return ()
        if len(history) >= n:
            return tuple(self._word(i) for i in history[len(history) - n:])
        return ((BOS,) + tuple(self._word(i) for i in history))[-n:]

    def score(self, history: Sequence[int], token: int) -> float:
        """Natural-log P(token | history), history the previous token ids."""
        key = (self._context(history), token)
        if key not in self._scores:
            self._scores[key] = self.arpa.log10_prob(key[0], self._word(token)) * LN10
        return self._scores[key]

    def final(self, history: Sequence[int]) -> float:
        """Natural-log P(</s> | history)."""
        return self.arpa.log10_prob(self._context(history), EOS) * LN10

    def log_probs(self, history: Sequence[int]) -> Tensor:
        """(vocab,) float64 CPU tensor of log P(token | history) for every token id; 0 for the
        blank (it adds nothing). Cached per LM context: do not modify it."""
        ctx = self._context(history)
        vec = self._vectors.get(ctx)
        if vec is None:
            by_word = {w: self.arpa.log10_prob(ctx, w) * LN10 for w in set(self._words[BLANK_ID + 1:])}
            vec = torch.tensor([0.0 if i == BLANK_ID else by_word[w] for i, w in enumerate(self._words)],
                               dtype=torch.float64)
            self._vectors[ctx] = vec
        return vec


def _dec_proj(model, ctx: Tensor) -> Tensor:
    """(N, context_size) token contexts -> (N, joiner_dim) projected predictor outputs."""
    return model.joiner.decoder_proj(model.predictor(ctx, need_pad=False).squeeze(1))


def _shift_in(ctx: Tensor, tokens: Tensor) -> Tensor:
    """Contexts with ``tokens`` appended and the oldest token dropped."""
    return torch.cat([ctx[:, 1:], tokens[:, None]], dim=1)


def _lengths(enc: Tensor, enc_lens: Tensor) -> List[int]:
    lens = [int(x) for x in enc_lens.tolist()]
    if len(lens) != enc.shape[0] or any(not 0 <= n <= enc.shape[1] for n in lens):
        raise ValueError(f"enc_lens {lens} do not fit encoder output of shape {tuple(enc.shape)}")
    return lens


@torch.no_grad()
def greedy_search(model, enc: Tensor, enc_lens: Tensor, max_sym_per_frame: int = 1) -> List[List[int]]:
    """The argmax token at each frame; a non-blank one is emitted and, with
    ``max_sym_per_frame`` > 1, the search stays on the frame for up to that many symbols.
    Each utterance's result equals decoding it alone (rows are computed independently)."""
    if max_sym_per_frame < 1:
        raise BadValue("max_sym_per_frame", max_sym_per_frame, "must be at least 1")
    lens = _lengths(enc, enc_lens)
    B, dev, blank = enc.shape[0], enc.device, model.blank
    enc_p = model.joiner.encoder_proj(enc)
    ctx = torch.full((B, model.context_size), blank, dtype=torch.long, device=dev)
    dec_p = _dec_proj(model, ctx)
    lens_t = torch.tensor(lens, device=dev)
    out: List[List[int]] = [[] for _ in range(B)]
    for t in range(max(lens, default=0)):
        on = lens_t > t  # utterances still on frame t
        for _ in range(max_sym_per_frame):
            rows = on.nonzero().squeeze(1)
            if rows.numel() == 0:
                break
            best = model.joiner(enc_p[rows, t], dec_p[rows], project_input=False).argmax(-1)
            emit = best != blank
            on[rows[~emit]] = False  # a blank moves the utterance to the next frame
            rows, best = rows[emit], best[emit]
            if rows.numel() == 0:
                break
            for r, k in zip(rows.tolist(), best.tolist()):
                out[r].append(k)
            ctx[rows] = _shift_in(ctx[rows], best)
            dec_p[rows] = _dec_proj(model, ctx[rows])
    return out


@torch.no_grad()
def modified_beam_search(model, enc: Tensor, enc_lens: Tensor, beam: int = 4, nbest: int = 1,
                         lm: Optional[NgramTokenLm] = None, lm_scale: float = 0.0) -> List[List[Hypothesis]]:
    """Beam search with at most one symbol per frame, ``beam`` hypotheses (distinct token
    sequences) per utterance; the up to ``nbest`` best per utterance, best first, in the
    input order. ``lm_scale`` is ignored without ``lm``."""
    if beam < 1:
        raise BadValue("beam", beam, "must be at least 1")
    if nbest < 1 or nbest > beam:
        raise BadValue("nbest", nbest, f"must be between 1 and the beam ({beam})")
    V, blank = model.vocab_size, model.blank
    if lm is not None and len(lm.tokens) != V:
        raise FrugalError(f"the token LM has {len(lm.tokens)} tokens but the model's vocabulary is {V}")
    if lm is not None and blank != BLANK_ID:
        raise FrugalError(f"the token LM takes id {BLANK_ID} as the blank but the model's blank is {blank}")
    lens = _lengths(enc, enc_lens)
    B, dev = enc.shape[0], enc.device
    enc_p = model.joiner.encoder_proj(enc)
    lens_t = torch.tensor(lens, device=dev)

    # The live hypotheses of all unfinished utterances, flat: utterance, rank within it
    # ("slot"), tokens, predictor context and its projected output, acoustic and LM scores.
    utt = torch.arange(B, device=dev)
    slot = torch.zeros(B, dtype=torch.long, device=dev)
    toks: List[Tuple[int, ...]] = [()] * B
    ctx = torch.full((B, model.context_size), blank, dtype=torch.long, device=dev)
    dec_p = _dec_proj(model, ctx)
    ac = torch.zeros(B, dtype=torch.float64, device=dev)
    lmp = torch.zeros(B, dtype=torch.float64, device=dev)
    results: List[List[Hypothesis]] = [[] for _ in range(B)]

    for t in range(max(lens, default=0) + 1):
        done = lens_t[utt] <= t
        if done.any():
            _finish(results, done, utt, toks, ac, lmp, lm, lm_scale, nbest)
            keep = ~done
            toks = [h for h, k in zip(toks, keep.tolist()) if k]
            utt, slot, ctx, dec_p, ac, lmp = (x[keep] for x in (utt, slot, ctx, dec_p, ac, lmp))
        N = utt.numel()
        if N == 0:
            break
        logp = model.joiner(enc_p[utt, t], dec_p, project_input=False).double().log_softmax(-1)
        ac_c = ac[:, None] + logp  # (N, V): blank keeps the tokens, k appends k

        # Only "h + blank" and "h' + k" with h' + k == h can reach the same sequence:
        # log-add the second into the first before pruning.
        utt_l = utt.tolist()
        where = {(u, h): n for n, (u, h) in enumerate(zip(utt_l, toks))}
        pairs = [(n, where[u, h[:-1]], h[-1]) for n, (u, h) in enumerate(zip(utt_l, toks))
                 if h and (u, h[:-1]) in where]
        if pairs:
            d, s, k = torch.tensor(pairs, device=dev).unbind(1)
            ac_c[d, blank] = torch.logaddexp(ac_c[d, blank], ac_c[s, k])
            ac_c[s, k] = -math.inf

        if lm is not None:
            lm_c = lmp[:, None] + torch.stack([lm.log_probs(h) for h in toks]).to(dev)
            total = ac_c + lm_scale * lm_c
        else:
            lm_c, total = None, ac_c
        # Top `beam` of each utterance's candidates: a (B, beam * V) grid, -inf where empty.
        grid = torch.full((B, beam, V), -math.inf, dtype=torch.float64, device=dev)
        grid[utt, slot] = total
        vals, idx = grid.view(B, -1).topk(min(beam, beam * V), dim=1)
        new_utt, new_slot = torch.isfinite(vals).nonzero(as_tuple=True)  # by utterance, then rank
        idx = idx[new_utt, new_slot]
        lookup = torch.full((B, beam), -1, dtype=torch.long, device=dev)
        lookup[utt, slot] = torch.arange(N, device=dev)
        parent, k = lookup[new_utt, idx // V], idx % V

        emit = k != blank
        toks = [toks[p] + (s,) if s != blank else toks[p] for p, s in zip(parent.tolist(), k.tolist())]
        utt, slot = new_utt, new_slot
        ac = ac_c[parent, k]
        lmp = lm_c[parent, k] if lm_c is not None else lmp[parent]
        ctx, dec_p = ctx[parent], dec_p[parent]
        if emit.any():  # a blank keeps the predictor's state: only the new contexts are computed
            ctx[emit] = _shift_in(ctx[emit], k[emit])
            dec_p[emit] = _dec_proj(model, ctx[emit])
    return results


def _finish(results: List[List[Hypothesis]], done: Tensor, utt: Tensor, toks: List[Tuple[int, ...]],
            ac: Tensor, lmp: Tensor, lm: Optional[NgramTokenLm], lm_scale: float, nbest: int) -> None:
    """Final scores (with the LM's </s>) and the n-best of the utterances whose hypotheses are ``done``."""
    by_utt: Dict[int, List[Hypothesis]] = {}
    ac_l, lm_l, utt_l = ac.tolist(), lmp.tolist(), utt.tolist()
    for n in done.nonzero().squeeze(1).tolist():
        h = toks[n]
        lm_score = lm_l[n] + lm.final(h) if lm is not None else 0.0
        score = ac_l[n] + lm_scale * lm_score if lm is not None else ac_l[n]
        by_utt.setdefault(utt_l[n], []).append(Hypothesis(list(h), score, lm_score))
    for u, hyps in by_utt.items():
        results[u] = sorted(hyps, key=lambda x: -x.score)[:nbest]
