"""Splits: no leakage, the documented proportions, and clear errors when a split cannot be formed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pertdit.data.split_spec import SplitSpec
from pertdit.data.splits import kfold_split, organ_split, unseen_split
from pertdit.errors import SplitError
from tests.data.synthetic import dataset


@pytest.fixture(scope="module")
def multi():
    return dataset(n_cells=6, n_drugs=10)


def _labels(adata, column):
    return adata.obs[column].astype(str).to_numpy()


@pytest.mark.parametrize("by,unit", [("drug", "drug"), ("cell", "cell_id")])
def test_kfold_unseen_units_never_leak(multi, by, unit):
    for fold in range(5):
        adata = multi.copy()
        labels = _labels(adata, kfold_split(adata, by=by, fold=fold))
        units = adata.obs[unit].astype(str).to_numpy()
        train, val, test = (set(units[labels == s]) for s in ("train", "val", "test"))
        assert train and val and test
        assert not (train & test) and not (train & val) and not (val & test)


def test_kfold_random_is_about_6_2_2_and_each_profile_tested_once(multi):
    tested = np.zeros(multi.n_obs, dtype=int)
    treated = ~multi.obs["is_control"].to_numpy()
    for fold in range(5):
        adata = multi.copy()
        labels = _labels(adata, kfold_split(adata, by="random", fold=fold))
        fractions = pd.Series(labels[treated]).value_counts(normalize=True)
        assert abs(fractions["train"] - 0.6) < 0.02 and abs(fractions["test"] - 0.2) < 0.02
        tested += labels == "test"
        assert (labels[~treated] == "control").all()
    assert (tested[treated] == 1).all()


def test_unseen_split_test_sets(multi):
    adata = multi.copy()
    labels = _labels(adata, unseen_split(adata, drug_fraction=0.3, cell_fraction=0.34, seed=1))
    drugs = adata.obs["drug"].astype(str).to_numpy()
    cells = adata.obs["cell_id"].astype(str).to_numpy()
    seen = np.isin(labels, ["train", "val"])
    for name, new_drug, new_cell in [("drug_unseen", True, False), ("cell_line_unseen", False, True),
                                     ("both_unseen", True, True)]:
        rows = labels == name
        assert rows.any(), name
        assert (not np.isin(drugs[rows], drugs[seen]).any()) == new_drug
        assert (not np.isin(cells[rows], cells[seen]).any()) == new_cell
    assert (labels == "val").any()


def test_split_is_seeded(multi):
    a, b = multi.copy(), multi.copy()
    assert (_labels(a, unseen_split(a, seed=3)) == _labels(b, unseen_split(b, seed=3))).all()


def test_organ_split_holds_out_the_organ(multi):
    adata = multi.copy()
    organs = pd.Series({"CELL0": "lung", "CELL1": "lung", "CELL2": "kidney", "CELL3": "pancreas",
                        "CELL4": "skin", "CELL5": "skin"})
    labels = _labels(adata, organ_split(adata, "lung", organs))
    cells = adata.obs["cell_id"].astype(str).to_numpy()
    assert set(cells[labels == "test"]) == {"CELL0", "CELL1"}
    assert not {"CELL0", "CELL1"} & set(cells[np.isin(labels, ["train", "val"])])


@pytest.mark.parametrize("spec", [SplitSpec(kind="kfold", by="cell"),
                                  SplitSpec(kind="unseen", test_set="cell_line_unseen", cell_fraction=0.2),
                                  SplitSpec(kind="organ", organ="lung")])
def test_cell_splits_on_one_cell_line_fail_clearly(spec):
    one_cell = dataset(n_cells=1)
    with pytest.raises(SplitError, match="only 1 cell line"):
        spec.apply(one_cell)


def test_organ_absent_is_named():
    adata = dataset(n_cells=2)
    with pytest.raises(SplitError, match="no cell line of organ 'pancreas'"):
        organ_split(adata, "pancreas", pd.Series({"CELL0": "lung", "CELL1": "skin"}))


def test_bad_spec_values():
    with pytest.raises(SplitError, match="unknown test set"):
        SplitSpec(test_set="elsewhere")
    with pytest.raises(SplitError, match="needs split.cell_fraction > 0"):
        SplitSpec(test_set="both_unseen", cell_fraction=0.0)
