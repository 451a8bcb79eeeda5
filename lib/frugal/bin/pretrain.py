"""Self-supervised pre-training of an encoder on untranscribed audio (thesis ch. 4): MAM or wav2vec 2.0.

  frugal pretrain mam --train-config conf/pretrain_mam.yaml --train-cuts A.jsonl.gz B.jsonl.gz \
      --exp-dir exp/mam

mam: the masked acoustic model (TERA) on fbank cuts: the L1 reconstruction of altered input
(time spans, a frequency block, noise; the ``loss`` section sets them, frugal.pretrain.mam).
wav2vec2: wav2vec 2.0 on raw-audio cuts (frugal compute-fbank --raw): the contrastive task
over Gumbel-quantised targets with the diversity loss and the feature penalty
(frugal.pretrain.wav2vec2).

The config has ``model`` (type mam or wav2vec2, a preset and options), ``train``
(frugal.train.TrainConfig) and ``loss`` sections. Transcripts are not read. Training is
frugal train's: checkpoints in EXP_DIR, a killed run resumes exactly where it stopped, the
losses every log_every_steps steps in EXP_DIR/log/train.log (frugal train-curve plots them),
the last --num-average epochs averaged into EXP_DIR/final.pt, which frugal train
--init-encoder fine-tunes.
"""
from __future__ import annotations

from frugal.pretrain import TASKS
from frugal.train import ObjectiveInputs
from frugal.train.run import TrainJob, train


def add_arguments(p) -> None:
    p.add_argument("task", choices=TASKS, help="the pre-training task")
    p.add_argument("--train-config", required=True, help="YAML with sections model, train and loss")
    p.add_argument("--train-cuts", required=True, nargs="+",
                   help="cut manifests with features (mam) or raw audio (wav2vec2); several are joined")
    p.add_argument("--valid-cuts", help="cuts whose loss is computed after every epoch")
    p.add_argument("--num-valid", type=int, default=0, help="hold out N random training cuts for validation")
    p.add_argument("--exp-dir", required=True, help="checkpoints, log/train.log and final.pt")
    p.add_argument("--num-average", type=int, default=1, help="average the last N epoch checkpoints into final.pt")
    p.add_argument("--start-fresh", action="store_true", help="delete EXP_DIR's checkpoints instead of resuming")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override the train section's device")
    p.add_argument("--num-threads", type=int, default=0, help="torch CPU threads per process (0: torch's choice)")


def run(a) -> None:
    train(TrainJob(a.train_config, a.train_cuts, a.exp_dir, ObjectiveInputs(""), a.task, a.valid_cuts, a.num_valid,
                   a.num_average, a.start_fresh, a.device, a.num_threads))
