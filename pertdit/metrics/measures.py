"""The 10 measures: R2 and PCC(lnFC), per sample and over 4 groupings (DESIGN.md, "The 10 measures").

Everything is vectorised: row-wise statistics on (N, G) arrays; group means by sorting samples by group and
summing with `np.add.reduceat`. `compute_measures` runs in float64 over blocks of ~4k samples through the
sufficient statistics of `pertdit.metrics.accumulate` (per-sample values and per-(cell, drug, dose) sums), the
one implementation that `PerturbationMetrics` and `evaluate_h5ad` share, so memory stays bounded on large
test sets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pertdit.errors import DataError

GROUPINGS: tuple[str, ...] = ("per_sample", "cov_drug_dose", "cov_drug", "drug_dose", "drug")
METRICS: tuple[str, ...] = ("r2", "pcc_lnfc")
CONTROL_REFERENCES: tuple[str, ...] = ("paired", "cell_mean")
COLUMNS: tuple[str, ...] = ("metric", "grouping", "mean", "median", "min", "max", "n_groups", "n_nan")

_GROUP_COLUMNS: dict[str, tuple[str, ...]] = {
    "cov_drug_dose": ("cell", "drug", "dose"),
    "cov_drug": ("cell", "drug"),
    "drug_dose": ("drug", "dose"),
    "drug": ("drug",),
}
_CHUNK_ROWS = 4096


def r2_rows(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """R2 of each row across columns, sklearn's convention: (N, G), (N, G) -> (N,).

    1 - SS_res / SS_tot with SS_tot around the row mean of `truth` (truth first). NaN where the truth
    row is constant (SS_tot == 0).
    """
    truth = np.asarray(truth, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    ss_res = np.square(truth - pred).sum(axis=1)
    ss_tot = np.square(truth - truth.mean(axis=1, keepdims=True)).sum(axis=1)
    constant = _constant_rows(truth)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1.0 - ss_res / ss_tot
    r2[constant] = np.nan
    return r2


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row pair across columns: (N, G), (N, G) -> (N,); NaN for a constant row."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a_c = a - a.mean(axis=1, keepdims=True)
    b_c = b - b.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (a_c * b_c).sum(axis=1) / np.sqrt(np.square(a_c).sum(axis=1) * np.square(b_c).sum(axis=1))
    r = np.clip(r, -1.0, 1.0)
    r[_constant_rows(a) | _constant_rows(b)] = np.nan
    return r


def group_keys(cell: Sequence, drug: Sequence, dose: Sequence[float]) -> dict[str, np.ndarray]:
    """Integer group codes (N,) for each grouping: cov_drug_dose, cov_drug, drug_dose, drug.

    `cell` and `drug` are ids (str or int), `dose` floats; codes are 0..n_groups-1 in sorted key order.
    """
    columns = {"cell": _codes("cell", cell), "drug": _codes("drug", drug), "dose": _codes("dose", dose)}
    lengths = {name: len(c) for name, c in columns.items()}
    if len(set(lengths.values())) != 1:
        raise DataError(f"cell, drug and dose must have the same length, got {lengths}")
    keys = {}
    for grouping, names in _GROUP_COLUMNS.items():
        combined = np.zeros(lengths["cell"], dtype=np.int64)
        for name in names:
            combined = combined * (columns[name].max(initial=-1) + 1) + columns[name]
        keys[grouping] = _codes(grouping, combined)
    return keys


def group_means(codes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mean of `values` (N, G) within each group of `codes` (N,) (0..K-1, each used), in float64: (K, G)."""
    blocks = [_block_means(values[rows], starts, counts) for rows, starts, counts in _group_blocks(codes)]
    return np.concatenate(blocks) if blocks else np.zeros((0, values.shape[1]))


def compute_measures(
    truth: np.ndarray,
    pred: np.ndarray,
    control: np.ndarray,
    cell: Sequence,
    drug: Sequence,
    dose: Sequence[float],
    relu: bool = False,
    control_reference: str = "paired",
) -> pd.DataFrame:
    """The 10 measures as a table with columns `COLUMNS`, one row per (metric, grouping).

    truth, pred, control: (N, G) log-scale profiles, rows aligned (control = each sample's paired
    control); cell, drug, dose: (N,) covariates. per_sample: R2(y_i, p_i) and pearson(y_i - x_i, p_i - x_i).
    Grouped: R2(mean y, mean p) and pearson(mean y - ref, mean p - ref) per group, where ref is the mean of
    the group's paired controls ("paired") or of the per-sample cell-line control means ("cell_mean":
    the mean of all control rows of that cell line, PRnet's variant). NaN values (constant profiles) are
    left out of mean/median/min/max and counted in `n_nan`; `n_groups` counts all groups.
    """
    from pertdit.metrics.accumulate import GroupSums, measures_from_sums, per_sample_values

    truth, pred, control = _validate(truth, pred, control)
    if control_reference not in CONTROL_REFERENCES:
        raise ValueError(f"control_reference must be one of {CONTROL_REFERENCES}, got {control_reference!r}")
    n = truth.shape[0]
    keys = group_keys(cell, drug, dose)
    if len(keys["drug"]) != n:
        raise DataError(f"cell, drug and dose have {len(keys['drug'])} rows but the profiles have {n}")
    codes = np.column_stack([_codes("cell", cell), _codes("drug", drug), np.asarray(dose, dtype=np.float64)])
    groups, r2, pcc = GroupSums(), np.empty(n), np.empty(n)
    for start in range(0, n, _CHUNK_ROWS):
        rows = slice(start, start + _CHUNK_ROWS)
        y, p, x = truth[rows], pred[rows], control[rows]
        p = np.maximum(p, 0) if relu else p
        r2[rows], pcc[rows] = per_sample_values(y, p, x)
        groups.add(codes[rows], y, p, x)
    return measures_from_sums(r2, pcc, *groups.arrays(), control_reference=control_reference)


def empty_measures() -> pd.DataFrame:
    """The measures table of no samples: every statistic NaN, zero groups."""
    return pd.DataFrame(
        [_summary(m, g, np.empty(0)) for m in METRICS for g in GROUPINGS], columns=list(COLUMNS)
    )


def _constant_rows(a: np.ndarray) -> np.ndarray:
    """(N,) bool: rows whose values are all equal (or that have no columns)."""
    if a.shape[1] == 0:
        return np.ones(a.shape[0], dtype=bool)
    return (a == a[:, :1]).all(axis=1)


def _codes(name: str, ids: Sequence) -> np.ndarray:
    """Sorted integer codes of `ids` (N,); missing ids (None/NaN) raise DataError naming `name`."""
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, got shape {ids.shape}")
    codes, _ = pd.factorize(ids, sort=True)
    missing = int((codes < 0).sum())
    if missing:
        raise DataError(f"{name} has {missing} missing values (None/NaN); every sample needs a {name}")
    return codes.astype(np.int64)


def _validate(*arrays: np.ndarray) -> list[np.ndarray]:
    """Check truth, pred, control are 2-D, of one shape and finite; return them as arrays."""
    names = ("truth", "pred", "control")
    arrays = [np.asarray(a) for a in arrays]
    for name, a in zip(names, arrays):
        if a.ndim != 2:
            raise DataError(f"{name} must be a 2-D (samples, genes) array, got shape {a.shape}")
    shapes = {name: a.shape for name, a in zip(names, arrays)}
    if len(set(shapes.values())) != 1:
        raise DataError(f"truth, pred and control must have the same shape, got {shapes}")
    for name, a in zip(names, arrays):
        n_nan = int(np.isnan(a).sum())
        if n_nan:
            raise DataError(f"{name} contains {n_nan} NaN values; remove or impute them before scoring")
        n_inf = int(np.isinf(a).sum())
        if n_inf:
            raise DataError(f"{name} contains {n_inf} infinite values; remove them before scoring")
    return arrays


def _group_blocks(codes: np.ndarray):
    """Yield (rows, starts, counts) for consecutive blocks of whole groups, ~_CHUNK_ROWS samples each.

    rows: sample indices sorted by group; starts: offset of each group of the block within `rows`;
    counts: (n_block_groups, 1) group sizes. Groups appear in code order.
    """
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    first_groups = np.searchsorted(offsets[:-1], np.arange(0, len(codes), _CHUNK_ROWS))
    bounds = np.unique(np.r_[first_groups, len(counts)])
    for g0, g1 in zip(bounds[:-1], bounds[1:]):
        yield order[offsets[g0] : offsets[g1]], offsets[g0:g1] - offsets[g0], counts[g0:g1, None]


def _block_means(values: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Means of consecutive row runs beginning at `starts`, in float64: (n_runs, G)."""
    return np.add.reduceat(np.asarray(values, dtype=np.float64), starts, axis=0) / counts


def _summary(metric: str, grouping: str, values: np.ndarray) -> dict:
    """One table row: statistics over the non-NaN values, plus counts."""
    finite = values[~np.isnan(values)]
    stats = (
        (finite.mean(), np.median(finite), finite.min(), finite.max()) if finite.size else (np.nan,) * 4
    )
    return {
        "metric": metric,
        "grouping": grouping,
        **{k: float(v) for k, v in zip(("mean", "median", "min", "max"), stats)},
        "n_groups": int(values.size),
        "n_nan": int(values.size - finite.size),
    }
