"""The 10 measures (R2 and PCC(lnFC) x 5 groupings): numpy, a torchmetrics Metric, PRED.h5ad scoring, and the
replicate ceiling."""

from pertdit.metrics.evaluate import (
    evaluate_h5ad,
    evaluate_prediction,
    format_table,
    read_prediction,
    write_metrics_csv,
)
from pertdit.metrics.measures import (
    GROUPINGS,
    METRICS,
    compute_measures,
    group_keys,
    group_means,
    pearson_rows,
    r2_rows,
)
from pertdit.metrics.replicates import CEILING_COLUMNS, replicate_ceiling, replicate_group_keys
from pertdit.metrics.torchmetric import PerturbationMetrics

__all__ = [
    "CEILING_COLUMNS",
    "GROUPINGS",
    "METRICS",
    "PerturbationMetrics",
    "compute_measures",
    "evaluate_h5ad",
    "evaluate_prediction",
    "format_table",
    "group_keys",
    "group_means",
    "pearson_rows",
    "r2_rows",
    "read_prediction",
    "replicate_ceiling",
    "replicate_group_keys",
    "write_metrics_csv",
]
