"""The predicted spread of a trained run on the real plate: spread layers in PRED.h5ad and calibration.csv for
a diffusion model (its samples), PRnet (its predicted variance) and mean_shift (the training residual SD);
`pertdit evaluate` reports it. docs/calibration.md."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from pertdit.cli import main
from pertdit.lit.baselines import drug_vector
from pertdit.metrics.calibration import spread_layer_names
from pertdit.train import build_datamodule, build_model, train
from tests.helpers import QUIET, TINY_BACKBONE, compose_train

TINY_DIT = ["model=crossdit", *QUIET, *TINY_BACKBONE, "split=random_fold", "trainer.limit_val_batches=0",
            "trainer.max_epochs=1", "diffusion=ddim", "diffusion.sampling_steps=3", "model.warmup_steps=2",
            "trainer.limit_train_batches=3"]


@pytest.fixture(scope="module")
def dit_run(tmp_path_factory, cache, data_dir):
    """A tiny crossdit trained for 3 steps and tested: its run folder."""
    run_dir = tmp_path_factory.mktemp("dit")
    train(compose_train([*TINY_DIT, "diffusion.eval_samples=2", "diffusion.spread_samples=4"], run_dir, cache,
                        data_dir))
    return run_dir


def test_a_diffusion_run_writes_its_spread_layers_and_calibration_csv(dit_run):
    pred = ad.read_h5ad(dit_run / "PRED.h5ad")
    assert set(spread_layer_names()) <= set(pred.layers.keys())
    assert pred.uns["pertdit"]["spread"] == "samples"
    lower, upper = pred.layers["interval_90_lower"], pred.layers["interval_90_upper"]
    sd = pred.layers["spread_sd"]  # 0 where every sample is ReLU'd to 0 (on for the plate's transform)
    assert np.all(lower <= upper) and np.all(sd >= 0) and (sd > 0).mean() > 0.5
    table = pd.read_csv(dit_run / "calibration.csv")
    inside = (pred.layers["truth"] >= lower) & (pred.layers["truth"] <= upper)
    gaussian_90 = table.query("interval == 'gaussian' and level == 0.9")["coverage"].item()
    assert gaussian_90 == pytest.approx(inside.mean(), abs=1e-6)


def test_the_spread_does_not_change_the_point_prediction(tmp_path, cache, data_dir):
    """The point prediction is the mean of the first eval_samples draws, with or without a spread."""
    cfg = compose_train([*TINY_DIT, "diffusion.eval_samples=2", "diffusion.spread_samples=5"], tmp_path, cache,
                        data_dir)
    dm = build_datamodule(cfg)
    model = build_model(cfg, dm, tmp_path).eval()
    batch = dm.batch_of_rows(dm.rows["train"][:6])
    pred, spread = model.predict_with_spread(batch)
    torch.testing.assert_close(pred, model.predict_batch(batch))
    assert spread.samples.shape == (5, 6, dm.adata.n_vars)


def test_evaluate_reports_the_calibration_of_a_prediction_file(dit_run, tmp_path, capsys):
    assert main(["evaluate", str(dit_run / "PRED.h5ad"), "--out", str(tmp_path / "metrics.csv")]) == 0
    out = capsys.readouterr().out
    assert "calibration of the predicted spread" in out
    written = pd.read_csv(tmp_path / "calibration.csv")
    assert written.equals(pd.read_csv(dit_run / "calibration.csv"))


def test_mean_shift_spread_is_the_training_residual_sd_per_gene(tmp_path, cache, data_dir):
    cfg = compose_train(["model=mean_shift", "split=random_fold", *QUIET], tmp_path, cache, data_dir)
    dm = build_datamodule(cfg)
    model = build_model(cfg, dm, tmp_path)
    model.fit_statistics(dm)
    batch = dm.batch_of_rows(dm.rows["train"])
    residual = (batch["x0"] - model.predict_batch(batch)).double().numpy()
    np.testing.assert_allclose(model.residual_sd.numpy(), residual.std(0, ddof=1), rtol=1e-4, atol=1e-6)
    pred, spread = model.predict_with_spread(batch)
    assert spread.kind == "gaussian" and np.allclose(spread.sd, model.residual_sd.numpy()[None])


@pytest.mark.parametrize("mode", ["sample", "mean"])
def test_prnet_spread_is_its_predicted_gaussian(mode, tmp_path, cache, data_dir):
    cfg = compose_train(["model=prnet", f"model.predict_mode={mode}", *QUIET], tmp_path, cache, data_dir)
    dm = build_datamodule(cfg)
    model = build_model(cfg, dm, tmp_path).eval()
    batch = dm.batch_of_rows(dm.rows["test"][:4])
    pred, spread = model.predict_with_spread(batch)
    torch.testing.assert_close(pred, model.predict_batch(batch))
    if mode == "mean":
        mean, var = model.model(batch["c_pre"], drug_vector(batch))
        np.testing.assert_allclose(spread.mean, mean.detach().numpy(), rtol=1e-5)
        np.testing.assert_allclose(spread.sd, var.detach().sqrt().numpy(), rtol=1e-5)
    assert spread.kind == "gaussian" and np.all(spread.sd > 0)
