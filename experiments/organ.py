"""Organ hold-out: every cell line of one organ (lung, kidney, pancreas) unseen in training; the methods of
Figure 2 as bars of the 10 measures per organ, mean +- SD over seeds. Sweeps
pertdit/conf/experiment/organ_holdout.yaml; needs data with several organs' cell lines (full L1000)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.figure2 import METHODS
from experiments.plots import plot_bars

EXPERIMENTS = ["organ_holdout"]
SMALL_OVERRIDES = {"organ_holdout": ["seed=0"]}
REUSE_METHODS = False


def plot(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """organ_holdout.{png,pdf}."""
    rows = table[table["experiment"] == "organ_holdout"]
    return plot_bars(rows, Path(out_dir) / "organ_holdout", METHODS,
                     "Organ hold-out (mean +- SD over seeds)") if len(rows) else []
