"""Evaluation streams: the measures from running statistics equal the one-shot computation, and the running
statistics hold group sums, never the profiles."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from pertdit.lit.predictions import build_prediction_adata, write_prediction_h5ad
from pertdit.metrics import PerturbationMetrics, compute_measures, evaluate_h5ad
from pertdit.metrics.accumulate import GroupSums, MeasureAccumulator, merge_groups

from .test_measures import assert_matches_reference, make_data, reference_values


def blocks(n: int, size: int) -> list[slice]:
    return [slice(start, start + size) for start in range(0, n, size)]


@pytest.mark.parametrize("reference", ["paired", "cell_mean"])
def test_blocks_added_one_by_one_give_the_reference_measures(reference):
    d = make_data(seed=3, n=150)
    accumulator = MeasureAccumulator(relu=True)
    for rows in blocks(150, 11):
        accumulator.add(d["truth"][rows], d["pred"][rows], d["control"][rows], d["cell"][rows], d["drug"][rows],
                        d["dose"][rows])
    expected = reference_values(d["truth"], d["pred"], d["control"], d["cell"], d["drug"], d["dose"], relu=True,
                                control_reference=reference)
    assert_matches_reference(accumulator.table(reference), expected)


def test_rows_added_again_are_skipped():
    d = make_data(seed=4, n=60)
    rows = np.arange(60)
    accumulator = MeasureAccumulator()
    accumulator.add(d["truth"], d["pred"], d["control"], d["cell"], d["drug"], d["dose"], rows=rows)
    accumulator.add(d["truth"][:9], d["pred"][:9], d["control"][:9], d["cell"][:9], d["drug"][:9], d["dose"][:9],
                    rows=rows[:9])
    pd.testing.assert_frame_equal(accumulator.table(), compute_measures(d["truth"], d["pred"], d["control"],
                                                                        d["cell"], d["drug"], d["dose"]))


def test_group_sums_of_two_parts_merge_into_those_of_the_whole():
    rng = np.random.default_rng(0)
    keys = np.column_stack([rng.integers(0, 3, 40), rng.integers(0, 4, 40), rng.choice([0.1, 1.0], 40)])
    values = rng.normal(size=(40, 5))
    whole, first, second = GroupSums(), GroupSums(), GroupSums()
    whole.add(keys, values, 2 * values, 3 * values)
    first.add(keys[:25], values[:25], 2 * values[:25], 3 * values[:25])
    second.add(keys[25:], values[25:], 2 * values[25:], 3 * values[25:])
    merged = merge_groups(*(np.concatenate(parts) for parts in zip(first.arrays(), second.arrays())))
    order = [np.lexsort(k.T[::-1]) for k in (whole.arrays()[0], merged[0])]
    for expected, found in zip(whole.arrays(), merged):
        np.testing.assert_allclose(found[order[1]], expected[order[0]], rtol=1e-12)


def test_the_metric_keeps_group_sums_not_profiles():
    """12,000 profiles of 978 genes in 40 (cell, drug, dose) groups: the metric's memory is that of 40 groups."""
    rng = np.random.default_rng(1)
    metric = PerturbationMetrics()
    n, genes, batch = 12_000, 978, 250
    for start in range(0, n, batch):
        truth = torch.from_numpy(rng.normal(5, 1, size=(batch, genes)).astype(np.float32))
        metric.update(truth + 0.1, truth, truth - 0.2, torch.from_numpy(rng.integers(0, 4, batch)),
                      torch.from_numpy(rng.integers(0, 5, batch)), torch.from_numpy(rng.choice([1.0, 10.0], batch)),
                      row=torch.arange(start, start + batch))
    held = sum(t.numel() * t.element_size() for name in ("sample_row", "sample_r2", "sample_pcc")
               for t in getattr(metric, name))
    pending = sum(t.numel() * t.element_size() for name in ("pending_pred", "pending_truth", "pending_control")
                  for t in getattr(metric, name))
    keys, sums, counts = metric._groups.arrays()
    assert len(keys) == 40 and counts.sum() == n - batch  # the last batch is still pending
    assert held == 24 * (n - batch) and pending == 3 * 4 * batch * genes
    assert held + sums.nbytes + pending < 0.05 * 3 * 4 * n * genes  # vs three float32 copies of every profile
    assert metric.table().set_index(["metric", "grouping"]).loc[("r2", "cov_drug_dose"), "n_groups"] == 40


@pytest.fixture
def dataset() -> ad.AnnData:
    """A small dataset AnnData (the data contract) with paired controls."""
    d = make_data(seed=5, n=50)
    obs = pd.DataFrame({"cell_id": d["cell"], "drug": d["drug"], "dose": d["dose"],
                        "paired_control_index": np.arange(50) % 7}, index=[f"p{i}" for i in range(50)])
    return ad.AnnData(X=d["truth"], obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(d["truth"].shape[1])]))


def test_pred_written_in_blocks_equals_the_in_memory_pred_file(dataset, tmp_path: Path):
    rows = np.array([3, 1, 4, 15, 9, 26, 5, 35, 8, 48, 49])
    preds = np.random.default_rng(2).normal(size=(len(rows), dataset.n_vars)).astype(np.float32)
    dataset.uns["pertdit"] = {"representation": {"name": "text", "substitution_used": "RDKit-derived descriptions"}}
    path = write_prediction_h5ad(dataset, rows, preds, tmp_path / "PRED.h5ad", relu=True, block_rows=4)
    written, expected = ad.read_h5ad(path), build_prediction_adata(dataset, rows, preds, relu=True)
    np.testing.assert_array_equal(written.X, expected.X)
    for layer in ("truth", "control"):
        np.testing.assert_array_equal(written.layers[layer], expected.layers[layer])
    pd.testing.assert_frame_equal(written.obs, expected.obs, check_categorical=False, check_dtype=False)
    np.testing.assert_array_equal(written.uns["pertdit"]["rows"], rows)
    assert written.uns["pertdit"]["relu_predictions"]
    assert written.uns["pertdit"]["representation"]["substitution_used"] == "RDKit-derived descriptions"
    assert [p.name for p in tmp_path.iterdir()] == ["PRED.h5ad"]  # no temporary file left


def test_evaluate_reads_the_pred_file_in_blocks(dataset, tmp_path: Path):
    rows = np.arange(50)
    preds = dataset.X + np.random.default_rng(3).normal(0, 0.5, size=dataset.X.shape).astype(np.float32)
    path = write_prediction_h5ad(dataset, rows, preds, tmp_path / "PRED.h5ad")
    control = dataset.X[dataset.obs["paired_control_index"].to_numpy()]
    expected = compute_measures(dataset.X, preds, control, dataset.obs["cell_id"], dataset.obs["drug"],
                                dataset.obs["dose"])
    pd.testing.assert_frame_equal(evaluate_h5ad(path, ceiling=False, block_rows=6), expected, rtol=1e-12)
