"""One trainer for every model and dataset, checkpoints, run folders."""
