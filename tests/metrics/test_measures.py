"""The 10 measures against a straightforward reference (loops, sklearn r2_score, scipy pearsonr, pandas)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr
from sklearn.metrics import r2_score

from pertdit.metrics import (
    GROUPINGS,
    METRICS,
    compute_measures,
    group_keys,
    group_means,
    pearson_rows,
    r2_rows,
)

GROUP_COLUMNS = {
    "cov_drug_dose": ["cell", "drug", "dose"],
    "cov_drug": ["cell", "drug"],
    "drug_dose": ["drug", "dose"],
    "drug": ["drug"],
}


def make_data(seed: int = 0, n: int = 120, n_genes: int = 40) -> dict:
    """Random log-scale-like profiles with several cells, drugs and doses; predictions near the truth."""
    rng = np.random.default_rng(seed)
    control = rng.gamma(2.0, 1.0, size=(n, n_genes)).astype(np.float32)
    truth = (control + rng.normal(0, 0.5, size=(n, n_genes))).astype(np.float32)
    pred = (truth + rng.normal(0, 0.7, size=(n, n_genes))).astype(np.float32)
    return {
        "truth": truth,
        "pred": pred,
        "control": control,
        "cell": rng.choice(["A549", "MCF7", "PC3"], size=n),
        "drug": rng.choice(["aspirin", "bortezomib", "vorinostat", "BRD-K123"], size=n),
        "dose": rng.choice([0.04, 1.11, 10.0], size=n),
    }


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    return np.nan if np.ptp(y) == 0 else r2_score(y, p)


def _pcc(a: np.ndarray, b: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns (and returns NaN) on constant input
        return float(pearsonr(a, b)[0])


def reference_values(truth, pred, control, cell, drug, dose, relu=False, control_reference="paired") -> dict:
    """{(metric, grouping): per-sample or per-group values}, computed one sample / one group at a time."""
    y, p, x = (np.asarray(a, dtype=np.float64) for a in (truth, pred, control))
    if relu:
        p = np.maximum(p, 0)
    values = {
        ("r2", "per_sample"): np.array([_r2(y[i], p[i]) for i in range(len(y))]),
        ("pcc_lnfc", "per_sample"): np.array([_pcc(y[i] - x[i], p[i] - x[i]) for i in range(len(y))]),
    }
    obs = pd.DataFrame({"cell": cell, "drug": drug, "dose": dose})
    if control_reference == "paired":
        sample_ref = x
    else:
        cell_ref = {c: x[idx].mean(axis=0) for c, idx in obs.groupby("cell").indices.items()}
        sample_ref = np.stack([cell_ref[c] for c in obs["cell"]])
    for grouping, columns in GROUP_COLUMNS.items():
        r2s, pccs = [], []
        for idx in obs.groupby(columns).indices.values():
            my, mp, ref = y[idx].mean(axis=0), p[idx].mean(axis=0), sample_ref[idx].mean(axis=0)
            r2s.append(_r2(my, mp))
            pccs.append(_pcc(my - ref, mp - ref))
        values["r2", grouping], values["pcc_lnfc", grouping] = np.array(r2s), np.array(pccs)
    return values


def assert_matches_reference(table: pd.DataFrame, values: dict) -> None:
    """Every row of `table` summarises the matching reference values (NaN excluded and counted)."""
    assert list(zip(table["metric"], table["grouping"])) == [(m, g) for m in METRICS for g in GROUPINGS]
    for row in table.itertuples():
        v = values[row.metric, row.grouping]
        kept = v[~np.isnan(v)]
        assert row.n_groups == len(v), (row.metric, row.grouping)
        assert row.n_nan == len(v) - len(kept), (row.metric, row.grouping)
        expected = [kept.mean(), np.median(kept), kept.min(), kept.max()]
        actual = [row.mean, row.median, row.min, row.max]
        label = f"{row.metric}/{row.grouping}"
        np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-12, err_msg=label)


def test_r2_rows_is_sklearn_r2_score_per_row_truth_first():
    d = make_data(n=20)
    expected = [r2_score(d["truth"][i], d["pred"][i]) for i in range(20)]
    swapped = [r2_score(d["pred"][i], d["truth"][i]) for i in range(20)]
    np.testing.assert_allclose(r2_rows(d["truth"], d["pred"]), expected, rtol=1e-6)
    assert not np.allclose(r2_rows(d["truth"], d["pred"]), swapped, rtol=1e-3)


def test_r2_rows_is_nan_for_a_constant_truth_row():
    truth = np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0]])
    pred = np.array([[1.0, 2.0, 4.0], [1.0, 2.0, 3.0]])
    r2 = r2_rows(truth, pred)
    assert r2[0] == pytest.approx(r2_score(truth[0], pred[0]))
    assert np.isnan(r2[1])


def test_pearson_rows_is_scipy_pearsonr_per_row_and_nan_when_constant():
    d = make_data(n=20)
    a, b = d["truth"] - d["control"], d["pred"] - d["control"]
    b[3] = 0.5  # constant row
    expected = [_pcc(a[i], b[i]) for i in range(20)]
    r = pearson_rows(a, b)
    assert np.isnan(r[3]) and np.isnan(expected[3])
    np.testing.assert_allclose(r, expected, rtol=1e-6)


def test_group_keys_number_the_groups_of_each_grouping():
    d = make_data(n=60)
    keys = group_keys(d["cell"], d["drug"], d["dose"])
    obs = pd.DataFrame({"cell": d["cell"], "drug": d["drug"], "dose": d["dose"]})
    assert set(keys) == set(GROUP_COLUMNS)
    for grouping, columns in GROUP_COLUMNS.items():
        np.testing.assert_array_equal(keys[grouping], obs.groupby(columns).ngroup().to_numpy())


def test_group_keys_accept_integer_ids():
    keys = group_keys(np.array([3, 3, 1]), np.array([7, 8, 7]), np.array([1.0, 1.0, 1.0]))
    np.testing.assert_array_equal(keys["cov_drug"], [1, 2, 0])
    np.testing.assert_array_equal(keys["drug"], [0, 1, 0])


@pytest.mark.parametrize("control_reference", ["paired", "cell_mean"])
def test_every_measure_matches_the_reference(control_reference):
    d = make_data(seed=1)
    table = compute_measures(**d, control_reference=control_reference)
    assert list(table.columns) == ["metric", "grouping", "mean", "median", "min", "max", "n_groups", "n_nan"]
    assert_matches_reference(table, reference_values(**d, control_reference=control_reference))


def test_cell_mean_reference_changes_only_the_grouped_pcc():
    d = make_data(seed=2)
    paired = compute_measures(**d).set_index(["metric", "grouping"])["mean"]
    cell_mean = compute_measures(**d, control_reference="cell_mean").set_index(["metric", "grouping"])["mean"]
    np.testing.assert_allclose(paired["r2"], cell_mean["r2"])
    assert paired["pcc_lnfc", "per_sample"] == cell_mean["pcc_lnfc", "per_sample"]
    assert not np.isclose(paired["pcc_lnfc", "drug"], cell_mean["pcc_lnfc", "drug"])


def test_relu_clamps_predictions_at_zero_before_scoring():
    d = make_data(seed=3)
    d["pred"] = d["pred"] - 1.5  # many negative predictions
    with_relu = compute_measures(**d, relu=True)
    assert_matches_reference(with_relu, reference_values(**d, relu=True))
    clamped = compute_measures(**{**d, "pred": np.maximum(d["pred"], 0)})
    pd.testing.assert_frame_equal(with_relu, clamped)
    assert not np.allclose(with_relu["mean"], compute_measures(**d)["mean"])


def test_constant_profiles_give_nan_that_are_counted_and_excluded():
    d = make_data(seed=4, n=30)
    d["truth"][0] = 2.0  # constant truth: R2 undefined for sample 0 ...
    d["drug"][0] = "solo"  # ... and for the groups made of sample 0 alone
    d["pred"][1] = d["control"][1]  # p - x == 0: PCC(lnFC) undefined for sample 1
    table = compute_measures(**d).set_index(["metric", "grouping"])
    assert (table.loc["r2", "n_nan"] == 1).all()
    assert table.loc[("pcc_lnfc", "per_sample"), "n_nan"] == 1
    assert np.isfinite(table["mean"]).all()
    assert_matches_reference(compute_measures(**d), reference_values(**d))


def test_a_measure_with_only_nan_values_reports_nan_statistics():
    d = make_data(seed=5, n=10)
    d["pred"] = d["control"].copy()  # the "predict the control" baseline: no fold change at all
    table = compute_measures(**d).set_index(["metric", "grouping"])
    pcc = table.loc["pcc_lnfc"]
    assert (pcc["n_nan"] == pcc["n_groups"]).all()
    assert pcc[["mean", "median", "min", "max"]].isna().all().all()


@pytest.mark.parametrize("name", ["truth", "pred", "control"])
def test_nan_in_an_input_is_reported_by_name_and_count(name):
    d = make_data(n=10)
    d[name][2, :3] = np.nan
    with pytest.raises(ValueError, match=f"{name} contains 3 NaN"):
        compute_measures(**d)


def test_shape_and_length_mismatches_are_rejected():
    d = make_data(n=10)
    with pytest.raises(ValueError, match="same shape"):
        compute_measures(**{**d, "pred": d["pred"][:, :5]})
    with pytest.raises(ValueError, match="2-D"):
        compute_measures(**{**d, "truth": d["truth"][0]})
    with pytest.raises(ValueError, match="rows"):
        compute_measures(**{**d, "cell": d["cell"][:9], "drug": d["drug"][:9], "dose": d["dose"][:9]})
    with pytest.raises(ValueError, match="same length"):
        compute_measures(**{**d, "dose": d["dose"][:9]})
    with pytest.raises(ValueError, match="control_reference"):
        compute_measures(**d, control_reference="plate")
    with pytest.raises(ValueError, match="dose has 1 missing"):
        compute_measures(**{**d, "dose": np.r_[np.nan, d["dose"][1:]]})


def test_no_samples_gives_nan_statistics_and_zero_groups():
    empty = np.zeros((0, 5), dtype=np.float32)
    table = compute_measures(empty, empty, empty, [], [], [])
    assert len(table) == 10
    assert (table["n_groups"] == 0).all() and table["mean"].isna().all()


def test_results_do_not_depend_on_the_block_size(monkeypatch):
    d = make_data(seed=9)
    whole = compute_measures(**d, control_reference="cell_mean")
    monkeypatch.setattr("pertdit.metrics.measures._CHUNK_ROWS", 7)  # many blocks, groups cut nowhere
    blocked = compute_measures(**d, control_reference="cell_mean")
    pd.testing.assert_frame_equal(blocked, whole, rtol=1e-12)
    assert_matches_reference(blocked, reference_values(**d, control_reference="cell_mean"))


def test_group_means_are_pandas_groupby_means():
    d = make_data(seed=10, n=50)
    codes = group_keys(d["cell"], d["drug"], d["dose"])["cov_drug"]
    expected = pd.DataFrame(d["truth"].astype(np.float64)).groupby(codes).mean().to_numpy()
    np.testing.assert_allclose(group_means(codes, d["truth"]), expected, rtol=1e-12)
