"""Figure S3: the dosage ablation, CatCrossDiT on text tokens with the dose prompt minus without it, as a
difference heatmap per measure and test set. Sweeps pertdit/conf/experiment/figureS3.yaml."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.captions import figure_caption
from experiments.plots import Comparison, plot_difference_heatmaps

EXPERIMENTS = ["figureS3"]
SMALL_OVERRIDES = {"figureS3": ["seed=0", "split.test_set=all"]}  # one training scored on the three test sets
REUSE_METHODS = False
COMPARISONS = [Comparison("figureS3", "with vs without dosage (CatCrossDiT)", "perturbation", "text",
                          "text_wo_dosage")]


def plot(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """figureS3.{png,pdf}."""
    return plot_difference_heatmaps(table, COMPARISONS, Path(out_dir) / "figureS3",
                                    "Figure S3: with - without dose prompt (mean over the seeds both ran)",
                                    figure_caption(table))
