"""Score a PRED.h5ad (DESIGN.md, "Evaluation contract") and write / print the measures table."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
from anndata.io import read_elem
from scipy import sparse

from pertdit.errors import DataError
from pertdit.metrics.accumulate import MeasureAccumulator
from pertdit.metrics.measures import GROUPINGS, METRICS, _validate, compute_measures
from pertdit.metrics.replicates import replicate_ceiling, replicate_group_keys, with_replicate_ceiling

PRED_LAYERS: tuple[str, ...] = ("truth", "control")
PRED_OBS: tuple[str, ...] = ("cell_id", "drug", "dose")


def read_prediction(path: str | Path) -> ad.AnnData:
    """Read a PRED.h5ad, checking X (predictions), layers truth/control and obs cell_id/drug/dose."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"prediction file {path} does not exist")
    adata = ad.read_h5ad(path)
    if adata.X is None:
        raise DataError(f"{path}: X (the predictions) is missing")
    for layer in PRED_LAYERS:
        if layer not in adata.layers:
            raise DataError(
                f"{path}: layers['{layer}'] is missing (a PRED.h5ad needs layers {list(PRED_LAYERS)}, "
                f"has {list(adata.layers.keys())})"
            )
    missing = [c for c in PRED_OBS if c not in adata.obs.columns]
    if missing:
        raise DataError(
            f"{path}: obs column(s) {missing} missing (a PRED.h5ad needs obs {list(PRED_OBS)}, "
            f"has {list(adata.obs.columns)})"
        )
    return adata


def evaluate_h5ad(
    path: str | Path, relu: bool | None = None, control_reference: str = "paired", ceiling: bool = True,
    block_rows: int = 8192,
) -> pd.DataFrame:
    """The measures table of a PRED.h5ad; `relu=None` follows `uns["pertdit"]["relu_predictions"]`.

    With dense X and layers (what PertDiT writes) the file is never read whole: the 10 measures read
    `block_rows` profiles at a time into their running statistics (`pertdit.metrics.accumulate`), and with
    `ceiling=True` the replicate ceiling columns (`pertdit.metrics.replicates`) read one block of whole
    replicate groups at a time, so a file of any size is scored in bounded memory. Other layouts are read whole.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"prediction file {path} does not exist")
    with h5py.File(path, "r") as handle:
        parts = [handle.get("X"), *(handle.get(f"layers/{name}") for name in PRED_LAYERS)]
        if not all(isinstance(part, h5py.Dataset) for part in parts):
            adata = read_prediction(path)
            if ceiling:
                return evaluate_prediction(adata, relu=relu, control_reference=control_reference)
            if relu is None:
                relu = bool(adata.uns.get("pertdit", {}).get("relu_predictions", False))
            return compute_measures(*_arrays(adata), relu=relu, control_reference=control_reference)
        obs = read_elem(handle["obs"])
        uns = read_elem(handle["uns"]) if "uns" in handle else {}
        missing = [c for c in PRED_OBS if c not in obs.columns]
        if missing:
            raise DataError(f"{path}: obs column(s) {missing} missing (a PRED.h5ad needs obs {list(PRED_OBS)}, "
                            f"has {list(obs.columns)})")
        if relu is None:
            relu = bool(uns.get("pertdit", {}).get("relu_predictions", False))
        pred, truth, control = parts
        if not pred.shape == truth.shape == control.shape or len(pred.shape) != 2:
            raise DataError(f"{path}: X {pred.shape}, layers truth {truth.shape} and control {control.shape} must "
                            "be (profiles, genes) of one shape")
        accumulator = MeasureAccumulator(relu=relu)
        cells, drugs = obs["cell_id"].to_numpy(), obs["drug"].to_numpy()
        doses = obs["dose"].to_numpy(dtype=np.float64)
        _check_ids(cells, drugs, doses, path)
        for start in range(0, pred.shape[0], block_rows):
            block = slice(start, start + block_rows)
            arrays = _validate(truth[block], pred[block], control[block])
            accumulator.add(*arrays, cells[block], drugs[block], doses[block])
        table = accumulator.table(control_reference)
        del accumulator  # its group sums (24 bytes x genes per group) are not needed by the ceiling
        if ceiling:
            groups = obs["replicate_group"] if "replicate_group" in obs else replicate_group_keys(obs)
            table = with_replicate_ceiling(table, replicate_ceiling(
                truth, pred, control, cells, drugs, doses, groups.astype(str).to_numpy(), relu=relu,
                control_reference=control_reference, block_rows=block_rows))
    return table


def _check_ids(cells: np.ndarray, drugs: np.ndarray, doses: np.ndarray, path: Path) -> None:
    """DataError for missing cell, drug or dose values (as compute_measures reports them)."""
    for name, values in (("cell_id", cells), ("drug", drugs), ("dose", doses)):
        missing = int(pd.isna(values).sum())
        if missing:
            raise DataError(f"{path}: obs['{name}'] has {missing} missing values; every sample needs a {name}")


def evaluate_prediction(
    adata: ad.AnnData, relu: bool | None = None, control_reference: str = "paired"
) -> pd.DataFrame:
    """The 10 measures of a PRED AnnData, plus the replicate ceiling and the model on the same rows.

    `relu=None` follows `uns["pertdit"]["relu_predictions"]`. Replicate groups: `obs["replicate_group"]` when
    present, else (cell_id, smiles or drug, dose, time when present) (pertdit.metrics.replicates).
    """
    if relu is None:
        relu = bool(adata.uns.get("pertdit", {}).get("relu_predictions", False))
    table = compute_measures(*_arrays(adata), relu=relu, control_reference=control_reference)
    return with_replicate_ceiling(table, prediction_ceiling(adata, relu, control_reference))


def prediction_ceiling(adata: ad.AnnData, relu: bool, control_reference: str = "paired") -> pd.DataFrame:
    """The replicate ceiling table (pertdit.metrics.replicates) of a PRED AnnData."""
    obs = adata.obs
    groups = obs["replicate_group"] if "replicate_group" in obs else replicate_group_keys(obs)
    return replicate_ceiling(*_arrays(adata), groups.astype(str).to_numpy(), relu=relu,
                             control_reference=control_reference)


def _arrays(adata: ad.AnnData) -> tuple:
    """truth, pred, control (N, G) and cell, drug, dose (N,) of a PRED AnnData (`compute_measures` order)."""
    obs = adata.obs
    return (_dense(adata.layers["truth"]), _dense(adata.X), _dense(adata.layers["control"]),
            obs["cell_id"].to_numpy(), obs["drug"].to_numpy(), obs["dose"].to_numpy(dtype=np.float64))


def write_metrics_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write the measures table as CSV (one row per measure), creating parent folders; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


def format_table(df: pd.DataFrame) -> str:
    """The 10 means as text: one line per grouping, columns r2 and pcc_lnfc (and the group count).

    When the table has the replicate ceiling columns, a second block gives, per grouping, the ceiling and the
    model on the same rows.
    """
    means = df.pivot(index="grouping", columns="metric", values="mean").reindex(
        index=list(GROUPINGS), columns=list(METRICS)
    )
    counts = df[df["metric"] == METRICS[0]].set_index("grouping")["n_groups"].reindex(list(GROUPINGS))
    header = f"{'grouping':<14}" + "".join(f"{m:>10}" for m in METRICS) + f"{'n_groups':>10}"
    lines = [header, "-" * len(header)]
    for grouping in GROUPINGS:
        cells = "".join(f"{_number(means.at[grouping, m]):>10}" for m in METRICS)
        lines.append(f"{grouping:<14}{cells}{_number(counts[grouping], integer=True):>10}")
    if "ceiling_mean" in df.columns:
        lines += ["", *_ceiling_lines(df)]
    return "\n".join(lines)


def _ceiling_lines(df: pd.DataFrame) -> list[str]:
    """The replicate-ceiling block of `format_table`."""
    by = df.set_index(["metric", "grouping"])
    first = by.loc[(METRICS[0], GROUPINGS[0])]
    scored, alone = int(first["ceiling_profiles"]), int(first["unreplicated_profiles"])
    if scored == 0:
        return [f"replicate ceiling: none ({alone} profiles; no (cell line, compound, dose, time) has 2+ wells)"]
    header = "".join(f"{m + ' ceil':>15}{m + ' model':>15}" for m in METRICS)
    half = int(by.loc[(METRICS[0], GROUPINGS[1]), "ceiling_profiles"])
    title = (f"replicate ceiling ({scored} profiles with a replicate, {alone} without; grouped rows: split "
             f"half A, {half} profiles; model scored on the same rows; docs/metrics.md)")
    lines = [title, f"{'grouping':<14}{header}{'n_groups':>10}"]
    lines.append("-" * len(lines[-1]))
    for grouping in GROUPINGS:
        cells = "".join(f"{_number(by.loc[(m, grouping), 'ceiling_mean']):>15}"
                        f"{_number(by.loc[(m, grouping), 'model_same_rows_mean']):>15}" for m in METRICS)
        n_groups = _number(by.loc[(METRICS[0], grouping), "ceiling_n_groups"], integer=True)
        lines.append(f"{grouping:<14}{cells}{n_groups:>10}")
    return lines


def _number(value: float, integer: bool = False) -> str:
    """A table cell: 4 decimals, an integer, or 'nan'."""
    if value is None or pd.isna(value):
        return "nan"
    return f"{int(value)}" if integer else f"{value:.4f}"


def _dense(matrix) -> np.ndarray:
    """A dense array from a dense or sparse AnnData matrix."""
    return matrix.toarray() if sparse.issparse(matrix) else np.asarray(matrix)
