"""Train an acoustic model (TDNN-F or transformer) with flat-start LF-MMI or CTC, or a transducer; the averaged model is EXP_DIR/final.pt.

The model is built from the ``model`` section of --train-config (feat_dim from the
features, the output size from the den graph's pdfs for LF-MMI or from the units of
--lang for CTC), trained with frugal.train.Trainer under the ``train`` section, and the
last --num-average epoch checkpoints are averaged into EXP_DIR/final.pt. An optional
``loss`` section sets LF-MMI's leaky_hmm_coefficient, l2_regularize and xent_regularize.

Transducers (--objective transducer): a model section of ``type: transducer`` (an
``encoder`` section and the predictor/joiner sizes), the tokens of a frugal prepare-units
--lang, the pruned RNN-T loss with icefall's warm-up (``loss``: simple_loss_scale,
lm_scale, am_scale, prune_range, warm_step), or the full loss with --rnnt-loss full.

Semi-supervised LF-MMI (Kaldi's chain semi-supervised recipe, Manohar et al. 2018):
--init-model starts from a seed model's weights (with a new optimiser and schedule), and
--supervision-lattices gives lattices (decode directories of the unsupervised cuts, or
the supervision lattices of frugal make-supervision) keyed by cut id: a cut that has one
is supervised by its lattice, every other cut by its transcript. --frame-weights scales
each frame's gradient by the lattice posterior of its best-path label, --unsup-weight each
lattice cut's gradient. Decode lattices hold acoustic costs x 10 (post_decode_acwt), hence
--lattice-acoustic-scale 0.1.

Fine-tuning a pre-trained encoder (thesis ch. 4): --init-encoder CHECKPOINT (final.pt of
frugal pretrain) with a model section of ``type: pretrained``: its head (``head_type: tdnnf``
with TDNN-F options for LF-MMI, or ``linear`` for CTC) on the checkpoint's encoder;
--encoder-mode frozen keeps the encoder fixed (the thesis's FE setting), finetune trains both,
the encoder at ``encoder_lr_scale`` times the head's learning rate (train section).

A run that finds checkpoints in EXP_DIR resumes from the newest (the same command finishes
an interrupted run); --start-fresh deletes them first. Under ``torchrun --nproc_per_node N``
the same command trains with N processes (DDP; gloo on CPU). Progress, loss components
(per frame, at the output frame rate) and frames/s go to EXP_DIR/log/train.log.
"""
from __future__ import annotations

from frugal.train import OBJECTIVES, ObjectiveInputs
from frugal.train.lfmmi import LatticeSupervisionOptions as L
from frugal.train.run import TrainJob, train


def add_arguments(p) -> None:
    p.add_argument("--train-config", required=True,
                   help="YAML with sections model (type: tdnnf (default) or transformer, and its options, e.g. "
                        "preset: tdnnf-small), train (frugal.train.TrainConfig) and optionally loss")
    p.add_argument("--train-cuts", required=True, help="lhotse cuts with features (and transcripts)")
    p.add_argument("--valid-cuts", help="cuts whose objective is computed after every epoch")
    p.add_argument("--num-valid", type=int, default=0,
                   help="hold out N random cuts of --train-cuts as the validation set instead (Kaldi's held-out "
                        "subset: with LF-MMI their transcripts are in the den graph's phone LM)")
    p.add_argument("--lang", required=True, help="lang directory: the lexicon of the numerators (LF-MMI) or the "
                                                 "CTC units (phones of prepare-lang, or a prepare-units directory)")
    p.add_argument("--exp-dir", required=True, help="checkpoints, log/train.log and final.pt")
    p.add_argument("--objective", choices=sorted(OBJECTIVES), default="lfmmi")
    p.add_argument("--den-graph", help="den.pt of frugal make-den-graph (LF-MMI)")
    p.add_argument("--rnnt-loss", choices=["pruned", "full"],
                   help="transducer: the pruned RNN-T loss with the simple loss (default) or the full RNN-T loss")
    p.add_argument("--num-average", type=int, default=1,
                   help="average the last N epoch checkpoints into final.pt (default 1: the last)")
    p.add_argument("--start-fresh", action="store_true", help="delete EXP_DIR's checkpoints instead of resuming")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override the train section's device")
    p.add_argument("--num-threads", type=int, default=0,
                   help="torch CPU threads per process (default 0: torch's choice); 1 is steadiest when other "
                        "work shares the cores")
    f = p.add_argument_group("fine-tuning a pre-trained encoder")
    f.add_argument("--init-encoder", metavar="CKPT", help="the encoder of this frugal pretrain checkpoint (or of a "
                   "fine-tuned model) under the head of the config's model section (type: pretrained)")
    f.add_argument("--encoder-mode", choices=["finetune", "frozen"],
                   help="train the encoder with the head, or keep it fixed (overrides the config's encoder_mode)")
    s = p.add_argument_group("semi-supervised training")
    s.add_argument("--init-model", metavar="CKPT", help="start from this checkpoint's weights (e.g. the seed's "
                   "final.pt; its model must be the one --train-config describes), with a new optimiser")
    s.add_argument("--supervision-lattices", nargs="+", default=[], metavar="PATH",
                   help="lattice files or decode directories keyed by cut id: those cuts are supervised by "
                        "their lattice (LF-MMI)")
    s.add_argument("--lattice-lm-scale", type=float, default=L.lattice_lm_scale,
                   help="scale of the lattices' graph costs in the numerators (default: %(default)s)")
    s.add_argument("--lattice-prune-beam", type=float, default=L.prune_beam,
                   help="prune the lattices with this beam first (default: %(default)s; 0: no pruning)")
    s.add_argument("--lattice-acoustic-scale", type=float, default=L.acoustic_scale,
                   help="scale of the lattices' acoustic costs for pruning and posteriors (default: %(default)s)")
    s.add_argument("--frame-weights", action="store_true", help="weigh each frame's gradient of a lattice cut "
                   "by the lattice posterior of the best path's label there (Kaldi's best-path deriv weights)")
    s.add_argument("--unsup-weight", type=float, default=1.0,
                   help="scale of the gradient of lattice-supervised cuts (default: %(default)s)")


def run(a) -> None:
    lattice_options = dict(lattice_lm_scale=a.lattice_lm_scale, prune_beam=a.lattice_prune_beam or None,
                           acoustic_scale=a.lattice_acoustic_scale, frame_weights=a.frame_weights,
                           weight=a.unsup_weight)
    inputs = ObjectiveInputs(a.lang, a.den_graph, supervision_lattices=a.supervision_lattices,
                             lattice_options=lattice_options, rnnt_loss=a.rnnt_loss)
    train(TrainJob(a.train_config, a.train_cuts, a.exp_dir, inputs, a.objective, a.valid_cuts, a.num_valid,
                   a.num_average, a.start_fresh, a.device, a.num_threads, a.init_model, a.init_encoder,
                   a.encoder_mode))
