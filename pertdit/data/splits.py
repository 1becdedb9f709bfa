"""Dataset splits, written as `obs["split_<name>"]` columns (controls are labelled `control`).

- `kfold_split`: PRnet's 5-fold random / unseen-drug / unseen-cell splits (fold k: unit fold k is test, unit
  fold k+1 is validation, the rest train: about 6:2:2).
- `unseen_split`: one train/val split plus the test sets `drug_unseen`, `cell_line_unseen`, `both_unseen`.
- `organ_split`: every cell line of one organ held out as test.
"""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from pertdit.errors import SplitError

CONTROL = "control"
UNITS = {"random": None, "drug": "drug", "cell": "cell_id"}
UNSEEN_TEST_SETS = ("drug_unseen", "cell_line_unseen", "both_unseen")


def _treated(adata: ad.AnnData) -> np.ndarray:
    return ~adata.obs["is_control"].to_numpy(bool)


def _require_units(values: np.ndarray, n: int, what: str, split: str) -> None:
    found = len(np.unique(values))
    if found < n:
        raise SplitError(f"split {split!r} holds out {what}s but this dataset has only {found} {what}(s) "
                         f"({list(np.unique(values))[:5]}); it needs at least {n}. Use a drug or random split, "
                         "or a dataset with more cell lines")


def _shuffled_folds(units: np.ndarray, n_folds: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    unique = np.unique(units)
    order = rng.permutation(len(unique))
    return {unique[i]: k % n_folds for k, i in enumerate(order)}


def kfold_split(adata: ad.AnnData, by: str = "random", fold: int = 0, n_folds: int = 5, seed: int = 0,
                column: str | None = None) -> str:
    """PRnet k-fold split by `random` sample, unseen `drug` or unseen `cell`; returns the column name."""
    if by not in UNITS:
        raise SplitError(f"unknown k-fold split {by!r}; choose one of {list(UNITS)}")
    if not 0 <= fold < n_folds:
        raise SplitError(f"fold {fold} out of range for {n_folds} folds")
    column = column or f"split_{by}_fold{fold}"
    treated = _treated(adata)
    units = (np.arange(adata.n_obs).astype(str) if UNITS[by] is None
             else adata.obs[UNITS[by]].astype(str).to_numpy())
    _require_units(units[treated], n_folds, {"random": "sample", "drug": "drug", "cell": "cell line"}[by], column)
    fold_of = _shuffled_folds(units[treated], n_folds, seed)
    folds = np.array([fold_of[u] for u in units[treated]])
    labels = np.where(folds == fold, "test", np.where(folds == (fold + 1) % n_folds, "val", "train"))
    _write(adata, column, treated, labels)
    return column


def _pick(units: np.ndarray, fraction: float, rng: np.random.Generator) -> set:
    unique = np.unique(units)
    n = int(round(fraction * len(unique)))
    if fraction > 0:
        n = min(max(n, 1), len(unique) - 1)
    return set(rng.choice(unique, size=n, replace=False)) if n else set()


def unseen_split(adata: ad.AnnData, drug_fraction: float = 0.2, cell_fraction: float = 0.2,
                 val_fraction: float = 0.15, seed: int = 0, column: str = "split_unseen") -> str:
    """Train/val plus `drug_unseen`, `cell_line_unseen` and `both_unseen` test sets; returns the column."""
    treated = _treated(adata)
    drugs = adata.obs["drug"].astype(str).to_numpy()
    cells = adata.obs["cell_id"].astype(str).to_numpy()
    if drug_fraction > 0:
        _require_units(drugs[treated], 2, "drug", column)
    if cell_fraction > 0:
        _require_units(cells[treated], 2, "cell line", column)
    rng = np.random.default_rng(seed)
    held_drugs = _pick(drugs[treated], drug_fraction, rng)
    held_cells = _pick(cells[treated], cell_fraction, rng)
    new_drug = np.isin(drugs, list(held_drugs))
    new_cell = np.isin(cells, list(held_cells))
    labels = np.full(adata.n_obs, "train", dtype=object)
    labels[new_drug & ~new_cell] = "drug_unseen"
    labels[~new_drug & new_cell] = "cell_line_unseen"
    labels[new_drug & new_cell] = "both_unseen"
    seen = np.flatnonzero(treated & ~new_drug & ~new_cell)
    labels[rng.choice(seen, size=int(round(val_fraction * len(seen))), replace=False)] = "val"
    _write(adata, column, treated, labels[treated])
    return column


def organ_split(adata: ad.AnnData, organ: str, cell_organs: pd.Series, val_fraction: float = 0.2,
                seed: int = 0, column: str | None = None) -> str:
    """Hold out every cell line of `organ` as test; train/val are a seeded random split of the rest."""
    column = column or f"split_organ_{organ}"
    treated = _treated(adata)
    cells = adata.obs["cell_id"].astype(str).to_numpy()
    _require_units(cells[treated], 2, "cell line", column)
    organ_of = {c: cell_organs.get(c, cell_organs.get(c.upper(), "unknown")) for c in np.unique(cells)}
    held = [c for c, o in organ_of.items() if o == organ]
    if not held:
        raise SplitError(f"split {column!r}: no cell line of organ {organ!r} in this dataset; its cell lines map "
                         f"to {dict(list(organ_of.items())[:10])}")
    if len(held) == len(organ_of):
        raise SplitError(f"split {column!r}: every cell line is of organ {organ!r}; nothing left to train on")
    test = np.isin(cells, held)
    rng = np.random.default_rng(seed)
    labels = np.where(test, "test", "train").astype(object)
    rest = np.flatnonzero(treated & ~test)
    labels[rng.choice(rest, size=int(round(val_fraction * len(rest))), replace=False)] = "val"
    _write(adata, column, treated, labels[treated])
    return column


def _write(adata: ad.AnnData, column: str, treated: np.ndarray, labels: np.ndarray) -> None:
    values = np.full(adata.n_obs, CONTROL, dtype=object)
    values[treated] = labels
    adata.obs[column] = pd.Categorical(values)


def split_rows(adata: ad.AnnData, column: str, labels: Sequence[str] | str) -> np.ndarray:
    """Row positions whose split label is in `labels`; SplitError when the column is missing or they are empty."""
    if column not in adata.obs:
        raise SplitError(f"split column {column!r} not in the dataset (has {[c for c in adata.obs if c.startswith('split_')]})")
    labels = [labels] if isinstance(labels, str) else list(labels)
    rows = np.flatnonzero(adata.obs[column].astype(str).isin(labels).to_numpy())
    if rows.size == 0:
        raise SplitError(f"split {column!r} has no profiles labelled {labels}; present: "
                         f"{adata.obs[column].value_counts().to_dict()}")
    return rows
