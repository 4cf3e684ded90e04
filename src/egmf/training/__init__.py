"""One trainer for every model and dataset: the training step, the loop, checkpoints, logs, run folders."""
