"""Forced alignment: Viterbi best paths of the network output through numerator graphs.

`align` returns one `Alignment` per utterance: the pdf id and the phone of every output
frame (at the model's frame rate, e.g. 30 ms for chain models with subsampling 3), where
each phone instance starts (the frame whose arc enters a new phone), and the words with
their first frame (the arc that carries the word id, i.e. its first phone).

Files: `save_alignments` writes one torch file per job (plain lists and strings, read
with ``weights_only=True``): ``{"kind": "Alignments", "frame_shift": s, "utts": [{"id",
"pdfs", "phones", "phone_starts", "words", "word_starts", "score"}]}``.
`format_alignment` prints an utterance like Kaldi's show-alignments: pdf ids grouped
per phone instance, then the phone names, each padded to its group's width.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Tuple

import torch

from frugal.errors import FrugalError
from frugal.fileio import PathLike, atomic_path
from frugal.fsa.dense import DenseFsaVec
from frugal.fsa.intersect import best_paths
from frugal.graph.chain import NumeratorGraphs


@dataclass
class Alignment:
    id: str
    pdfs: List[int]
    phones: List[int]
    phone_starts: List[bool]
    words: List[int]
    word_starts: List[int]  # first frame of each word
    score: float            # Viterbi log-score; -inf when no path exists (all lists empty)

    def phone_segments(self) -> List[Tuple[int, int, int]]:
        """(phone, first frame, number of frames) of each phone instance."""
        segs: List[Tuple[int, int, int]] = []
        for t, (ph, start) in enumerate(zip(self.phones, self.phone_starts)):
            if start or not segs:
                segs.append((ph, t, 1))
            else:
                p, t0, n = segs[-1]
                segs[-1] = (p, t0, n + 1)
        return segs


def align(model_outputs: torch.Tensor, lengths: torch.Tensor, num_graphs: NumeratorGraphs,
          utt_ids: Optional[Sequence[str]] = None) -> List[Alignment]:
    """Viterbi alignment of (B, T', D) chain outputs (used as log-likelihoods, as in
    training) through their numerator graphs (one per utterance)."""
    if len(num_graphs) != model_outputs.shape[0]:
        raise ValueError(f"{len(num_graphs)} graphs for {model_outputs.shape[0]} outputs")
    lengths = lengths.to(device=model_outputs.device, dtype=torch.int64)
    graphs = num_graphs.to(model_outputs.device)
    paths = best_paths(graphs.fsas, DenseFsaVec(model_outputs.detach(), lengths))
    arc_offset = graphs.fsas.arc_splits[:-1]
    phones_all = graphs.arc_phones.long()
    starts_all = graphs.arc_phone_starts
    out = []
    for b in range(model_outputs.shape[0]):
        n = int(lengths[b])
        uid = utt_ids[b] if utt_ids is not None else str(b)
        score = float(paths.scores[b])
        local = paths.arcs[b, :n]
        if n and bool((local < 0).any()) or score == float("-inf"):
            out.append(Alignment(uid, [], [], [], [], [], float("-inf")))
            continue
        arcs = local + arc_offset[b]
        aux = paths.aux_labels[b, :n].tolist()
        words = [w for w in aux if w != 0]
        word_starts = [t for t, w in enumerate(aux) if w != 0]
        out.append(Alignment(uid, paths.labels[b, :n].tolist(), phones_all[arcs].tolist(),
                             starts_all[arcs].tolist(), words, word_starts, score))
    return out


def save_alignments(path: PathLike, alignments: Sequence[Alignment], frame_shift: float) -> None:
    d = {"kind": "Alignments", "frame_shift": float(frame_shift), "utts": [asdict(a) for a in alignments]}
    with atomic_path(path) as tmp:
        torch.save(d, tmp)


def load_alignments(path: PathLike) -> Tuple[List[Alignment], float]:
    """(alignments, frame shift in seconds) from `save_alignments`."""
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a corrupt or foreign file
        raise FrugalError(f"{path}: not an alignment file: {e}") from None
    if not isinstance(d, dict) or d.get("kind") != "Alignments":
        raise FrugalError(f"{path}: not an alignment file (frugal align)")
    return [Alignment(**u) for u in d["utts"]], float(d["frame_shift"])


def format_alignment(a: Alignment, phone_symbol, word_symbol=None, frame_shift: Optional[float] = None,
                     times: bool = False) -> str:
    """Kaldi show-alignments style lines (without the trailing blank line):

    ``id [ 5 6 6 ] [ 9 ] ...`` then ``id SIL     A ...`` (each phone padded to its group);
    with ``word_symbol`` a line ``id WORD@start ...`` (start in seconds with
    ``frame_shift``, else in frames); with ``times`` one line ``id phone start end``
    (seconds, needs ``frame_shift``) per phone instance.
    """
    segs = a.phone_segments()
    groups, names = [], []
    for ph, t0, n in segs:
        g = "[ " + " ".join(str(p) for p in a.pdfs[t0:t0 + n]) + " ]"
        name = phone_symbol(ph)
        width = max(len(g), len(name))
        groups.append(g.ljust(width))
        names.append(name.ljust(width))
    lines = [f"{a.id} " + " ".join(groups).rstrip(), f"{a.id} " + " ".join(names).rstrip()]
    if word_symbol is not None:
        lines.append(f"{a.id} " + " ".join(
            f"{word_symbol(w)}@{t if frame_shift is None else f'{t * frame_shift:.2f}'}"
            for w, t in zip(a.words, a.word_starts)))
    if times:
        if frame_shift is None:
            raise ValueError("times need the frame shift")
        for ph, t0, n in segs:
            lines.append(f"{a.id} {phone_symbol(ph)} {t0 * frame_shift:.2f} {(t0 + n) * frame_shift:.2f}")
    return "\n".join(lines)
