"""DEG case study plots (figure 4A): a box plot per method of the per-drug DEG PCCs, and a drug x gene
heatmap of true vs predicted lnFC on the drugs' top DEGs. Each plot is written as PNG and PDF.

Figures are built with `matplotlib.figure.Figure` (no pyplot, no display needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pertdit.metrics.deg import PairedTest, drug_lnfc


def save_figure(fig: Figure, out: str | Path, dpi: int = 200) -> list[Path]:
    """Write `fig` as `<out>.png` and `<out>.pdf` (any suffix of `out` is replaced); returns both paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".png"), out.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return paths


def deg_pcc_boxplot(tables: Mapping[str, pd.DataFrame | Sequence[float]], out: str | Path,
                    column: str = "pcc", test: PairedTest | None = None,
                    title: str = "PCC(lnFC) on the top DEGs per drug") -> list[Path]:
    """Box plot per method (the mapping's order) of its per-drug values, each drug a dot; the paired t-test
    of the first two methods, when given, in the title. Returns the PNG and PDF paths."""
    names = list(tables)
    values = [np.asarray(t[column] if isinstance(t, pd.DataFrame) else t, dtype=float)
              for t in tables.values()]
    values = [v[np.isfinite(v)] for v in values]
    fig = Figure(figsize=(1.2 + 1.1 * len(names), 3.6))
    ax = fig.add_subplot()
    ax.boxplot(values, showfliers=False, widths=0.6, medianprops={"color": "black"})
    ax.set_xticks(range(1, len(names) + 1), names, rotation=30 if len(names) > 3 else 0, ha="right"
                  if len(names) > 3 else "center")
    jitter = np.random.default_rng(0)
    for i, v in enumerate(values, start=1):
        ax.scatter(i + jitter.uniform(-0.15, 0.15, len(v)), v, s=12, alpha=0.7, zorder=3)
    ax.set_ylabel(f"{column} per drug")
    if test is not None and len(names) >= 2:
        title = (f"{title}\n{names[0]} vs {names[1]}: paired t = {test.statistic:.2f}, "
                 f"p = {test.pvalue:.2g} (n = {test.n})")
    ax.set_title(title, fontsize=9)
    ax.axhline(0.0, color="grey", lw=0.5, ls=":")
    return save_figure(fig, out)


def deg_lnfc_heatmap(pred: ad.AnnData, degs: pd.DataFrame, out: str | Path,
                     drugs: Sequence[str] | None = None, genes_per_drug: int = 10,
                     groupby: str = "drug") -> list[Path]:
    """Two drug x gene panels, true and predicted lnFC, on the union of each drug's top `genes_per_drug`
    DEGs (half up, half down, strongest first), on one symmetric colour scale; a dot marks a gene that is
    a DEG (of any rank) of the row's drug. Returns PNG and PDF paths."""
    truth = drug_lnfc(pred, "truth", groupby)
    predicted = drug_lnfc(pred, "pred", groupby)
    drugs = [d for d in (drugs or list(dict.fromkeys(degs["drug"].astype(str)))) if d in truth.index]
    if not drugs:
        raise ValueError("none of the drugs to plot has predictions")
    half = max(genes_per_drug // 2, 1)
    picked = degs[degs["drug"].astype(str).isin(drugs) & (degs["rank"] <= half)]
    picked = picked.assign(order=picked["drug"].astype(str).map({d: i for i, d in enumerate(drugs)}))
    genes = list(dict.fromkeys(picked.sort_values(["order", "direction", "rank"],
                                                  ascending=[True, False, True])["gene"].astype(str)))
    panels = {"true lnFC": truth.loc[drugs, genes].to_numpy(),
              "predicted lnFC": predicted.loc[drugs, genes].to_numpy()}
    column = {g: j for j, g in enumerate(genes)}
    # a dot marks a DEG of the row's drug
    own = degs.assign(drug=degs["drug"].astype(str), gene=degs["gene"].astype(str))
    dots = np.array([(i, column[g]) for i, d in enumerate(drugs)
                     for g in own.loc[own["drug"] == d, "gene"] if g in column]).reshape(-1, 2)
    limit = max(float(np.nanmax(np.abs(m))) for m in panels.values()) or 1.0
    fig = Figure(figsize=(min(2.0 + 0.16 * len(genes), 24), 1.4 + 2 * (0.3 * len(drugs) + 0.6)))
    axes = fig.subplots(2, 1, sharex=True)
    for ax, (label, matrix) in zip(axes, panels.items()):
        image = ax.imshow(matrix, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                          interpolation="nearest")
        ax.set_yticks(range(len(drugs)), drugs, fontsize=7)
        ax.set_title(label, fontsize=9)
        ax.scatter(dots[:, 1], dots[:, 0], s=3, c="black", marker=".", linewidths=0)
    axes[-1].set_xticks(range(len(genes)), genes, rotation=90, fontsize=6)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="lnFC vs control")
    return save_figure(fig, out)
