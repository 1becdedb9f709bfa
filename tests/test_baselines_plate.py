"""PRnet and ChemCPA on the real plate, through the same train path as every model."""

from __future__ import annotations

import numpy as np
import pytest

from pertdit.train import train
from tests.helpers import QUIET, compose_train


@pytest.fixture(scope="module")
def mean_shift_pcc(tmp_path_factory, cache, data_dir):
    run = tmp_path_factory.mktemp("mean_shift")
    return train(compose_train(["model=mean_shift", "split=random_fold", *QUIET], run, cache, data_dir))[
        "test/pcc_lnfc/per_sample"]


@pytest.mark.parametrize("model", ["prnet", "chemcpa"])
def test_trains_on_the_plate_and_beats_mean_shift_on_seen_drugs(model, mean_shift_pcc, tmp_path, cache, data_dir):
    # PRnet as published scores one sample of its Gaussian; what it learned is its mean (predict_mode=mean)
    point = ["model.predict_mode=mean"] if model == "prnet" else []
    metrics = train(compose_train([f"model={model}", "split=random_fold", *QUIET, "trainer.max_epochs=100",
                                   *point], tmp_path, cache, data_dir))
    assert metrics["test/pcc_lnfc/per_sample"] > mean_shift_pcc + 0.02


@pytest.mark.parametrize("model", ["prnet", "chemcpa"])
def test_predicts_unseen_drugs(model, tmp_path, cache, data_dir):
    metrics = train(compose_train([f"model={model}", "split=drug_unseen", *QUIET, "trainer.max_epochs=20"],
                                  tmp_path, cache, data_dir))
    assert np.isfinite(metrics["test/pcc_lnfc/per_sample"]) and np.isfinite(metrics["test/r2/drug"])
    import anndata as ad

    pred = ad.read_h5ad(tmp_path / "PRED.h5ad")
    assert pred.n_obs == 66 and np.isfinite(pred.X).all()
