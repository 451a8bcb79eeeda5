"""Self-supervised pre-training tasks (thesis ch. 4), objectives of the generic trainer:
``mam`` (masked acoustic model, TERA) and ``wav2vec2`` (contrastive, quantised targets)."""
from frugal.pretrain import mam, wav2vec2  # noqa: F401  (they register their objectives)

TASKS = ("mam", "wav2vec2")
