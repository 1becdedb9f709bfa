"""One training scored on every unseen test set (`split=unseen split.test_set=all`), on the shipped collection
(data=bundle; no ../shared needed): the three test sets of the split, one metrics_<set>.csv and PRED_<set>.h5ad
each, the same numbers as a run that scores one test set."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from pertdit.data.split_spec import SplitSpec
from pertdit.data.splits import UNSEEN_TEST_SETS
from pertdit.errors import SplitError
from pertdit.metrics import evaluate_h5ad
from pertdit.train import build_datamodule, output_names, train
from tests.helpers import QUIET, compose_train

#: the collection benchmark of docs/results.md: HT115 held out, 20 % of the SMILES held out
PROTOCOL = ["data=bundle", "split=unseen", "split.test_cells=[HT115]", "split.drug_fraction=0.2"]


def _compose(overrides, run_dir, cache, callbacks="callbacks=none"):
    quiet = [q for q in QUIET if not q.startswith("callbacks=")]
    return compose_train([*PROTOCOL, *overrides, *quiet, callbacks], run_dir, cache, run_dir)


def test_test_set_all_names_the_three_unseen_test_sets():
    spec = SplitSpec(kind="unseen", test_set="all", cell_fraction=0.2)
    assert spec.scores_every_test_set and spec.test_sets == UNSEEN_TEST_SETS
    assert spec.name == "unseen_all"
    assert [spec.labels("test", name) for name in UNSEEN_TEST_SETS] == [[name] for name in UNSEEN_TEST_SETS]
    single = SplitSpec(kind="unseen", test_set="both_unseen", cell_fraction=0.2)
    assert not single.scores_every_test_set and single.test_sets == ("both_unseen",)


def test_test_set_all_needs_drugs_and_cell_lines_to_hold_out():
    with pytest.raises(SplitError, match="cell_line_unseen.*cell_fraction"):
        SplitSpec(kind="unseen", test_set="all", cell_fraction=0.0)


def test_a_test_set_the_split_does_not_score_is_refused():
    with pytest.raises(SplitError, match="not scored by split"):
        SplitSpec(kind="unseen", test_set="drug_unseen").labels("test", "both_unseen")


def test_the_data_module_serves_each_test_set_in_turn(tmp_path, cache):
    dm = build_datamodule(_compose(["split.test_set=all"], tmp_path, cache))
    labels = dm.adata.obs[dm.split_column].astype(str).to_numpy()
    for name in UNSEEN_TEST_SETS:
        dm.select_test_set(name)
        np.testing.assert_array_equal(dm.rows["test"], np.flatnonzero(labels == name))
        served = np.concatenate([batch["row"].numpy() for batch in dm.test_dataloader()])
        np.testing.assert_array_equal(served, dm.rows["test"])
    ht115 = dm.adata.obs["cell_id"].astype(str).to_numpy() == "HT115"
    assert ht115[dm.test_set_rows["cell_line_unseen"]].all() and ht115[dm.test_set_rows["both_unseen"]].all()
    assert not ht115[dm.test_set_rows["drug_unseen"]].any()


def test_output_names_carry_the_test_set():
    assert output_names(False) == ("metrics.csv", "PRED.h5ad")
    assert output_names(False, "both_unseen") == ("metrics_both_unseen.csv", "PRED_both_unseen.h5ad")
    assert output_names(True, "drug_unseen") == ("metrics_drug_unseen.smoke.csv", "PRED_drug_unseen.smoke.h5ad")


def test_one_training_scores_each_test_set_as_a_single_set_run_does(tmp_path, cache):
    """PRnet (2 epochs, its best checkpoint) trained once with test_set=all gives, on both_unseen, the measures
    and the ceiling of a run with test_set=both_unseen and the same seed; each file is its predictions' scores."""
    epochs = ["model=prnet", "trainer.max_epochs=2", "callbacks.early_stopping=null"]
    metrics = train(_compose([*epochs, "split.test_set=all"], tmp_path / "all", cache, "callbacks=default"))
    for name in UNSEEN_TEST_SETS:
        table = pd.read_csv(tmp_path / "all" / f"metrics_{name}.csv")
        pred = ad.read_h5ad(tmp_path / "all" / f"PRED_{name}.h5ad")
        assert pred.uns["pertdit"]["split"] == name and "epoch001" in pred.uns["pertdit"]["checkpoint"]
        again = evaluate_h5ad(tmp_path / "all" / f"PRED_{name}.h5ad")
        np.testing.assert_allclose(table["mean"], again["mean"], rtol=1e-5, atol=1e-7)
        assert {"ceiling_mean", "model_same_rows_mean"} <= set(table.columns)
        assert metrics[f"test/{name}/pcc_lnfc/per_sample"] == pytest.approx(
            table.set_index(["metric", "grouping"]).loc[("pcc_lnfc", "per_sample"), "mean"], rel=1e-5)
    assert not (tmp_path / "all" / "metrics.csv").exists()

    train(_compose([*epochs, "split.test_set=both_unseen"], tmp_path / "one", cache, "callbacks=default"))
    single = pd.read_csv(tmp_path / "one" / "metrics.csv")
    both = pd.read_csv(tmp_path / "all" / "metrics_both_unseen.csv")
    pd.testing.assert_frame_equal(single, both, rtol=1e-5)
    assert not list((tmp_path / "one").glob("metrics_*.csv"))


def test_a_smoke_test_of_every_test_set_is_marked_as_one(tmp_path, cache):
    train(_compose(["model=mean_shift", "split.test_set=all", "trainer.fast_dev_run=true"], tmp_path, cache))
    for name in UNSEEN_TEST_SETS:
        assert pd.read_csv(tmp_path / f"metrics_{name}.smoke.csv")["smoke_test"].all()
        assert (tmp_path / f"PRED_{name}.smoke.h5ad").is_file()


def test_each_test_set_gets_its_own_calibration_of_the_spread(tmp_path, cache):
    """mean_shift's Gaussian (training residual SD): calibration_<set>.csv beside metrics_<set>.csv, computed
    from that set's PRED_<set>.h5ad spread layers (docs/calibration.md)."""
    from pertdit.metrics.calibration import prediction_calibration

    train(_compose(["model=mean_shift", "split.test_set=all"], tmp_path, cache))
    for name in UNSEEN_TEST_SETS:
        table = pd.read_csv(tmp_path / f"calibration_{name}.csv")
        again = prediction_calibration(ad.read_h5ad(tmp_path / f"PRED_{name}.h5ad"))
        np.testing.assert_allclose(table["coverage"], again["coverage"], rtol=1e-6)
        assert set(table["spread"]) == {"gaussian"}
    assert not (tmp_path / "calibration.csv").exists()
