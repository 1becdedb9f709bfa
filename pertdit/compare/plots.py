"""Bar charts of a comparison: per test set, each model's mean over seeds (± SD) of a per-sample and a
drug-level measure, with the replicate ceiling (solid line) and the reference baseline (dashed) marked."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pertdit.compare.report import measure_name  # noqa: E402
from pertdit.compare.summary import TEST_SET_ORDER, ordered  # noqa: E402


def _value(table: pd.DataFrame, column: str = "mean", **keys) -> float:
    mask = np.ones(len(table), dtype=bool)
    for key, value in keys.items():
        mask &= (table[key] == value).to_numpy()
    return float(table.loc[mask, column].iloc[0]) if mask.any() else float("nan")


def bar_chart(summary: pd.DataFrame, ceiling: pd.DataFrame, metric: str, labels: dict[str, str],
              reference: str, path: Path, groupings: tuple[str, ...] = ("per_sample", "drug")) -> Path:
    """One panel per (grouping, test set); one bar per model with a defined score; written to `path` (PNG)."""
    test_sets = ordered(summary["test_set"], TEST_SET_ORDER)
    scored = summary[(summary["metric"] == metric) & summary["mean"].notna()]
    models = [m for m in dict.fromkeys(summary["model"]) if m in set(scored["model"])]  # control: no PCC
    colors = plt.get_cmap("tab10")
    fig, axes = plt.subplots(len(groupings), len(test_sets), figsize=(3.2 * len(test_sets) + 2.6,
                                                                      3.0 * len(groupings)),
                             squeeze=False, sharey="row")
    x = np.arange(len(models))
    for row, grouping in enumerate(groupings):
        for col, test_set in enumerate(test_sets):
            ax = axes[row, col]
            keys = {"test_set": test_set, "metric": metric, "grouping": grouping}
            means = [_value(summary, model=m, **keys) for m in models]
            sds = [_value(summary, "sd", model=m, **keys) for m in models]
            ax.bar(x, means, yerr=[s if math.isfinite(s) else 0 for s in sds], capsize=2,
                   color=[colors(i % 10) for i in range(len(models))])
            limit = _value(ceiling, **keys)
            if math.isfinite(limit):
                ax.axhline(limit, color="black", lw=1.2, label="replicate ceiling")
            base = _value(summary, model=reference, **keys)
            if math.isfinite(base):
                ax.axhline(base, color="tab:red", lw=1.2, ls="--", label=reference)
            ax.axhline(0, color="grey", lw=0.5)
            ax.set_xticks(x, [labels[m] for m in models], rotation=60, ha="right", fontsize=7)
            if row == 0:
                ax.set_title(test_set)
            if col == 0:
                ax.set_ylabel(measure_name(metric, grouping))
    handles, names = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="upper right", fontsize=8)
    fig.suptitle(f"{measure_name(metric, 'per_sample').split()[0]}: mean ± SD over seeds", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=130, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path
