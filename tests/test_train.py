"""Training through the real config path on the real plate: every model, baselines, resume, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pertdit.metrics import compute_measures, evaluate_h5ad
from pertdit.train import build_datamodule, build_model, train
from tests.helpers import QUIET, TINY_BACKBONE, compose_train

DIFFUSION_MODELS = ["crossdit", "catcrossdit", "adadit_rdkit", "catonlycrossdit"]


@pytest.mark.parametrize("model", DIFFUSION_MODELS)
def test_fast_dev_run_every_backbone(model, tmp_path, cache, data_dir):
    cfg = compose_train([f"model={model}", "trainer.fast_dev_run=true", *QUIET, *TINY_BACKBONE], tmp_path, cache,
                        data_dir)
    metrics = train(cfg)
    assert np.isfinite(metrics["test/mse"])
    table = pd.read_csv(tmp_path / "metrics.smoke.csv")  # a smoke test, marked as one
    assert len(table) == 10 and set(table["grouping"]) >= {"per_sample", "drug"}


def test_fast_dev_run_text_representation(tmp_path, cache, data_dir, tiny_bert_dir):
    cfg = compose_train(["model=adadit_text", "trainer.fast_dev_run=true", *QUIET, *TINY_BACKBONE,
                         f"perturbation.encoder_local_dir={tiny_bert_dir}", "perturbation.describer=rdkit"],
                        tmp_path, cache, data_dir)
    assert cfg.perturbation.pooled is True
    metrics = train(cfg)
    assert np.isfinite(metrics["test/mse"])


@pytest.mark.parametrize("model", ["prnet", "chemcpa"])
def test_fast_dev_run_baselines(model, tmp_path, cache, data_dir):
    cfg = compose_train([f"model={model}", "trainer.fast_dev_run=true", *QUIET], tmp_path, cache, data_dir)
    assert np.isfinite(train(cfg)["test/mse"])


def test_trivial_baselines_match_an_independent_computation(tmp_path, cache, data_dir):
    """mean_shift = control + mean train shift of (drug, dose), else of the drug, else global; scored alike."""
    cfg = compose_train(["model=mean_shift", "split=random_fold", *QUIET], tmp_path, cache, data_dir)
    train(cfg)
    pred = __import__("anndata").read_h5ad(tmp_path / "PRED.h5ad")
    dm = build_datamodule(cfg)
    obs, X = dm.adata.obs, dm.adata.X
    ctrl = X[obs["paired_control_index"].to_numpy()]
    shift = pd.DataFrame(X - ctrl)
    train_rows = dm.rows["train"]
    key = obs["drug"].astype(str) + "|" + obs["dose"].map(lambda d: f"{d:.4f}")
    by_key = shift.iloc[train_rows].groupby(key.iloc[train_rows].to_numpy()).mean()
    by_drug = shift.iloc[train_rows].groupby(obs["drug"].astype(str).iloc[train_rows].to_numpy()).mean()
    overall = shift.iloc[train_rows].mean()
    rows = pred.uns["pertdit"]["rows"]
    for i, row in enumerate(rows):
        k, d = key.iloc[row], str(obs["drug"].iloc[row])
        expected = by_key.loc[k] if k in by_key.index else (by_drug.loc[d] if d in by_drug.index else overall)
        np.testing.assert_allclose(pred.X[i], ctrl[row] + expected.to_numpy(), rtol=1e-5, atol=1e-5)
    table = pd.read_csv(tmp_path / "metrics.csv")
    again = evaluate_h5ad(tmp_path / "PRED.h5ad")
    np.testing.assert_allclose(table["mean"], again["mean"], rtol=1e-6)


def test_control_baseline_has_undefined_fold_change_correlation(tmp_path, cache, data_dir):
    cfg = compose_train(["model=control", *QUIET], tmp_path, cache, data_dir)
    train(cfg)
    table = pd.read_csv(tmp_path / "metrics.csv").set_index(["metric", "grouping"])
    assert table.loc[("r2", "per_sample"), "mean"] > 0.6
    assert np.isnan(table.loc[("pcc_lnfc", "per_sample"), "mean"])
    assert table.loc[("pcc_lnfc", "per_sample"), "n_nan"] == table.loc[("pcc_lnfc", "per_sample"), "n_groups"]


def _tiny_diffusion(tmp_path, cache, data_dir, extra=()):
    overrides = ["model=crossdit", *QUIET, *TINY_BACKBONE, "split=random_fold", "trainer.limit_val_batches=0",
                 "trainer.max_epochs=2", "diffusion=ddim", "diffusion.sampling_steps=3", "model.warmup_steps=2",
                 *extra]
    return compose_train(overrides, tmp_path, cache, data_dir)


def _fit(cfg, ckpt_path=None, callbacks=()):
    import lightning as L
    from hydra.utils import instantiate

    L.seed_everything(cfg.seed)
    dm = build_datamodule(cfg)
    model = build_model(cfg, dm, __import__("pathlib").Path(cfg.paths.run_dir))
    trainer = instantiate(cfg.trainer, callbacks=list(callbacks), logger=False)
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path, weights_only=True if ckpt_path else None)
    return model, trainer, dm


def test_resumed_run_ends_with_the_same_weights(tmp_path, cache, data_dir):
    """Kill after epoch 1 (checkpoint), resume to epoch 2: identical to an uninterrupted 2-epoch run."""
    import lightning as L

    class Kill(L.Callback):
        def on_train_epoch_start(self, trainer, module):
            if trainer.current_epoch == 1:
                raise RuntimeError("simulated kill")

    full, _, _ = _fit(_tiny_diffusion(tmp_path / "full", cache, data_dir))
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    with pytest.raises(RuntimeError, match="simulated kill"):
        _fit(_tiny_diffusion(tmp_path / "part", cache, data_dir), callbacks=[ckpt, Kill()])
    resumed, trainer, _ = _fit(_tiny_diffusion(tmp_path / "resumed", cache, data_dir),
                               ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert trainer.current_epoch == 2
    for (name, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        torch.testing.assert_close(a, b, msg=f"parameter {name} differs after resume")


def test_sampling_is_deterministic_under_a_seed(tmp_path, cache, data_dir):
    model, _, dm = _fit(_tiny_diffusion(tmp_path, cache, data_dir, ["trainer.max_epochs=1",
                                                                    "diffusion.eval_samples=2"]))
    model.eval()
    batch = next(iter(dm.test_dataloader()))
    first, second = model.predict_batch(batch), model.predict_batch(batch)
    torch.testing.assert_close(first, second)
    other = model.sample(batch, generator=torch.Generator().manual_seed(123))
    assert not torch.allclose(first, other)


def test_test_measures_equal_an_independent_scoring_of_the_predictions(tmp_path, cache, data_dir):
    cfg = _tiny_diffusion(tmp_path, cache, data_dir, ["trainer.max_epochs=1"])
    metrics = train(cfg)
    pred = __import__("anndata").read_h5ad(tmp_path / "PRED.h5ad")
    X = np.maximum(pred.X, 0)  # relu is on for the prnet transform
    truth, control = pred.layers["truth"], pred.layers["control"]
    pcc = np.mean([np.corrcoef(t - c, p - c)[0, 1] for t, p, c in zip(truth, X, control)])
    assert metrics["test/pcc_lnfc/per_sample"] == pytest.approx(pcc, rel=1e-4, abs=1e-5)
    table = compute_measures(truth, pred.X, control, pred.obs["cell_id"], pred.obs["drug"], pred.obs["dose"],
                             relu=True)
    assert table.set_index(["metric", "grouping"]).loc[("r2", "drug"), "mean"] == pytest.approx(
        metrics["test/r2/drug"], rel=1e-4)


def _denoising_loss(model, batch: dict) -> float:
    """The epsilon-MSE of `model` on `batch` at timesteps and noise drawn from a fixed seed."""
    with torch.no_grad():
        x0 = model.to_model_space(batch)
        gen = torch.Generator().manual_seed(0)
        t = model.schedule.sample_timesteps(x0.shape[0], generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        eps = model.backbone(model.schedule.add_noise(x0, noise, t), t, batch["c_pre"], batch["c_pert"],
                             batch["c_pert_mask"])
        return float(torch.nn.functional.mse_loss(eps, noise))


def _quick_dit(tmp_path, cache, data_dir, overrides: list[str]):
    """(config, data module, model) of the cpu_quick CrossDiT on the plate's random fold."""
    from pertdit.demo import QUICK_MODEL

    cfg = compose_train(["model=crossdit", "split=random_fold", *QUICK_MODEL, *QUIET, *overrides], tmp_path,
                        cache, data_dir)
    import lightning as L

    L.seed_everything(0)
    dm = build_datamodule(cfg)
    model = build_model(cfg, dm, tmp_path)
    model.fit_standardization(dm)
    return cfg, dm, model


def test_twenty_steps_halve_the_denoising_loss_on_validation_rows(tmp_path, cache, data_dir):
    """The default suite's learning check of a DiT on real data (the slow test below checks accuracy)."""
    from hydra.utils import instantiate

    cfg, dm, model = _quick_dit(tmp_path, cache, data_dir, ["data.batch_size=16", "trainer.max_epochs=100",
                                                           "trainer.max_steps=20", "test=false"])
    fixed = dm.batch_of_rows(dm.rows["val"])
    before = _denoising_loss(model, fixed)
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[])
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == 20
    assert _denoising_loss(model, fixed) < 0.5 * before  # measured: 0.19 of the untrained loss


@pytest.mark.slow
def test_a_few_hundred_steps_lower_the_loss_and_beat_mean_shift(tmp_path, cache, data_dir):
    """Seen drugs (random fold): the learned model's per-sample PCC(lnFC) beats control + mean training shift.
    Slow (~3 min on 2 cores: ~280 steps over 978 gene tokens)."""
    from hydra.utils import instantiate

    baseline = train(compose_train(["model=mean_shift", "split=random_fold", *QUIET], tmp_path / "ms", cache,
                                   data_dir))
    # DDIM-10 keeps this test quick; the demo's DDPM-50 sampling scores higher still
    cfg, dm, model = _quick_dit(tmp_path / "dit", cache, data_dir, ["trainer.max_epochs=70", "diffusion=ddim"])
    fixed = dm.batch_of_rows(dm.rows["val"])
    before = _denoising_loss(model, fixed)
    trainer = instantiate(cfg.trainer, logger=False, callbacks=[])
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step >= 200
    assert _denoising_loss(model, fixed) < 0.7 * before
    result = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert result["test/pcc_lnfc/per_sample"] > baseline["test/pcc_lnfc/per_sample"] + 0.05
