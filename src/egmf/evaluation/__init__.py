"""Metrics exactly as papers report them, aggregation over seeds, result tables (one cell formatter), plots.

``plots`` is imported on demand (``from egmf.evaluation.plots import ...``) so that computing metrics
never pays for importing matplotlib.
"""

from egmf.evaluation.aggregate import (
    aggregate_seeds,
    flatten_metrics,
    format_cell,
    format_table,
    results_table,
    to_markdown,
    write_results_csv,
)
from egmf.evaluation.metrics import (
    MAIN_METRIC,
    MetricWarning,
    compute_metrics,
    erc_metrics,
    is_improvement,
    main_metric,
    mosi_metrics,
    pearson,
    sims_metrics,
)

__all__ = [
    "MAIN_METRIC",
    "MetricWarning",
    "aggregate_seeds",
    "compute_metrics",
    "erc_metrics",
    "flatten_metrics",
    "format_cell",
    "format_table",
    "is_improvement",
    "main_metric",
    "mosi_metrics",
    "pearson",
    "results_table",
    "sims_metrics",
    "to_markdown",
    "write_results_csv",
]
