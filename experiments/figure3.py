"""Figure 3: structure ablations, each a difference heatmap Structure1 - Structure2 of the 10 measures per
test set (means over seeds): (a) text vs RDKit representation (AdaDiT-text - AdaDiT-RDKit), (b)
cross-attention vs AdaLN conditioning (CatCrossDiT - AdaDiT-text), (c) self-attention present vs absent
(CatCrossDiT - CatonlyCrossDiT), (d) control by cross-attention vs concatenation (CrossDiT - CatCrossDiT).
Sweeps pertdit/conf/experiment/figure3{a,b,c,d}.yaml."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.captions import figure_caption
from experiments.plots import Comparison, plot_difference_heatmaps

#: run order: with REUSE_METHODS, CatCrossDiT (in b, c, d) and AdaDiT-text (in a, b) are trained once
EXPERIMENTS = ["figure3d", "figure3c", "figure3b", "figure3a"]
#: seed 0, one training per method scored on the three unseen test sets (the collection benchmark)
SMALL_OVERRIDES = {name: ["seed=0", "split.test_set=all"] for name in EXPERIMENTS}
REUSE_METHODS = True
COMPARISONS = [
    Comparison("figure3a", "a: text vs RDKit", "method", "adadit_text", "adadit_rdkit"),
    Comparison("figure3b", "b: cross-attention vs AdaLN", "method", "catcrossdit", "adadit_text"),
    Comparison("figure3c", "c: with vs without self-attention", "method", "catcrossdit", "catonlycrossdit"),
    Comparison("figure3d", "d: CrossDiT vs CatCrossDiT", "method", "crossdit", "catcrossdit"),
]


def plot(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """figure3.{png,pdf}: the four heatmaps side by side."""
    return plot_difference_heatmaps(table, COMPARISONS, Path(out_dir) / "figure3",
                                    "Figure 3: Structure1 - Structure2 (mean over the seeds both ran)",
                                    figure_caption(table))
