"""Figure 2: CrossDiT, CatCrossDiT, PRnet and ChemCPA (and the mean_shift reference) compared on (a) the drug /
cell-line / both-unseen test sets and (b) PRnet's 5-fold random / drug / cell splits. Sweeps
pertdit/conf/experiment/figure2a.yaml and figure2b.yaml; bars of the 10 measures per split, mean +- SD over seeds
(a) or folds (b). At small scale (the shipped collection) the cell folds are named ones (split=named_cell_fold:
HT115, A375, ...; docs/experiments.md, "Figure 2b's cell folds")."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.captions import figure_caption
from experiments.plots import plot_bars

EXPERIMENTS = ["figure2a", "figure2b"]
#: fewer replicates at scale=small (the experiment files hold the paper's 3 seeds and 5 folds), one training per
#: (method, seed) scored on the three unseen test sets (split.test_set=all, the collection benchmark), cell folds
#: named on the collection (fold 0 HT115, fold 1 A375: pertdit/conf/scale/small.yaml, `scale.cell_folds`)
SMALL_OVERRIDES = {"figure2a": ["seed=0,1,2", "split.test_set=all"],
                   "figure2b": ["split=random_fold,drug_fold,named_cell_fold", "split.fold=0,1"]}
#: a method already trained by an earlier sweep of this figure is not trained again
REUSE_METHODS = False
METHODS = ["CrossDiT", "CatCrossDiT", "PRnet", "ChemCPA"]
TITLES = {"figure2a": "Figure 2a: unseen drugs / cell lines (mean +- SD over seeds)",
          "figure2b": "Figure 2b: PRnet 5-fold splits (mean +- SD over folds)"}


def plot(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """figure2a.{png,pdf} and figure2b.{png,pdf} from the experiments that have rows."""
    paths = []
    for experiment in EXPERIMENTS:
        rows = table[table["experiment"] == experiment]
        if len(rows):
            title = TITLES[experiment]
            replicates = "seed" if experiment == "figure2a" else "fold"
            if rows.groupby(["label", "split"])[replicates].nunique().max() == 1:  # nothing to take an SD over
                title = title.split(" (")[0] + f" (one {replicates})"
            paths += plot_bars(rows, Path(out_dir) / experiment, METHODS, title, figure_caption(rows))
    return paths
