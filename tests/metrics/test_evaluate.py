"""PRED.h5ad in, measures table out (DESIGN.md, "Evaluation contract")."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from pertdit.metrics import (
    GROUPINGS,
    compute_measures,
    evaluate_h5ad,
    format_table,
    read_prediction,
    write_metrics_csv,
)
from pertdit.metrics.measures import COLUMNS

from .test_measures import assert_matches_reference, make_data, reference_values


def measures(table: pd.DataFrame) -> pd.DataFrame:
    """The 10-measure columns of an evaluated table (without the replicate ceiling columns)."""
    return table[list(COLUMNS)]


def write_pred_h5ad(path: Path, d: dict, uns: dict | None = None, drop_layer: str | None = None) -> Path:
    """A PRED.h5ad as a model's test step writes it."""
    obs = pd.DataFrame(
        {"cell_id": d["cell"], "drug": d["drug"], "dose": d["dose"]},
        index=[f"profile_{i}" for i in range(len(d["dose"]))],
    )
    layers = {"truth": d["truth"], "control": d["control"]}
    layers.pop(drop_layer, None)
    adata = ad.AnnData(X=d["pred"], obs=obs, layers=layers, uns=uns or {})
    adata.write_h5ad(path)
    return path


def test_evaluate_h5ad_round_trip_matches_the_reference(tmp_path: Path):
    d = make_data(seed=11)
    path = write_pred_h5ad(tmp_path / "PRED.h5ad", d)
    table = evaluate_h5ad(path)
    assert_matches_reference(table, reference_values(**d))
    csv = write_metrics_csv(table, tmp_path / "out" / "metrics.csv")
    pd.testing.assert_frame_equal(pd.read_csv(csv), table)


def test_relu_follows_the_file_unless_given(tmp_path: Path):
    d = make_data(seed=12)
    d["pred"] = d["pred"] - 1.5
    path = write_pred_h5ad(tmp_path / "PRED.h5ad", d, uns={"pertdit": {"relu_predictions": True}})
    pd.testing.assert_frame_equal(measures(evaluate_h5ad(path)), compute_measures(**d, relu=True))
    pd.testing.assert_frame_equal(measures(evaluate_h5ad(path, relu=False)), compute_measures(**d, relu=False))
    plain = write_pred_h5ad(tmp_path / "plain.h5ad", d)
    pd.testing.assert_frame_equal(measures(evaluate_h5ad(plain)), compute_measures(**d, relu=False))


def test_control_reference_option_reaches_the_measures(tmp_path: Path):
    d = make_data(seed=13)
    path = write_pred_h5ad(tmp_path / "PRED.h5ad", d)
    table = evaluate_h5ad(path, control_reference="cell_mean")
    assert_matches_reference(table, reference_values(**d, control_reference="cell_mean"))


def test_missing_layer_is_named_with_the_file(tmp_path: Path):
    path = write_pred_h5ad(tmp_path / "PRED.h5ad", make_data(n=10), drop_layer="control")
    with pytest.raises(ValueError, match=r"layers\['control'\] is missing") as error:
        read_prediction(path)
    assert "PRED.h5ad" in str(error.value)


def test_missing_obs_column_and_missing_file_are_named(tmp_path: Path):
    d = make_data(n=10)
    path = write_pred_h5ad(tmp_path / "PRED.h5ad", d)
    adata = ad.read_h5ad(path)
    del adata.obs["dose"]
    adata.write_h5ad(path)
    with pytest.raises(ValueError, match=r"\['dose'\] missing"):
        evaluate_h5ad(path)
    with pytest.raises(ValueError, match="nowhere.h5ad does not exist"):
        read_prediction(tmp_path / "nowhere.h5ad")


def test_format_table_shows_the_ten_means_by_grouping():
    d = make_data(seed=14)
    table = compute_measures(**d)
    text = format_table(table)
    lines = text.splitlines()
    assert lines[0].split() == ["grouping", "r2", "pcc_lnfc", "n_groups"]
    assert [line.split()[0] for line in lines[2:]] == list(GROUPINGS)
    drug = table.set_index(["metric", "grouping"]).loc[("pcc_lnfc", "drug"), "mean"]
    assert f"{drug:.4f}" in lines[-1]
