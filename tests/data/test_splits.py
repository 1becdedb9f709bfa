"""Splits: no leakage, the documented proportions, and clear errors when a split cannot be formed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pertdit.data.holdouts import assert_held_out, resolve_cells, resolve_drugs
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


# -- hold out what the model sees: drugs by canonical SMILES ------------------------------------------------------
@pytest.fixture(scope="module")
def shared_smiles():
    """10 drug names (pert_ids) on 5 structures: drug d and drug d + 5 share one canonical SMILES."""
    return dataset(n_cells=4, n_drugs=10, n_smiles=5)


def _smiles_sets(adata, column, test_labels=("test",)):
    labels = _labels(adata, column)
    smiles = adata.obs["smiles"].astype(str).to_numpy()
    return set(smiles[np.isin(labels, test_labels)]), set(smiles[np.isin(labels, ["train", "val"])])


def test_drug_folds_never_put_one_smiles_in_test_and_train(shared_smiles):
    for fold in range(5):
        adata = shared_smiles.copy()
        test, seen = _smiles_sets(adata, kfold_split(adata, by="drug", fold=fold))
        assert test and not test & seen, f"fold {fold}: SMILES in test and train/val: {test & seen}"


def test_unseen_drugs_are_unseen_structures(shared_smiles):
    for seed in range(5):
        adata = shared_smiles.copy()
        column = unseen_split(adata, drug_fraction=0.4, cell_fraction=0.25, seed=seed)
        test, seen = _smiles_sets(adata, column, ("drug_unseen", "both_unseen"))
        assert test and not test & seen, f"seed {seed}: SMILES in test and train/val: {test & seen}"


def test_leakage_check_names_the_shared_smiles_and_drugs(shared_smiles):
    adata = shared_smiles.copy()
    column = kfold_split(adata, by="random", fold=0)
    drug0_smiles = adata.obs.loc[adata.obs["drug"] == "drug0", "smiles"].iloc[0]
    with pytest.raises(SplitError, match=r"1 held-out SMILES also in train/val: 'CO' \(train/val: .*drug0"):
        assert_held_out(adata, column, {"smiles": {drug0_smiles}})


def test_leakage_check_names_shared_cell_lines(multi):
    adata = multi.copy()
    column = kfold_split(adata, by="random", fold=0)
    with pytest.raises(SplitError, match=r"held-out cell line\(s\) also in train/val: 'CELL1'"):
        assert_held_out(adata, column, {"cell_id": {"CELL1"}})


# -- named hold-outs: split.test_cells / split.test_drugs ----------------------------------------------------------
def _rows_of(adata, column, labels):
    return np.isin(_labels(adata, column), labels)


def test_drug_names_ids_and_smiles_resolve_to_one_structure(shared_smiles):
    # drug0 and drug5 share the SMILES "CO": naming one holds out both
    assert resolve_drugs(shared_smiles, ["drug0"]) == ["CO"]
    assert resolve_drugs(shared_smiles, ["BRD-0005"]) == ["CO"]
    assert resolve_drugs(shared_smiles, ["DRUG0"]) == ["CO"]
    assert resolve_drugs(shared_smiles, ["OC"]) == ["CO"]  # a non-canonical SMILES of methanol


def test_unknown_names_list_close_matches(shared_smiles):
    with pytest.raises(SplitError, match=r"split.test_drugs: 'durg3' matches no .* close matches: \['drug3'"):
        resolve_drugs(shared_smiles, ["durg3"])
    with pytest.raises(SplitError, match=r"split.test_cells: 'CELL9' matches no .* close matches: \['CELL"):
        resolve_cells(shared_smiles, ["CELL9"])


def test_unseen_auto_with_named_cells_tests_on_exactly_those_cells(multi):
    spec = SplitSpec(kind="unseen", test_set="auto", test_cells=["CELL2"])
    adata = multi.copy()
    column = spec.apply(adata)
    cells = adata.obs["cell_id"].astype(str).to_numpy()
    treated = ~adata.obs["is_control"].to_numpy()
    assert spec.labels("test") == ["cell_line_unseen"] and spec.name == "cell_line_unseen"
    np.testing.assert_array_equal(_rows_of(adata, column, ["cell_line_unseen"]), treated & (cells == "CELL2"))
    assert not _rows_of(adata, column, ["drug_unseen", "both_unseen"]).any()  # only what is named is held out


def test_unseen_auto_with_named_drug_and_cell_tests_both_unseen(shared_smiles):
    spec = SplitSpec(kind="unseen", test_set="auto", test_cells=["CELL1"], test_drugs=["drug0"])
    adata = shared_smiles.copy()
    column = spec.apply(adata)
    obs = adata.obs
    test = _rows_of(adata, column, spec.labels("test"))
    assert spec.name == "both_unseen"
    assert set(obs.loc[test, "cell_id"]) == {"CELL1"} and set(obs.loc[test, "drug"]) == {"drug0", "drug5"}
    seen = _rows_of(adata, column, ["train", "val"])
    assert "CELL1" not in set(obs.loc[seen, "cell_id"]) and "CO" not in set(obs.loc[seen, "smiles"])


def test_unseen_explicit_test_set_named_drugs_replace_the_random_choice(multi):
    spec = SplitSpec(kind="unseen", test_set="drug_unseen", drug_fraction=0.3, cell_fraction=0.34,
                     test_drugs=["drug7"])
    adata = multi.copy()
    column = spec.apply(adata)
    obs = adata.obs
    held = _rows_of(adata, column, ["drug_unseen", "both_unseen"])
    assert set(obs.loc[held, "drug"]) == {"drug7"}
    assert _rows_of(adata, column, ["cell_line_unseen"]).any()  # cells still drawn by cell_fraction


@pytest.mark.parametrize("by,key,named", [("cell", "cell_id", {"test_cells": ["CELL0", "CELL3"]}),
                                          ("drug", "drug", {"test_drugs": ["drug2", "drug4"]})])
def test_kfold_named_units_are_the_test_fold(multi, by, key, named):
    for fold in range(4):
        adata = multi.copy()
        column = kfold_split(adata, by=by, fold=fold, **named)
        units = adata.obs[key].astype(str).to_numpy()
        train, val, test = (set(units[_rows_of(adata, column, [s])]) for s in ("train", "val", "test"))
        assert test == set(next(iter(named.values())))
        assert train and val and not train & val and not (train | val) & test


def test_kfold_drug_with_named_cells_holds_those_cells_out_too(multi):
    adata = multi.copy()
    column = kfold_split(adata, by="drug", fold=1, test_cells=["CELL4"])
    obs = adata.obs
    seen, test = _rows_of(adata, column, ["train", "val"]), _rows_of(adata, column, ["test"])
    assert "CELL4" not in set(obs.loc[seen, "cell_id"])
    assert (obs.loc[test, "cell_id"] == "CELL4").any() and (obs.loc[test, "cell_id"] != "CELL4").any()
    fold_smiles = set(obs.loc[test & (obs["cell_id"] != "CELL4").to_numpy(), "smiles"])
    assert not fold_smiles & set(obs.loc[seen, "smiles"])


def test_random_kfold_holds_named_units_out_in_addition(multi):
    adata = multi.copy()
    column = kfold_split(adata, by="random", fold=0, test_cells=["CELL5"], test_drugs=["drug1"])
    obs = adata.obs
    seen, test = _rows_of(adata, column, ["train", "val"]), _rows_of(adata, column, ["test"])
    assert "CELL5" not in set(obs.loc[seen, "cell_id"]) and "drug1" not in set(obs.loc[seen, "drug"])
    treated = ~obs["is_control"].to_numpy()
    named = treated & ((obs["cell_id"] == "CELL5") | (obs["drug"] == "drug1")).to_numpy()
    assert test[named].all() and (test & ~named).any()  # plus the usual random fold


def test_organ_split_holds_named_drugs_out_too(multi):
    adata = multi.copy()
    organs = pd.Series({"CELL0": "lung", "CELL1": "kidney", "CELL2": "kidney", "CELL3": "skin",
                        "CELL4": "skin", "CELL5": "skin"})
    column = organ_split(adata, "lung", organs, test_drugs=["drug9"])
    obs = adata.obs
    seen, test = _rows_of(adata, column, ["train", "val"]), _rows_of(adata, column, ["test"])
    assert not {"CELL0"} & set(obs.loc[seen, "cell_id"]) and "drug9" not in set(obs.loc[seen, "drug"])
    assert set(obs.loc[test, "cell_id"]) == set(organs.index)  # CELL0, and drug9 in every cell line


def test_named_units_covering_everything_fail_clearly():
    adata = dataset(n_cells=2, n_drugs=3)
    with pytest.raises(SplitError, match="nothing is left to train on"):
        SplitSpec(kind="unseen", test_set="auto", test_cells=["CELL0", "CELL1"]).apply(adata)


def test_train_without_a_cell_line_and_test_on_it_is_one_override(multi):
    """`pertdit train split.test_cells=[CELL3]` on the default split: CELL3 is the test set, absent from training."""
    from hydra.utils import instantiate

    from tests.helpers import compose_train

    cfg = compose_train(["split.test_cells=[CELL3]"], Path("/tmp/unused"), Path("/tmp/unused"), Path("/tmp"))
    spec = instantiate(cfg.split)
    adata = multi.copy()
    column = spec.apply(adata)
    obs = adata.obs
    test = _rows_of(adata, column, spec.labels("test"))
    assert set(obs.loc[test, "cell_id"]) == {"CELL3"}
    assert test.sum() == ((obs["cell_id"] == "CELL3") & ~obs["is_control"]).sum()
    assert "CELL3" not in set(obs.loc[_rows_of(adata, column, ["train", "val"]), "cell_id"])
