"""Splits on real multi-cell-line L1000 profiles (A375 + MCF7 + PC3 plates; HT115 + SKBR3): leakage and named
hold-outs, with the shared files read by the project's readers (tests/data/real_plates.py)."""

from __future__ import annotations

import numpy as np
import pytest

from pertdit.data.split_spec import SplitSpec
from tests.data.real_plates import A375, HT115, LJP009, MCF7, PC3, SKBR3, real_dataset


@pytest.fixture(scope="module")
def three_plates(data_dir):
    """LJP005 A375 (54 compounds), LJP005 MCF7 and LJP006 PC3 (one compound each, 6 doses), 24 h."""
    return real_dataset(data_dir, A375, MCF7, PC3)


@pytest.fixture(scope="module")
def ht115_skbr3(data_dir):
    """HT115 (CPC006, 6 h, two replicate plates) and SKBR3 (LJP001/002, 6 h and 24 h)."""
    return real_dataset(data_dir, HT115, SKBR3, min_observations=1)


def _sets(adata, column, labels, key):
    rows = adata.obs[column].astype(str).isin(labels).to_numpy()
    return set(adata.obs.loc[rows, key].astype(str))


def test_train_without_mcf7_and_test_on_it(three_plates):
    spec = SplitSpec(kind="unseen", test_set="auto", test_cells=["mcf7"])
    adata = three_plates.copy()
    column = spec.apply(adata)
    obs = adata.obs
    test = obs[column].astype(str).isin(spec.labels("test")).to_numpy()
    assert set(obs.loc[test, "cell_id"]) == {"MCF7"} and test.sum() == 6
    assert "MCF7" not in _sets(adata, column, ["train", "val"], "cell_id")
    # CP-724714 is on the A375 plate too: a cell-line hold-out keeps that compound in training
    assert set(obs.loc[test, "smiles"]) <= _sets(adata, column, ["train", "val"], "smiles")


def test_named_drug_and_cell_on_real_plates_is_both_unseen(three_plates):
    spec = SplitSpec(kind="unseen", test_set="auto", test_cells=["MCF7"], test_drugs=["CP-724714"])
    adata = three_plates.copy()
    column = spec.apply(adata)
    assert _sets(adata, column, ["both_unseen"], "cell_id") == {"MCF7"}
    assert _sets(adata, column, ["drug_unseen"], "cell_id") == {"A375"}  # CP-724714 on A375: out of training
    assert not _sets(adata, column, ["both_unseen"], "smiles") & _sets(adata, column, ["train", "val"], "smiles")


@pytest.mark.parametrize("by,key", [("drug", "smiles"), ("cell", "cell_id")])
def test_real_folds_never_leak(ht115_skbr3, three_plates, by, key):
    adata = (ht115_skbr3 if by == "drug" else three_plates).copy()
    n_folds = 5 if by == "drug" else 3
    tested = set()
    for fold in range(n_folds):
        column = SplitSpec(kind="kfold", by=by, fold=fold, n_folds=n_folds).apply(adata)
        test, seen = _sets(adata, column, ["test"], key), _sets(adata, column, ["train", "val"], key)
        assert test and not test & seen
        tested |= test
    treated = ~adata.obs["is_control"].to_numpy()
    assert tested == set(adata.obs.loc[treated, key].astype(str))  # every unit is tested once


def test_named_drug_fold_on_real_data(ht115_skbr3):
    adata = ht115_skbr3.copy()
    column = SplitSpec(kind="kfold", by="drug", test_drugs=["crizotinib", "BI-2536"]).apply(adata)
    test_drugs = _sets(adata, column, ["test"], "drug")
    assert test_drugs == {"crizotinib", "BI-2536"}
    assert not {"crizotinib", "BI-2536"} & _sets(adata, column, ["train", "val"], "drug")
    assert np.isin(["HT115", "SKBR3"], list(_sets(adata, column, ["test"], "cell_id"))).all()


@pytest.fixture(scope="module")
def bi2536_twice(data_dir):
    """LJP009 A375 lists BI-2536 under BRD-U70626184 (name: the id), SKBR3 under BRD-K64890080 ("BI-2536"):
    two ids, two names, one structure."""
    return real_dataset(data_dir, LJP009, SKBR3, min_observations=1)


def test_one_structure_under_two_ids_is_one_unit_on_real_plates(bi2536_twice):
    adata = bi2536_twice
    obs = adata.obs[~adata.obs["is_control"]]
    bi2536 = obs[obs["drug"].isin(["BI-2536", "BRD-U70626184"])]
    assert set(bi2536["pert_id"]) == {"BRD-U70626184", "BRD-K64890080"} and bi2536["smiles"].nunique() == 1
    for fold in range(5):
        labeled = adata.copy()
        column = SplitSpec(kind="kfold", by="drug", fold=fold).apply(labeled)
        sides = labeled.obs.loc[bi2536.index, column].astype(str).replace({"val": "train"})
        assert sides.nunique() == 1, f"fold {fold}: BI-2536 split across {set(sides)}"


def test_naming_one_id_holds_out_every_id_of_its_structure(bi2536_twice):
    adata = bi2536_twice.copy()
    column = SplitSpec(kind="unseen", test_set="auto", test_drugs=["BI-2536"]).apply(adata)
    held = adata.obs[column].astype(str) == "drug_unseen"
    assert set(adata.obs.loc[held, "pert_id"]) == {"BRD-U70626184", "BRD-K64890080"}
