"""Preprocessing on the real plate: filters reported by name, transform recorded, controls paired."""

from __future__ import annotations

import numpy as np
import pytest

from pertdit.data.preprocess import PreprocessConfig, align_genes, preprocess
from pertdit.data.readers import read_gct
from pertdit.data.transforms import apply_transform, prnet_transform
from pertdit.errors import DataError
from tests.data.synthetic import raw_anndata


@pytest.fixture(scope="module")
def raw(level3_path):
    return read_gct(level3_path)


@pytest.fixture(scope="module")
def plate(raw, compounds_path):
    return preprocess(raw.copy(), compounds_path)


def test_keeps_treated_compounds_and_vehicle_controls(plate, raw):
    assert set(plate.obs["pert_type"]) == {"trt_cp", "ctl_vehicle"}
    assert int(plate.obs["is_control"].sum()) == 26
    assert plate.n_vars == 978
    treated = plate.obs[~plate.obs["is_control"]]
    assert (treated["dose"] > 0).all() and (plate.obs.loc[plate.obs["is_control"], "dose"] == 0).all()
    assert (treated["smiles"].str.len() > 0).all()


def test_compound_without_structure_is_dropped_and_reported_by_name(plate, raw):
    report = plate.uns["pertdit"]["preprocess"]
    assert any("BRD-U60236422" in s for s in report["invalid_smiles"])
    assert "BRD-U60236422" not in set(plate.obs["pert_id"])
    raw_trt = raw.obs[raw.obs["pert_type"] == "trt_cp"]
    assert "BRD-U60236422" in set(raw_trt["pert_id"])


def test_rare_compounds_dropped_with_counts(raw, compounds_path):
    counts = raw.obs.loc[raw.obs["pert_type"] == "trt_cp", "pert_id"].value_counts()
    strict = preprocess(raw.copy(), compounds_path, PreprocessConfig(min_observations=6))
    report = strict.uns["pertdit"]["preprocess"]["too_few_observations"]
    expected = {pid for pid, n in counts.items() if n < 6 and pid != "BRD-U60236422"}
    assert set(report) == expected and expected
    assert not expected & set(strict.obs["pert_id"])


def test_controls_paired_within_cell_line_and_plate(plate):
    paired = plate.obs["paired_control_index"].to_numpy()
    is_control = plate.obs["is_control"].to_numpy()
    assert is_control[paired].all()
    assert (paired[is_control] == np.flatnonzero(is_control)).all()
    cells = plate.obs["cell_id"].to_numpy()
    plates = plate.obs["plate"].to_numpy()
    assert (cells[paired] == cells).all() and (plates[paired] == plates).all()
    assert len(np.unique(paired[~is_control])) > 10, "pairing should spread over the plate's controls"


def test_prnet_transform_matches_its_definition(plate, raw):
    row = raw.obs_names.get_loc(plate.obs_names[0])
    clipped = np.clip(raw.X.astype(np.float64), 0, 1e3)
    totals = clipped.sum(1)
    expected_row = np.log1p(clipped[row] * np.median(totals[np.isin(raw.obs_names, plate.obs_names)]) / totals[row])
    np.testing.assert_allclose(plate.X[0], expected_row, rtol=1e-5)
    assert plate.uns["pertdit"]["transform"] == "prnet"


def test_transform_never_applied_twice(plate):
    with pytest.raises(DataError, match="already transformed with 'prnet'"):
        apply_transform(plate.copy(), "prnet")


def test_group_keys(plate):
    row = plate.obs[~plate.obs["is_control"]].iloc[0]
    assert row["cov_drug_dose"] == f"A375_{row['drug']}_{row['dose']:g}"
    assert row["drug_dose"] == f"{row['drug']}_{row['dose']:g}"
    assert row["cov_drug"] == f"A375_{row['drug']}"


def test_nan_values_give_one_clear_error():
    raw = raw_anndata(n_cells=1)
    raw.X[3, 5] = np.nan
    with pytest.raises(DataError, match=r"1 NaN/infinite values in 1 profile\(s\), e.g. \['prof3'\]"):
        preprocess(raw)


def test_missing_genes_named():
    raw = raw_anndata(n_cells=1)
    with pytest.raises(DataError, match=r"2 of 3 expected genes are missing, e.g. \['NOPE1', 'NOPE2'\]"):
        align_genes(raw, ["GENE0", "NOPE1", "NOPE2"])


def test_missing_metadata_named():
    raw = raw_anndata(n_cells=1)
    del raw.obs["cell_id"]
    with pytest.raises(DataError, match=r"lacks \['cell_id'\]"):
        preprocess(raw)


def test_cell_line_without_controls_is_an_error():
    raw = raw_anndata(n_cells=2)
    raw = raw[~((raw.obs["cell_id"] == "CELL1") & (raw.obs["pert_type"] == "ctl_vehicle"))].copy()
    with pytest.raises(DataError, match=r"no vehicle control for cell line\(s\) \['CELL1'\]"):
        preprocess(raw, config=PreprocessConfig(transform="none", min_observations=2))


def test_prnet_transform_rows_sum_to_median_before_log():
    X = np.array([[1.0, 3.0], [2.0, 2.0], [10.0, 30.0]])
    out = np.expm1(prnet_transform(X))
    np.testing.assert_allclose(out.sum(1), np.median(X.sum(1)), rtol=1e-6)
