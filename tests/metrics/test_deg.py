"""DEG case study on the real plate: top DEGs per drug (scanpy vs controls), PCC(lnFC) on them, the paired
t-test between two methods, and the plots; every number against a direct numpy/scipy computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pertdit.data.preprocess import preprocess
from pertdit.data.readers import read_gct
from pertdit.figures.deg import deg_lnfc_heatmap, deg_pcc_boxplot
from pertdit.lit.predictions import build_prediction_adata
from pertdit.metrics.deg import DEG_COLUMNS, compare_methods, deg_pcc, top_degs, truth_with_controls


@pytest.fixture(scope="module")
def plate(level3_path, compounds_path):
    return preprocess(read_gct(level3_path), compounds_path)


@pytest.fixture(scope="module")
def degs(plate):
    return top_degs(plate, n_drugs=6)


def _lnfc(adata, drug: str) -> np.ndarray:
    """Direct: mean of the drug's profiles minus mean of the vehicle controls."""
    X = np.asarray(adata.X, dtype=np.float64)
    drugs = adata.obs["drug"].astype(str).to_numpy()
    return X[drugs == drug].mean(axis=0) - X[drugs == "control"].mean(axis=0)


def _predictions(plate, noise: float, seed: int):
    """A PRED AnnData of every treated profile: truth + Gaussian noise."""
    rows = np.flatnonzero(~plate.obs["is_control"].to_numpy(bool))
    truth = np.asarray(plate.X[rows], dtype=np.float32)
    preds = truth + np.random.default_rng(seed).normal(0, noise, truth.shape).astype(np.float32)
    return build_prediction_adata(plate, rows, preds)


def test_top_drugs_are_those_with_most_samples(plate, degs):
    counts = plate.obs.loc[~plate.obs["is_control"].to_numpy(bool), "drug"].astype(str).value_counts()
    chosen = list(dict.fromkeys(degs["drug"]))
    assert len(chosen) == 6 and list(degs.columns) == list(DEG_COLUMNS)
    assert counts[chosen].min() >= counts.drop(chosen).max()
    assert (degs["n_samples"] == degs["drug"].map(counts)).all()


def test_up_and_down_degs_have_the_sign_of_their_mean_lnfc(plate, degs):
    for drug, part in degs.groupby("drug"):
        lnfc = pd.Series(_lnfc(plate, drug), index=plate.var_names)
        up = part.loc[part["direction"] == "up", "gene"]
        down = part.loc[part["direction"] == "down", "gene"]
        assert len(up) == 25 and len(down) == 25 and not set(up) & set(down)
        assert (lnfc[up] > 0).all() and (lnfc[down] < 0).all()
        np.testing.assert_allclose(part.set_index("gene")["lnfc"], lnfc[part["gene"]], rtol=1e-6, atol=1e-9)


def test_degs_are_the_top_welch_t_genes_on_the_log_data(plate, degs):
    """scanpy's t-test on X as it is (no normalize_total, no log1p) = scipy's Welch t per gene."""
    X = np.asarray(plate.X, dtype=np.float64)
    drugs = plate.obs["drug"].astype(str).to_numpy()
    for drug, part in degs.groupby("drug"):
        t = stats.ttest_ind(X[drugs == drug], X[drugs == "control"], equal_var=False).statistic
        t = pd.Series(t, index=plate.var_names)
        lnfc = pd.Series(_lnfc(plate, drug), index=plate.var_names)
        expected_up = t[(t > 0) & (lnfc > 0)].sort_values(ascending=False).index[:25]
        expected_down = t[(t < 0) & (lnfc < 0)].sort_values().index[:25]
        assert list(part.loc[part["direction"] == "up", "gene"]) == list(expected_up)
        assert list(part.loc[part["direction"] == "down", "gene"]) == list(expected_down)
        np.testing.assert_allclose(part.set_index("gene")["score"], t[part["gene"]], rtol=1e-4)


def test_deg_pcc_equals_a_direct_pearson_on_the_degs(plate, degs):
    pred = _predictions(plate, noise=0.3, seed=0)
    table = deg_pcc(pred, degs)
    assert list(table["drug"]) == list(dict.fromkeys(degs["drug"]))
    truth, preds, control = (np.asarray(m, dtype=np.float64) for m in (pred.layers["truth"], pred.X,
                                                                        pred.layers["control"]))
    drugs = pred.obs["drug"].astype(str).to_numpy()
    for row in table.itertuples():
        genes = pred.var_names.get_indexer(degs.loc[degs["drug"] == row.drug, "gene"])
        rows = drugs == row.drug
        true_lnfc = truth[rows].mean(0) - control[rows].mean(0)
        pred_lnfc = preds[rows].mean(0) - control[rows].mean(0)
        expected = stats.pearsonr(true_lnfc[genes], pred_lnfc[genes]).statistic
        assert row.pcc == pytest.approx(expected, abs=1e-10)
        assert row.n_genes == 50 and row.n_samples == rows.sum()


def test_degs_of_a_prediction_file_use_its_truth_and_paired_controls(plate):
    pred = _predictions(plate, noise=0.3, seed=0)
    stacked = truth_with_controls(pred)
    n_controls = int(plate.obs["is_control"].sum())
    assert stacked.n_obs == pred.n_obs + n_controls  # every vehicle well is some profile's paired control
    pd.testing.assert_frame_equal(top_degs(stacked, n_drugs=3), top_degs(plate, n_drugs=3), rtol=1e-9)


def test_compare_methods_is_scipys_paired_t_test(plate, degs):
    good = deg_pcc(_predictions(plate, noise=0.2, seed=1), degs)
    worse = deg_pcc(_predictions(plate, noise=0.6, seed=2), degs)
    result = compare_methods(good, worse.iloc[::-1])  # matched by drug, not by position
    expected = stats.ttest_rel(good["pcc"], worse["pcc"])
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert result.pvalue == pytest.approx(expected.pvalue, rel=1e-12)
    assert result.n == len(good) and result.mean_difference > 0
    same = compare_methods(good["pcc"].to_numpy(), worse["pcc"].to_numpy())
    assert same.statistic == pytest.approx(expected.statistic, rel=1e-12)


def test_plots_are_written_as_png_and_pdf(plate, degs, tmp_path):
    a = _predictions(plate, noise=0.2, seed=1)
    b = _predictions(plate, noise=0.6, seed=2)
    tables = {"model A": deg_pcc(a, degs), "model B": deg_pcc(b, degs)}
    box = deg_pcc_boxplot(tables, tmp_path / "fig4a_box", test=compare_methods(*tables.values()))
    heat = deg_lnfc_heatmap(a, degs, tmp_path / "fig4a_heatmap.png")
    for path in [*box, *heat]:
        assert path.is_file() and path.stat().st_size > 1000
    assert [p.suffix for p in heat] == [".png", ".pdf"]
    assert heat[1].read_bytes()[:4] == b"%PDF" and box[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
