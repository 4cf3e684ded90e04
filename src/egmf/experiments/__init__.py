"""Experiments: runs composed out of training and evaluation (the top layer below the CLI).

``run`` (one config, its seeds, one run folder) returns a ``result.RunResult``; ``ablation`` and ``transfer``
are runs of runs, each writing one table. Import the modules themselves (``from egmf.experiments.run import
run``): they load torch and the trainer.
"""
