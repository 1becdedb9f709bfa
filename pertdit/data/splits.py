"""Dataset splits, written as `obs["split_<name>"]` columns (controls are labelled `control`).

- `kfold_split`: PRnet's 5-fold random / unseen-drug / unseen-cell splits (fold k: unit fold k is test, unit
  fold k+1 is validation, the rest train: about 6:2:2).
- `unseen_split`: one train/val split plus the test sets `drug_unseen`, `cell_line_unseen`, `both_unseen`.
- `organ_split`: every cell line of one organ held out as test.

Drugs are units by canonical SMILES (`obs["smiles"]`, what the model is conditioned on), cell lines by
`cell_id`. Every split takes named hold-outs (`test_cells`, `test_drugs`; semantics per kind in
docs/splits.md) and, before it returns, asserts that what it holds out never occurs in train or validation
(`assert_held_out`).
"""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from pertdit.data.holdouts import assert_held_out, resolve_cells, resolve_drugs
from pertdit.data.organs import organ_of
from pertdit.errors import SplitError

CONTROL = "control"
UNITS = {"random": None, "drug": "smiles", "cell": "cell_id"}
UNSEEN_TEST_SETS = ("drug_unseen", "cell_line_unseen", "both_unseen")
_UNIT_NAMES = {"random": "sample", "drug": "drug (SMILES)", "cell": "cell line"}


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


def _named_rows(adata: ad.AnnData, cells: Sequence[str],
                smiles: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(N,) bool masks: rows of the named cell lines, rows of the named SMILES."""
    return (np.isin(adata.obs["cell_id"].astype(str).to_numpy(), list(cells)),
            np.isin(adata.obs["smiles"].astype(str).to_numpy(), list(smiles)))


def _check_left(rest: np.ndarray, column: str) -> None:
    if not rest.any():
        raise SplitError(f"split {column!r}: the named hold-outs (split.test_cells / split.test_drugs) cover "
                         "every treated profile; nothing is left to train on")


def kfold_split(adata: ad.AnnData, by: str = "random", fold: int = 0, n_folds: int = 5, seed: int = 0,
                column: str | None = None, test_cells: Sequence[str] | None = None,
                test_drugs: Sequence[str] | None = None) -> str:
    """PRnet k-fold split by `random` sample, unseen `drug` (SMILES) or unseen `cell`; returns the column name.

    Named units of the fold's own kind (`test_drugs` for by=drug, `test_cells` for by=cell) are the test fold,
    and the other units are dealt into n_folds - 1 folds, fold `fold % (n_folds - 1)` validating. Named units of
    another kind (and any named unit for by=random) are held out of train/val into test in addition.
    """
    if by not in UNITS:
        raise SplitError(f"unknown k-fold split {by!r}; choose one of {list(UNITS)}")
    if not 0 <= fold < n_folds:
        raise SplitError(f"fold {fold} out of range for {n_folds} folds")
    column = column or f"split_{by}_fold{fold}"
    cells, smiles = resolve_cells(adata, test_cells), resolve_drugs(adata, test_drugs)
    treated = _treated(adata)
    units = (np.arange(adata.n_obs).astype(str) if UNITS[by] is None
             else adata.obs[UNITS[by]].astype(str).to_numpy())
    named_cell, named_drug = _named_rows(adata, cells, smiles)
    own_named = {"drug": smiles, "cell": cells}.get(by, [])
    named = named_cell | named_drug
    labels = np.full(adata.n_obs, "test", dtype=object)
    rest = treated & ~named
    _check_left(rest, column)
    if own_named:  # the named units are the test fold; the rest is dealt into n_folds - 1 folds
        _require_units(units[rest], n_folds - 1, _UNIT_NAMES[by], column)
        fold_of = _shuffled_folds(units[rest], n_folds - 1, seed)
        folds = np.array([fold_of[u] for u in units[rest]])
        labels[rest] = np.where(folds == fold % (n_folds - 1), "val", "train")
        fold_units: set[str] = set()
    else:
        _require_units(units[treated], n_folds, _UNIT_NAMES[by], column)
        fold_of = _shuffled_folds(units[treated], n_folds, seed)
        folds = np.array([fold_of[u] for u in units[rest]])
        labels[rest] = np.where(folds == fold, "test", np.where(folds == (fold + 1) % n_folds, "val", "train"))
        fold_units = {u for u, k in fold_of.items() if k == fold} if UNITS[by] else set()
    _write(adata, column, treated, labels[treated])
    held = {"smiles": set(smiles), "cell_id": set(cells)}
    if UNITS[by]:
        held[UNITS[by]] |= fold_units
    assert_held_out(adata, column, held)
    return column


def _pick(units: np.ndarray, fraction: float, rng: np.random.Generator) -> set:
    unique = np.unique(units)
    n = int(round(fraction * len(unique)))
    if fraction > 0:
        n = min(max(n, 1), len(unique) - 1)
    return set(rng.choice(unique, size=n, replace=False)) if n else set()


def _pick_units(values: np.ndarray, fraction: float, rng: np.random.Generator, what: str, column: str) -> set:
    """A random `fraction` of the distinct `values` (at least two must exist when fraction > 0)."""
    if fraction > 0:
        _require_units(values, 2, what, column)
    return _pick(values, fraction, rng)


def unseen_split(adata: ad.AnnData, drug_fraction: float = 0.2, cell_fraction: float = 0.2,
                 val_fraction: float = 0.15, seed: int = 0, column: str = "split_unseen",
                 test_cells: Sequence[str] | None = None, test_drugs: Sequence[str] | None = None) -> str:
    """Train/val plus `drug_unseen`, `cell_line_unseen` and `both_unseen` test sets; returns the column.

    Held-out drugs are a `drug_fraction` of the SMILES, or the named `test_drugs`; held-out cell lines a
    `cell_fraction` of the cell lines, or the named `test_cells`. Validation is a random `val_fraction` of the
    profiles with neither.
    """
    treated = _treated(adata)
    drugs = adata.obs["smiles"].astype(str).to_numpy()
    cells = adata.obs["cell_id"].astype(str).to_numpy()
    rng = np.random.default_rng(seed)
    held_drugs = (set(resolve_drugs(adata, test_drugs)) if test_drugs
                  else _pick_units(drugs[treated], drug_fraction, rng, "drug (SMILES)", column))
    held_cells = (set(resolve_cells(adata, test_cells)) if test_cells
                  else _pick_units(cells[treated], cell_fraction, rng, "cell line", column))
    new_drug = np.isin(drugs, list(held_drugs))
    new_cell = np.isin(cells, list(held_cells))
    labels = np.full(adata.n_obs, "train", dtype=object)
    labels[new_drug & ~new_cell] = "drug_unseen"
    labels[~new_drug & new_cell] = "cell_line_unseen"
    labels[new_drug & new_cell] = "both_unseen"
    seen = np.flatnonzero(treated & ~new_drug & ~new_cell)
    _check_left(seen, column)
    labels[rng.choice(seen, size=int(round(val_fraction * len(seen))), replace=False)] = "val"
    _write(adata, column, treated, labels[treated])
    assert_held_out(adata, column, {"smiles": held_drugs, "cell_id": held_cells})
    return column


def organ_split(adata: ad.AnnData, organ: str, cell_organs: pd.Series, val_fraction: float = 0.2,
                seed: int = 0, column: str | None = None, test_cells: Sequence[str] | None = None,
                test_drugs: Sequence[str] | None = None) -> str:
    """Hold out every cell line of `organ` (and any named units) as test; train/val: a seeded random split."""
    column = column or f"split_organ_{organ}"
    treated = _treated(adata)
    cells = adata.obs["cell_id"].astype(str).to_numpy()
    _require_units(cells[treated], 2, "cell line", column)
    organs = organ_of(np.unique(cells[treated]), cell_organs)
    held = [c for c, o in organs.items() if o == organ]
    if not held:
        raise SplitError(f"split {column!r}: no cell line of organ {organ!r} in this dataset; its cell lines map "
                         f"to {dict(list(organs.items())[:10])} (see `pertdit data` for the organs with data)")
    if len(held) == len(organs):
        raise SplitError(f"split {column!r}: every cell line is of organ {organ!r}; nothing left to train on")
    named_cells, named_smiles = resolve_cells(adata, test_cells), resolve_drugs(adata, test_drugs)
    named_cell, named_drug = _named_rows(adata, named_cells, named_smiles)
    test = np.isin(cells, held) | named_cell | named_drug
    rng = np.random.default_rng(seed)
    labels = np.where(test, "test", "train").astype(object)
    rest = np.flatnonzero(treated & ~test)
    _check_left(rest, column)
    labels[rng.choice(rest, size=int(round(val_fraction * len(rest))), replace=False)] = "val"
    _write(adata, column, treated, labels[treated])
    assert_held_out(adata, column, {"cell_id": set(held) | set(named_cells), "smiles": set(named_smiles)})
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
