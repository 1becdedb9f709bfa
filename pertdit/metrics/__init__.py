"""The 10 measures (R2 and PCC(lnFC) x 5 groupings): numpy, a torchmetrics Metric, PRED.h5ad scoring."""

from pertdit.metrics.evaluate import evaluate_h5ad, format_table, read_prediction, write_metrics_csv
from pertdit.metrics.measures import (
    GROUPINGS,
    METRICS,
    compute_measures,
    group_keys,
    group_means,
    pearson_rows,
    r2_rows,
)
from pertdit.metrics.torchmetric import PerturbationMetrics

__all__ = [
    "GROUPINGS",
    "METRICS",
    "PerturbationMetrics",
    "compute_measures",
    "evaluate_h5ad",
    "format_table",
    "group_keys",
    "group_means",
    "pearson_rows",
    "r2_rows",
    "read_prediction",
    "write_metrics_csv",
]
