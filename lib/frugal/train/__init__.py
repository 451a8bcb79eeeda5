"""Training: the generic trainer, checkpoints, averaging, schedules, datasets."""
