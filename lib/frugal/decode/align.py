"""Forced alignment: Viterbi best paths of the network output through numerator graphs.

`align` returns one `Alignment` per utterance: the pdf id and the phone of every output
frame (at the model's frame rate, e.g. 30 ms for chain models with subsampling 3), where
each phone instance starts (the frame whose arc enters a new phone), and the words with
their first frame (the arc that carries the word id, i.e. its first phone).

`align_file` is the library call behind ``frugal align`` (cuts in jobs, the model's chain
output through each cut's flat-start numerator), `show_alignments` behind
``frugal show-alignments``.

Files: `save_alignments` writes one torch file (plain lists and strings, read
with ``weights_only=True``): ``{"kind": "Alignments", "frame_shift": s, "utts": [{"id",
"pdfs", "phones", "phone_starts", "words", "word_starts", "score"}]}``.
`format_alignment` prints an utterance like Kaldi's show-alignments: pdf ids grouped
per phone instance, then the phone names, each padded to its group's width.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import torch

from frugal import jobs
from frugal.data.cmvn import require_cmvn
from frugal.data.cuts import load_cuts
from frugal.data.dataset import FeatureDataset
from frugal.dirs import load_checkpoint
from frugal.errors import BadValue, FrugalError
from frugal.fileio import PathLike, load_weights_only, save_weights_only
from frugal.fsa.dense import DenseFsaVec
from frugal.fsa.intersect import best_paths
from frugal.graph.chain import ChainLexicon, NumeratorBuilder, NumeratorGraphs
from frugal.graph.den_graph import ChainDenGraph
from frugal.graph.fingerprint import checkpoint_fingerprint, den_graph_fingerprint, first_difference, show
from frugal.graph.hmm_topo import read_pdf_phones
from frugal.lang.lang import Lang
from frugal.models import load_model

log = logging.getLogger(__name__)


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
    save_weights_only(path, d)


def load_alignments(path: PathLike) -> Tuple[List[Alignment], float]:
    """(alignments, frame shift in seconds) from `save_alignments`."""
    d = load_weights_only(path, "an alignment file (frugal align)", ("kind", "Alignments"))
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


def batches_by_duration(cuts: Sequence, max_duration: float) -> List[list]:
    """Consecutive groups of cuts (sorted by duration) with at most max_duration seconds each."""
    out: List[list] = []
    total = 0.0
    for c in sorted(cuts, key=lambda c: (c.duration, c.id)):
        if out and total + c.duration <= max_duration:
            out[-1].append(c)
            total += c.duration
        else:
            out.append([c])
            total = c.duration
    return out


def align_cuts(task: Tuple[str, str, str, Sequence, float, str]) -> Tuple[List[Alignment], int]:
    """(alignments of a job's cuts in their order, the model's subsampling factor); ``task``
    is (model, lang, den graph, cuts, max_duration, device)."""
    model_path, lang, den_graph, cuts, max_duration, device = task
    model = load_model(model_path, map_location=device)
    den = ChainDenGraph.load(den_graph)
    if model.config.num_pdfs != den.num_pdfs:
        raise BadValue("model", model_path, f"has {model.config.num_pdfs} outputs but den graph {den_graph} "
                                            f"has {den.num_pdfs} pdfs")
    builder = NumeratorBuilder(ChainLexicon.from_lang_dir(lang), den.pdf_map, den.graph)
    dataset = FeatureDataset()
    by_id = {}
    for group in batches_by_duration(cuts, max_duration):
        batch = dataset[group]
        graphs = builder.build_batch([t.split() for t in batch["texts"]])
        with torch.no_grad():
            chain, _, out_lens = model(batch["features"].to(device), batch["feature_lens"].to(device))
        for a in align(chain, out_lens, graphs, batch["cut_ids"]):
            by_id[a.id] = a
        jobs.report(len(group))
    return [by_id[c.id] for c in cuts], model.config.subsampling_factor


def check_den_graph(model: PathLike, den_graph: PathLike) -> None:
    """The model must have been trained on a den graph like ``den_graph``, by content
    (`frugal.graph.fingerprint`): same topology and pdf map, or its pdf ids mean others."""
    fp, name = checkpoint_fingerprint(load_checkpoint(model), model)
    if fp is None:
        log.warning("model %s records no den graph fingerprint and its den graph %s is not found from here: "
                    "cannot check that it was trained on a den graph like %s", model, name or "(unknown)", den_graph)
        return
    diff = first_difference(den_graph_fingerprint(den_graph), fp)
    if diff is not None:
        field, theirs, ours = diff
        trained = f"was trained on den graph {name}" if name else "was trained"
        raise FrugalError(f"den graph {den_graph} has {field} {show(field, theirs)} but model {model} {trained} "
                          f"with {field} {show(field, ours)}: they were not built for each other")


def align_file(model: PathLike, cuts: PathLike, lang: PathLike, den_graph: PathLike, output: PathLike,
               nj: int = 1, max_duration: float = 200.0, device: str = "cpu") -> List[Alignment]:
    """Align the cuts of a manifest in ``nj`` jobs and save the alignments to ``output``."""
    if max_duration <= 0:
        raise BadValue("max_duration", max_duration, "must be positive")
    for name, path in (("model", model), ("den_graph", den_graph)):
        if not Path(path).is_file():
            raise BadValue(name, path, "no such file")
    check_den_graph(model, den_graph)
    cut_list = list(load_cuts(cuts, features=True))
    require_cmvn(load_checkpoint(model).get("cmvn", "none"), cut_list, f"model {model}", str(cuts))
    tasks = [(str(model), str(lang), str(den_graph), part, max_duration, device)
             for part in jobs.split(cut_list, nj, "cuts to align")]
    results = jobs.run(align_cuts, tasks, nj, desc="align", unit="utt", total=len(cut_list))
    alignments = [a for part, _ in results for a in part]
    frame_shift = float(cut_list[0].frame_shift or 0.01) * results[0][1]
    save_alignments(output, alignments, frame_shift)
    failed = [a.id for a in alignments if a.score == float("-inf")]
    log.info("wrote %s: %d alignments, %d without a path%s", output, len(alignments), len(failed),
             f" (e.g. {failed[0]})" if failed else "")
    return alignments


def show_alignments(files: Sequence[PathLike], lang_dir: PathLike, pdf_map: Optional[PathLike] = None,
                    frame_shift: Optional[float] = None, words: bool = False, times: bool = False) -> Iterator[str]:
    """The text of each alignment (`format_alignment`, then an empty line); with ``pdf_map``,
    every pdf is checked to belong to its aligned phone."""
    lang = Lang(lang_dir)
    pdf_phone = read_pdf_phones(pdf_map, lang.phones) if pdf_map else None
    for path in files:
        if not Path(path).is_file():
            raise BadValue("alignments", path, "no such file")
        alignments, file_shift = load_alignments(path)
        shift = frame_shift if frame_shift is not None else file_shift
        for a in alignments:
            if pdf_phone is not None:
                for t, (pdf, ph) in enumerate(zip(a.pdfs, a.phones)):
                    if pdf_phone.get(pdf) != ph:
                        raise FrugalError(f"{path}: utterance {a.id} frame {t}: pdf {pdf} is not a pdf of "
                                          f"phone {lang.phones.symbol(ph)} in {pdf_map}")
            if a.score == float("-inf"):
                yield f"{a.id} (no alignment)\n\n"
                continue
            yield format_alignment(a, lang.phones.symbol, lang.words.symbol if words else None, shift, times) + "\n\n"
