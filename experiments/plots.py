"""Figures from the tidy table of `experiments.collect`: bar plots of the 10 measures (Figure 2) and
difference heatmaps Structure1 - Structure2 (Figure 3). Each figure is written as PNG and PDF."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

GROUPINGS = ["per_sample", "cov_drug_dose", "cov_drug", "drug_dose", "drug"]
METRICS = {"r2": "R2", "pcc_lnfc": "PCC(lnFC)"}
SPLIT_ORDER = ["drug_unseen", "cell_line_unseen", "both_unseen", "random_fold", "drug_fold", "cell_fold"]
SPLIT_TITLES = {"drug_unseen": "Drug unseen", "cell_line_unseen": "Cell line unseen",
                "both_unseen": "Both unseen",
                "random_fold": "Random (5-fold)", "drug_fold": "Unseen drug (5-fold)",
                "cell_fold": "Unseen cell (5-fold)"}
#: R2 axes stop here; bars below are drawn to the edge and labelled with their value
R2_FLOOR = -1.0
FORMATS = ("png", "pdf")
#: reference methods: drawn after the compared methods, grey and hatched
REFERENCES = ("mean_shift",)
#: characters per caption line
CAPTION_WIDTH = 150


def ordered_splits(splits: Sequence[str]) -> list[str]:
    """The splits in the paper's order (organ and unknown ones after, alphabetically)."""
    known = [s for s in SPLIT_ORDER if s in set(splits)]
    return known + sorted(set(splits) - set(SPLIT_ORDER))


def split_title(split: str, split_names: Sequence[str] = ()) -> str:
    """A panel title for a split family; named cell folds (split_name `cell_fold<k> (<cells>)`) list their
    cell lines."""
    named = [n.split("(", 1)[1].rstrip(")") for n in sorted(split_names) if "(" in str(n)]
    if split == "cell_fold" and named:
        return "Unseen cell line: " + "; ".join(named)
    return SPLIT_TITLES.get(split, split.replace("organ_", "Organ: ").replace("_", " "))


def representation_caption(table: pd.DataFrame) -> str:
    """Which text encoder and describer produced the text-based rows of `table` (the tidy table's
    `text_encoder` / `describer` columns), and which rows use the RDKit fingerprint."""
    if "text_encoder" not in table.columns:
        return ""
    lines = []
    text = table[table["text_encoder"].fillna("").astype(str) != ""]
    for (encoder, describer), rows in text.groupby(["text_encoder", "describer"], sort=False):
        labels = ", ".join(dict.fromkeys(rows["label"]))
        lines.append(f"Text-based rows ({labels}): text encoder {encoder}; descriptions: {describer}.")
    other = table[(table["text_encoder"].fillna("").astype(str) == "")
                  & ~table["label"].isin(REFERENCES)]
    if len(other) and len(text):
        lines.append(f"{', '.join(dict.fromkeys(other['label']))}: the RDKit fingerprint (FCFP4 x log10(dose + 1)).")
    return " ".join(lines)


def add_caption(fig: plt.Figure, caption: str | None) -> None:
    """Write `caption` under the figure, wrapped (saved with bbox_inches="tight", so it is kept)."""
    if caption:
        wrapped = "\n".join(textwrap.wrap(caption, CAPTION_WIDTH))
        fig.text(0.01, -0.03, wrapped, fontsize=7, ha="left", va="top")


def summarize(table: pd.DataFrame, by: Sequence[str] = ("label", "split")) -> pd.DataFrame:
    """Mean, SD (ddof 1) and count over replicates (folds, seeds) of each measure's `mean`, per `by`."""
    keys = [*by, "metric", "grouping"]
    stats = table.groupby(keys, sort=False)["mean"].agg(value="mean", sd="std", n="count").reset_index()
    return stats


def save(fig: plt.Figure, stem: Path) -> list[Path]:
    """Write `fig` as `stem`.png and `stem`.pdf, close it; returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(f".{fmt}") for fmt in FORMATS]
    for path in paths:
        fig.savefig(path, bbox_inches="tight", dpi=150)
    plt.close(fig)
    return paths


def plot_bars(table: pd.DataFrame, stem: Path, methods: Sequence[str] | None = None,
              title: str | None = None, caption: str | None = None) -> list[Path]:
    """`bar_figure` written to `stem`.png and `stem`.pdf; returns the two paths."""
    return save(bar_figure(table, methods, title, caption), stem)


def bar_figure(table: pd.DataFrame, methods: Sequence[str] | None = None,
               title: str | None = None, caption: str | None = None) -> plt.Figure:
    """Figure 2: one panel per (measure, split), rows R2 and PCC(lnFC), columns the splits that ran; in each
    panel the 5 groupings on x, one bar per method (`label`, in the order of `methods`; reference methods such
    as mean_shift last, grey and hatched), height the mean over folds/seeds, error bar +- SD; `caption` under
    the panels."""
    if table.empty:
        raise ValueError("no rows to plot")
    stats = summarize(table)
    splits = ordered_splits(stats["split"].unique())
    present = set(stats["label"])
    methods = [m for m in (methods or []) if m in present] or [m for m in dict.fromkeys(stats["label"])
                                                                 if m not in REFERENCES]
    methods = [m for m in methods if m not in REFERENCES] + [m for m in REFERENCES if m in present]
    palette = plt.get_cmap("tab10")

    def style(k: int, method: str) -> dict:
        if method in REFERENCES:
            return {"color": "0.75", "hatch": "///", "edgecolor": "0.35", "linewidth": 0.5}
        return {"color": palette(k % 10)}

    fig, axes = plt.subplots(len(METRICS), len(splits), figsize=(3.6 * len(splits) + 0.8, 6.4), squeeze=False,
                             sharey="row")
    width = 0.8 / len(methods)
    x = np.arange(len(GROUPINGS))
    for col, split in enumerate(splits):
        for row, (metric, metric_title) in enumerate(METRICS.items()):
            ax = axes[row, col]
            sub = stats[(stats["split"] == split) & (stats["metric"] == metric)]
            for k, method in enumerate(methods):
                values = sub[sub["label"] == method].set_index("grouping").reindex(GROUPINGS)
                offset = x - 0.4 + width * (k + 0.5)
                height = values["value"].to_numpy(float)
                clipped = (height < R2_FLOOR) if metric == "r2" else np.zeros(len(height), bool)
                shown = np.where(clipped, R2_FLOOR, height)
                sd = values["sd"].to_numpy(float)  # NaN with one replicate: no error bar is drawn
                sd = np.where(clipped, np.nan, sd)
                label = (f"{method} (reference)" if method in REFERENCES else method) if (row, col) == (0, 0) \
                    else None
                errors = ({"yerr": sd, "capsize": 2, "error_kw": {"elinewidth": 0.8}} if np.isfinite(sd).any()
                          else {})
                ax.bar(offset, shown, width, label=label, **errors, **style(k, method))
                for xi, h in zip(offset[clipped], height[clipped]):  # off the axis: say the value
                    ax.annotate(f"{h:.3g}", (xi, 0), xytext=(0, -3), textcoords="offset points", rotation=90,
                                fontsize=6, ha="center", va="top")
            n = int(sub["n"].max()) if len(sub) else 0
            names = table.loc[table["split"] == split, "split_name"].dropna().astype(str).unique()
            ax.set_title(f"{split_title(split, names)} (n={n})" if row == 0 else "", fontsize=9)
            ax.set_xticks(x, GROUPINGS if row == len(METRICS) - 1 else [""] * len(GROUPINGS), rotation=35,
                          ha="right", fontsize=8)
            ax.axhline(0, color="black", linewidth=0.6)
            if metric == "r2":
                ax.set_ylim(bottom=max(min(0.0, float(np.nanmin(sub["value"] - sub["sd"].fillna(0)))
                                           if len(sub) else 0.0), R2_FLOOR) - 0.05, top=1.0)
            if col == 0:
                ax.set_ylabel(metric_title)
    fig.legend(loc="upper center", ncol=len(methods), frameon=False, bbox_to_anchor=(0.5, 1.02))
    if (stats.loc[stats["metric"] == "r2", "value"] < R2_FLOOR).any():
        note = f"R2 below {R2_FLOOR:g} is drawn to {R2_FLOOR:g}; its value is written on the bar."
        caption = f"{caption} {note}" if caption else note
    if title:
        fig.suptitle(title, y=1.07)
    fig.tight_layout()
    add_caption(fig, caption)
    return fig


@dataclass(frozen=True)
class Comparison:
    """One heatmap: rows whose `column` is `first` minus rows whose `column` is `second` (Structure1 -
    Structure2), from `experiment` (or from any experiment when that one lacks them)."""

    experiment: str
    title: str
    column: str
    first: str
    second: str


def difference_matrix(table: pd.DataFrame, comparison: Comparison) -> pd.DataFrame:
    """(5 groupings) x (metric x split) of mean(first) - mean(second), paired: means over the seeds/folds that
    both sides ran (a side reused from a sweep with more seeds is not averaged over seeds the other lacks);
    columns are "R2 <split>" and "PCC(lnFC) <split>" for the splits where both sides ran."""
    def side(value: str) -> pd.DataFrame:
        rows = table[table[comparison.column] == value]
        own = rows[rows["experiment"] == comparison.experiment]
        return own if len(own) else rows

    first, second = side(comparison.first), side(comparison.second)
    replicate = [c for c in ("split", "seed", "fold") if c in table.columns]
    common = first[replicate].drop_duplicates().merge(second[replicate].drop_duplicates())
    means = [rows.merge(common).groupby(["metric", "split", "grouping"])["mean"].mean()
             for rows in (first, second)]
    diff = (means[0] - means[1]).dropna()
    splits = ordered_splits(diff.index.get_level_values("split").unique())
    columns = {f"{METRICS[m]} {split_title(s)}": (m, s) for m in METRICS for s in splits}
    matrix = pd.DataFrame(index=GROUPINGS, columns=list(columns), dtype=float)
    for name, (metric, split) in columns.items():
        for grouping in GROUPINGS:
            matrix.loc[grouping, name] = diff.get((metric, split, grouping), np.nan)
    return matrix


def _scaled_per_metric(matrix: pd.DataFrame) -> np.ndarray:
    """Colour values: each difference over the largest |difference| of its measure (R2 or PCC) in the panel,
    so PCC differences stay visible next to large R2 ones; the cells print the differences themselves."""
    values = matrix.to_numpy(float)
    scaled = np.full_like(values, np.nan)
    for metric_title in METRICS.values():
        columns = [j for j, name in enumerate(matrix.columns) if name.startswith(metric_title + " ")]
        block = values[:, columns]
        largest = float(np.nanmax(np.abs(block))) if np.isfinite(block).any() else 0.0
        scaled[:, columns] = block / largest if largest > 0 else 0.0
    return scaled


def plot_difference_heatmaps(table: pd.DataFrame, comparisons: Sequence[Comparison], stem: Path,
                             title: str | None = None, caption: str | None = None) -> list[Path]:
    """`heatmap_figure` written to `stem`.png and `stem`.pdf; returns the two paths."""
    return save(heatmap_figure(table, comparisons, title, caption), stem)


def heatmap_figure(table: pd.DataFrame, comparisons: Sequence[Comparison],
                   title: str | None = None, caption: str | None = None) -> plt.Figure:
    """Figure 3: one heatmap per comparison (rows the 5 groupings, columns R2/PCC x split, cells print
    Structure1 - Structure2; red = Structure1 higher, colour scaled per measure within a panel); panels
    without data say so; `caption` under the panels."""
    matrices = [difference_matrix(table, c) for c in comparisons]
    labels = dict(zip(table["method"], table["label"])) if {"method", "label"} <= set(table.columns) else {}
    widths = [max(m.shape[1], 1) for m in matrices]
    fig, axes = plt.subplots(1, len(comparisons), figsize=(sum(widths) * 1.1 + 2.2 * len(comparisons), 3.6),
                             squeeze=False, gridspec_kw={"width_ratios": widths})
    for ax, comparison, matrix in zip(axes[0], comparisons, matrices):
        first, second = (labels.get(v, v) if comparison.column == "method" else v
                         for v in (comparison.first, comparison.second))
        ax.set_title(f"{comparison.title}\n{first} - {second}", fontsize=9)
        if matrix.empty or matrix.isna().all().all():
            ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        values = matrix.to_numpy(float)
        image = ax.imshow(_scaled_per_metric(matrix), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=7,
                        color="white" if abs(image.get_array()[i, j]) > 0.6 else "black")
        ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=35, ha="right", fontsize=8)
        ax.set_yticks(range(len(GROUPINGS)), GROUPINGS, fontsize=8)
        bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03, ticks=[-1, 0, 1])
        bar.ax.set_yticklabels(["-max", "0", "+max"], fontsize=7)
    if title:
        fig.suptitle(title, y=1.05)
    fig.tight_layout()
    add_caption(fig, caption)
    return fig
