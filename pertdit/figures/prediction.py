"""The picture of one prediction (`pertdit predict`): the top up- and down-regulated genes with the spread of
the samples, against the control.

Two panels (up, down), one column per gene ordered by the mean lnFC; each sample's lnFC (sample - control,
log scale) is a dot, with a box over the samples and the central 90 % interval of a Gaussian fit to them
(a bar beside the box, docs/calibration.md) when there are several; the control is the zero line. A
deterministic model gives one dot per gene. Built with `matplotlib.figure.Figure` (no display needed).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import anndata as ad
import numpy as np
from matplotlib.figure import Figure


def top_genes(pred: ad.AnnData, k: int) -> tuple[list[int], list[int]]:
    """Column indices of the `k` most up- and the `k` most down-regulated genes by mean lnFC (var["lnfc"])."""
    order = np.argsort(-pred.var["lnfc"].to_numpy(), kind="stable")
    k = min(k, pred.n_vars // 2)
    return list(order[:k]), list(order[::-1][:k])


def sample_lnfc(pred: ad.AnnData) -> np.ndarray:
    """(N, G) lnFC of every sample: X - the control (layers["control"])."""
    return np.asarray(pred.X, dtype=np.float64) - np.asarray(pred.layers["control"], dtype=np.float64)


def plot_prediction(pred: ad.AnnData, out: str | Path, k: int = 10, dpi: int = 150) -> Path:
    """Write the PNG described in the module doc to `out` (suffix .png); returns its path."""
    up, down = top_genes(pred, k)
    lnfc = sample_lnfc(pred)
    genes = pred.var_names.astype(str)
    meta = pred.uns.get("pertdit", {})
    obs = pred.obs.iloc[0]
    fig = Figure(figsize=(max(6.0, 0.45 * 2 * len(up) + 1.5), 4.6))
    axes = fig.subplots(1, 2, sharey=False)
    rng = np.random.default_rng(0)  # horizontal jitter of the dots only
    for ax, columns, title, color in ((axes[0], up, "up-regulated", "#b2182b"),
                                      (axes[1], down, "down-regulated", "#2166ac")):
        data = [lnfc[:, c] for c in columns]
        positions = np.arange(len(columns))
        if pred.n_obs > 1:
            ax.boxplot(data, positions=positions, widths=0.6, showfliers=False,
                       medianprops={"color": "black"}, boxprops={"color": "0.4"},
                       whiskerprops={"color": "0.4"}, capprops={"color": "0.4"})
        if "interval_90_lower" in pred.var:  # the central 90 % interval of a Gaussian fit to the samples
            control = pred.var["control"].to_numpy()
            lower = pred.var["interval_90_lower"].to_numpy()[columns] - control[columns]
            upper = pred.var["interval_90_upper"].to_numpy()[columns] - control[columns]
            ax.vlines(positions + 0.38, lower, upper, color=color, linewidth=2.5, alpha=0.45,
                      label="central 90 % interval")
        for x, values in zip(positions, data):
            jitter = rng.uniform(-0.15, 0.15, size=values.size) if values.size > 1 else np.zeros(1)
            ax.scatter(x + jitter, values, s=10, color=color, alpha=0.7, zorder=3)
        ax.axhline(0.0, color="0.2", linewidth=1.0, linestyle="--", label="control")
        ax.set_xticks(positions)
        ax.set_xticklabels([genes[c] for c in columns], rotation=60, ha="right", fontsize=8)
        ax.set_title(f"top {len(columns)} {title}", fontsize=10)
        ax.set_ylabel("lnFC = sample - control (log scale)" if ax is axes[0] else "")
        ax.legend(loc="best", fontsize=7, frameon=False)
    spread = f"{pred.n_obs} samples" if pred.n_obs > 1 else "1 prediction (deterministic)"
    dose = float(obs.get("dose", np.nan))
    control = textwrap.fill(f"control: {meta.get('control', '')}", 140)
    fig.suptitle(f"{meta.get('model', 'model')}: {obs.get('smiles', '')} at {dose:g} µM in "
                 f"{obs.get('cell_id', '')} ({spread})\n{control}", fontsize=8)
    out = Path(out).with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, bbox_inches="tight")
    return out
