"""Train an acoustic model (TDNN-F or transformer) with flat-start LF-MMI or CTC; the averaged model is EXP_DIR/final.pt.

The model is built from the ``model`` section of --train-config (feat_dim from the
features, the output size from the den graph's pdfs for LF-MMI or from the units of
--lang for CTC), trained with frugal.train.Trainer under the ``train`` section, and the
last --num-average epoch checkpoints are averaged into EXP_DIR/final.pt. An optional
``loss`` section sets LF-MMI's leaky_hmm_coefficient, l2_regularize and xent_regularize.
Numerator graphs are built from each batch's transcripts inside the loss.

Semi-supervised LF-MMI (Kaldi's chain semi-supervised recipe, Manohar et al. 2018):
--init-model starts from a seed model's weights (with a new optimiser and schedule), and
--supervision-lattices gives lattices (e.g. decodings of the unsupervised cuts, or their
combination by frugal combine-lattices) keyed by cut id: a cut that has one is supervised
by its lattice (numerator: the pruned, determinised lattice with --lattice-lm-scale on its
graph costs, through the lexicon; built once and cached), every other cut by its
transcript. --frame-weights scales each frame's gradient by the lattice posterior of its
best-path label, --unsup-weight each lattice cut's gradient. Decode lattices hold acoustic
costs x 10 (post_decode_acwt), hence --lattice-acoustic-scale 0.1. The den graph should
count the supervised transcripts and the unsupervised 1-best hypotheses (frugal
set-cut-texts, then make-den-graph --cuts sup:1.5 unsup_1best:1.0).

A run that finds checkpoints in EXP_DIR resumes from the newest (the same command finishes
an interrupted run with the same model, --init-model or not); --start-fresh deletes them
first. Under ``torchrun --nproc_per_node N`` the same command trains with N processes
(DDP; gloo on CPU). Progress, loss components (per frame, at the output frame rate) and
frames/s go to EXP_DIR/log/train.log.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
import random
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
import yaml
from lhotse import CutSet

from frugal.lattice.lattice import Lattice
from frugal.errors import FrugalError
from frugal.fileio import atomic_path
from frugal.models import build_model
from frugal.semisup.supervision import (DEFAULT_ACOUSTIC_SCALE, DEFAULT_LATTICE_LM_SCALE, DEFAULT_PRUNE_BEAM,
                                        LatticeSupervisionOptions, read_supervision_lattices)
from frugal.train import Trainer, train_config_from_dict
from frugal.train import checkpoint as ckpt
from frugal.train.data import load_cuts
from frugal.train.tasks import make_task

log = logging.getLogger("frugal.bin.train")

SECTIONS = ("model", "train", "loss")


def read_train_config(path: str) -> Dict[str, Dict]:
    """The sections of a training config file (model, train, loss), each a mapping."""
    if not Path(path).is_file():
        raise FrugalError(f"--train-config {path}: no such file")
    try:
        d = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise FrugalError(f"{path}{line}: not valid YAML") from None
    if not isinstance(d, dict):
        raise FrugalError(f"{path}: expected a mapping with sections {', '.join(SECTIONS)}")
    unknown = sorted(set(d) - set(SECTIONS))
    if unknown:
        raise FrugalError(f"{path}: unknown section(s) {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    out = {}
    for name in SECTIONS:
        section = d.get(name) or {}
        if not isinstance(section, dict):
            raise FrugalError(f"{path}: section '{name}' must be a mapping")
        out[name] = section
    return out


def hold_out(cuts: CutSet, num: int, seed: int) -> Tuple[CutSet, CutSet]:
    """(the rest, ``num`` cuts drawn with ``seed``): the same split on every rank and every run."""
    ids = sorted(c.id for c in cuts)
    if not 0 < num < len(ids):
        raise FrugalError(f"--num-valid {num}: must be in [1, {len(ids) - 1}] for {len(ids)} training cuts")
    held = set(random.Random(seed).sample(ids, num))
    return (CutSet.from_cuts([c for c in cuts if c.id not in held]),
            CutSet.from_cuts([c for c in cuts if c.id in held]))


def remove_checkpoints(exp_dir: Path) -> None:
    """What --start-fresh discards: checkpoints, the pointer to the newest, final.pt."""
    for pattern in ("epoch-*.pt", "checkpoint-*.pt", ckpt.LAST_POINTER, "final.pt"):
        for p in exp_dir.glob(pattern):
            p.unlink()


def check_resumable(exp_dir: Path, model_info: Dict) -> None:
    """Refuse to resume from checkpoints of a different model (say what to do instead)."""
    path = ckpt.latest_checkpoint(exp_dir)
    if path is None:
        return
    stored = ckpt.load_checkpoint(path).get("model_info", {})
    if stored != model_info:
        raise FrugalError(f"{path}: checkpoint of a different model than --train-config describes "
                          "(use --start-fresh or another --exp-dir)")


def load_init_model(model: torch.nn.Module, path: str, train_config: str) -> None:
    """Load the weights of checkpoint ``path`` (weights only) into ``model``, whose
    model_info (from --train-config) must be the checkpoint's."""
    if not Path(path).is_file():
        raise FrugalError(f"--init-model {path}: no such file")
    state = ckpt.load_checkpoint(path)
    if not isinstance(state.get("model"), dict):
        raise FrugalError(f"--init-model {path}: no model weights in this checkpoint")
    stored, wanted = state.get("model_info", {}), model.model_info()
    if stored != wanted:
        raise FrugalError(f"--init-model {path}: a different model than --train-config {train_config} "
                          f"describes ({_model_differences(stored, wanted)})")
    model.load_state_dict(state["model"])


def _model_differences(stored: Dict, wanted: Dict, limit: int = 3) -> str:
    """'key: checkpoint value vs config value' for the first differing model options."""
    def flat(d: Dict) -> Dict:
        out = {k: v for k, v in d.items() if k != "config"}
        out.update(d.get("config", {}) if isinstance(d.get("config"), dict) else {})
        return out

    a, b = flat(stored), flat(wanted)
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    parts = [f"{k}: {a.get(k)} in the checkpoint, {b.get(k)} in the config" for k in keys[:limit]]
    return "; ".join(parts + ([f"{len(keys) - limit} more"] if len(keys) > limit else []))


def select_lattices(lattices: Dict[str, Lattice], train_cuts: CutSet, valid_cuts: Optional[CutSet],
                    train_where: str) -> Dict[str, Lattice]:
    """The lattices of training and validation cuts (with a warning for the others); every
    cut without one must have a transcript."""
    wanted = {c.id for c in train_cuts} | ({c.id for c in valid_cuts} if valid_cuts is not None else set())
    unused = [k for k in lattices if k not in wanted]
    if unused:
        log.warning("--supervision-lattices: %d lattice(s) of cuts that are not training or validation cuts "
                    "are not used, e.g. %s", len(unused), unused[0])
    for cuts, where in ((train_cuts, train_where), (valid_cuts, "the validation cuts")):
        bare = [c.id for c in cuts or [] if c.id not in lattices and not _has_transcript(c)]
        if bare:
            more = f" (and {len(bare) - 1} more)" if len(bare) > 1 else ""
            raise FrugalError(f"{where}: cut {bare[0]}{more} has neither a transcript nor a lattice in "
                              "--supervision-lattices")
    return {k: v for k, v in lattices.items() if k in wanted}


def _has_transcript(cut) -> bool:
    return any(s.text and s.text.strip() for s in cut.supervisions)


def init_process_group(device: str) -> bool:
    """Join torchrun's process group here (not in the Trainer), so that it outlives training
    for `check_ranks_agree`; False when not under torchrun with several processes."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return True


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of the model's parameters and buffers, bit for bit."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def check_ranks_agree(model: torch.nn.Module) -> None:
    """After distributed training every rank must hold the same weights (DDP's invariant)."""
    digests = [None] * dist.get_world_size()
    dist.all_gather_object(digests, weights_digest(model))
    if len(set(digests)) != 1:
        raise RuntimeError(f"model weights differ between ranks after training: {digests}")
    if dist.get_rank() == 0:
        log.info("model weights agree on all %d processes (sha256 %s)", len(digests), digests[0][:16])


def log_lattice_supervision(lattices: Dict[str, Lattice], train_cuts: CutSet,
                            options: LatticeSupervisionOptions) -> None:
    on_lattices = [c for c in train_cuts if c.id in lattices]
    both = sum(_has_transcript(c) for c in on_lattices)
    log.info("%d of %d training cuts are supervised by lattices (%d of them also have a transcript, not used), "
             "the others by their transcripts; lattice LM scale %g, prune beam %s, acoustic scale %g, "
             "frame weights %s, weight %g", len(on_lattices), len(train_cuts), both, options.lattice_lm_scale,
             options.prune_beam, options.acoustic_scale, "on" if options.frame_weights else "off", options.weight)


def write_final(exp_dir: Path, num_epochs: int, num_average: int, extra: Dict) -> Path:
    """Average the last ``num_average`` epoch checkpoints into exp_dir/final.pt (atomically)."""
    paths = ckpt.last_epoch_checkpoints(exp_dir, num_epochs, num_average)
    last = ckpt.load_checkpoint(paths[-1])
    final = {
        "format": "frugal-checkpoint-1",
        "model": ckpt.average_checkpoints(paths),
        "model_info": last["model_info"],
        "train_config": last["train_config"],
        "valid": last.get("valid", {}),
        "averaged": [p.name for p in paths],
        **extra,
    }
    out = exp_dir / "final.pt"
    with atomic_path(out) as tmp:
        torch.save(final, tmp)
    return out


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="frugal train", description=__doc__.split("\n")[0],
                                epilog=__doc__.split("\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-config", required=True,
                   help="YAML with sections model (type: tdnnf (default) or transformer, and its options, e.g. preset: tdnnf-small), "
                        "train (frugal.train.TrainConfig) and optionally loss")
    p.add_argument("--train-cuts", required=True, help="lhotse cuts with features (and transcripts)")
    p.add_argument("--valid-cuts", help="cuts whose objective is computed after every epoch")
    p.add_argument("--num-valid", type=int, default=0,
                   help="hold out N random cuts of --train-cuts as the validation set instead (Kaldi's "
                        "held-out subset: with LF-MMI their transcripts are in the den graph's phone LM, "
                        "which the numerators of unseen text may not fit)")
    p.add_argument("--lang", required=True,
                   help="lang directory: the lexicon of the numerators (LF-MMI) or the CTC units "
                        "(phones of prepare-lang, or a prepare-units directory)")
    p.add_argument("--exp-dir", required=True, help="checkpoints, log/train.log and final.pt")
    p.add_argument("--objective", choices=["lfmmi", "ctc"], default="lfmmi")
    p.add_argument("--den-graph", help="den.pt of frugal make-den-graph (LF-MMI)")
    p.add_argument("--num-average", type=int, default=1,
                   help="average the last N epoch checkpoints into final.pt (default 1: the last)")
    p.add_argument("--start-fresh", action="store_true",
                   help="delete EXP_DIR's checkpoints instead of resuming from them")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"],
                   help="override the train section's device")
    p.add_argument("--num-threads", type=int, default=0,
                   help="torch CPU threads per process (default 0: torch's choice); 1 is steadiest "
                        "when other work shares the cores")
    semi = p.add_argument_group("semi-supervised training")
    semi.add_argument("--init-model", metavar="CKPT",
                      help="start from this checkpoint's weights (e.g. the seed model's final.pt; its model "
                           "must be the one --train-config describes), with a new optimiser and schedule")
    semi.add_argument("--supervision-lattices", nargs="+", metavar="PATH",
                      help="lattice files, or directories of lat.*.pt (decode or combine-lattices output), "
                           "keyed by cut id: those cuts are supervised by their lattice (LF-MMI)")
    semi.add_argument("--lattice-lm-scale", type=float, default=DEFAULT_LATTICE_LM_SCALE,
                      help="scale of the lattices' graph costs in the numerators (default: %(default)s)")
    semi.add_argument("--lattice-prune-beam", type=float, default=DEFAULT_PRUNE_BEAM,
                      help="prune the lattices with this beam first (graph + acoustic scale x acoustic "
                           "cost; default: %(default)s; 0: no pruning)")
    semi.add_argument("--lattice-acoustic-scale", type=float, default=DEFAULT_ACOUSTIC_SCALE,
                      help="scale of the lattices' acoustic costs for pruning and posteriors (default: "
                           "%(default)s, for decode lattices written with post_decode_acwt 10)")
    semi.add_argument("--frame-weights", action="store_true",
                      help="weigh each frame's gradient of a lattice cut by the lattice posterior of the "
                           "best path's label there (Kaldi's best-path deriv weights)")
    semi.add_argument("--unsup-weight", type=float, default=1.0,
                      help="scale of the gradient of lattice-supervised cuts (Kaldi's unsup egs weight; "
                           "default: %(default)s)")
    return p


def lattice_options(args) -> LatticeSupervisionOptions:
    """The lattice supervision options of the command line (checked)."""
    for value, name in ((args.lattice_lm_scale, "--lattice-lm-scale"),
                        (args.lattice_prune_beam, "--lattice-prune-beam"), (args.unsup_weight, "--unsup-weight")):
        if value < 0:
            raise FrugalError(f"{name} {value}: must be >= 0")
    if args.lattice_acoustic_scale <= 0:
        raise FrugalError(f"--lattice-acoustic-scale {args.lattice_acoustic_scale}: must be > 0")
    return LatticeSupervisionOptions(lattice_lm_scale=args.lattice_lm_scale,
                                     prune_beam=args.lattice_prune_beam or None,
                                     acoustic_scale=args.lattice_acoustic_scale,
                                     frame_weights=args.frame_weights, weight=args.unsup_weight)


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.num_threads < 0:
        raise FrugalError(f"--num-threads {args.num_threads}: must be >= 0")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    sections = read_train_config(args.train_config)
    if args.device is not None:
        sections["train"]["device"] = args.device
    train_config = train_config_from_dict(sections["train"], where=f"{args.train_config} (train)")
    if args.num_average < 1 or args.num_average > train_config.num_epochs:
        raise FrugalError(f"--num-average {args.num_average}: must be in [1, num_epochs = "
                          f"{train_config.num_epochs}]")
    if args.objective == "ctc" and args.den_graph:
        raise FrugalError("--den-graph is for --objective lfmmi only")
    if args.objective == "ctc" and args.supervision_lattices:
        raise FrugalError("--supervision-lattices is for --objective lfmmi only")
    options = lattice_options(args)
    train_cuts = load_cuts(args.train_cuts, where=f"--train-cuts {args.train_cuts}")
    valid_cuts = load_cuts(args.valid_cuts, where=f"--valid-cuts {args.valid_cuts}") if args.valid_cuts else None
    if args.num_valid:
        if valid_cuts is not None:
            raise FrugalError("--num-valid and --valid-cuts exclude each other")
        train_cuts, valid_cuts = hold_out(train_cuts, args.num_valid, train_config.seed)
    first = next(iter(train_cuts), None)
    if first is None:
        raise FrugalError(f"--train-cuts {args.train_cuts}: no cuts")
    if not first.has_features:
        raise FrugalError(f"--train-cuts {args.train_cuts}: cut {first.id} has no features (frugal compute-fbank)")
    lattices = None
    if args.supervision_lattices:
        lattices = select_lattices(read_supervision_lattices(args.supervision_lattices), train_cuts, valid_cuts,
                                   f"--train-cuts {args.train_cuts}")
    task = make_task(args.objective, args.lang, args.den_graph, sections["loss"], lattices, options)
    source = (f"--den-graph {args.den_graph}" if args.objective == "lfmmi"
              else f"the units of --lang {args.lang} (+ blank)")
    torch.manual_seed(train_config.seed)  # the initial weights (DDP gives every rank rank 0's anyway)
    model = build_model(sections["model"], first.num_features, task.output_dim, args.train_config, source)
    info = model.model_info()
    exp_dir = Path(args.exp_dir)
    if not args.start_fresh:
        check_resumable(exp_dir, info)
    if args.init_model:
        load_init_model(model, args.init_model, args.train_config)
    num_params = sum(p.numel() for p in model.parameters())
    distributed = init_process_group(train_config.device)
    trainer = Trainer(model, task, train_cuts, exp_dir, train_config, valid_cuts=valid_cuts, model_info=info)
    if trainer.dist.is_main:
        if args.start_fresh:
            remove_checkpoints(exp_dir)
        exp_dir.mkdir(parents=True, exist_ok=True)
        (exp_dir / "log").mkdir(exist_ok=True)
        handler = logging.FileHandler(exp_dir / "log" / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.info("frugal train: objective %s, %d training cuts (%.1f h), model %s with %.2f M parameters, "
                 "output dim %d, %d process(es)", args.objective, len(train_cuts),
                 sum(c.duration for c in train_cuts) / 3600, sections["model"].get("preset", sections["model"].get("type", "tdnnf")),
                 num_params / 1e6, task.output_dim, trainer.dist.world_size)
        if args.init_model:
            resumed = not args.start_fresh and ckpt.latest_checkpoint(exp_dir) is not None
            log.info("%s --init-model %s", "resuming from EXP_DIR's checkpoint, not from" if resumed
                     else "initial weights from", args.init_model)
        if lattices is not None:
            log_lattice_supervision(lattices, train_cuts, options)
        log.removeHandler(handler)
        handler.close()
    if trainer.dist.world_size > 1:
        dist.barrier()  # --start-fresh: nobody resumes from what rank 0 is deleting
    trainer.run()
    if distributed:
        check_ranks_agree(trainer.module)
        dist.destroy_process_group()
    if rank == 0:
        final = write_final(exp_dir, train_config.num_epochs, args.num_average,
                            {"objective": args.objective, "lang": str(args.lang),
                             "den_graph": str(args.den_graph) if args.den_graph else "",
                             "init_model": args.init_model or "",
                             "supervision_lattices": list(args.supervision_lattices or [])})
        log.info("wrote %s (average of the last %d epoch(s))", final, args.num_average)
    return 0
