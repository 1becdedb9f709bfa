"""The diffusion module's objectives on a real backbone: denoising with epsilon / x0 / v prediction, flow
matching, loss weighting; each loss against an independent computation with the same draws."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException

from pertdit.diffusion import DDIMSampler, FlowSampler
from pertdit.train import train
from tests.diffusion.test_recipes import DIT_MODELS, build, compose_train
from tests.helpers import QUIET, TINY_BACKBONE
from tests.helpers import compose_train as compose_run


def batch(n: int = 16, genes: int = 12, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"x0": torch.randn(n, genes, generator=gen) + 4, "c_pre": torch.randn(n, genes, generator=gen) + 4,
            "c_pert": torch.randn(n, 1, 5, generator=gen), "c_pert_mask": torch.ones(n, 1, dtype=torch.bool),
            "row": torch.arange(n)}


def module_of(overrides: list[str]):
    return build(compose_train(["model=crossdit", *overrides]).model)


def test_epsilon_prediction_without_weighting_is_the_authors_loss():
    module, b = module_of(["diffusion=authors"]), batch()
    x0 = module.to_model_space(b)
    t, noise, drop = module.training_draws(x0)
    eps = module.backbone(module.schedule.add_noise(x0, noise, t), t, b["c_pre"], b["c_pert"], b["c_pert_mask"])
    assert torch.equal(module.objective_loss(b, x0, t, noise, drop), torch.nn.functional.mse_loss(eps, noise))


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_x0_and_v_prediction_regress_their_targets_with_min_snr_weights(prediction):
    module = module_of([f"diffusion.prediction={prediction}", "diffusion.loss_weighting=min_snr",
                        "diffusion.min_snr_gamma=2.0"])
    b = batch()
    x0 = module.to_model_space(b)
    t, noise, drop = module.training_draws(x0)
    out = module.backbone(module.schedule.add_noise(x0, noise, t), t, b["c_pre"], b["c_pert"],
                          b["c_pert_mask"]).double().detach().numpy()
    abar = module.schedule.alphas_cumprod.double().numpy()[t.numpy()][:, None]
    x0n, zn = x0.double().numpy(), noise.double().numpy()
    target = x0n if prediction == "x0" else np.sqrt(abar) * zn - np.sqrt(1 - abar) * x0n
    snr = (abar / (1 - abar))[:, 0]
    weight = np.minimum(snr, 2.0) / (1.0 if prediction == "x0" else snr + 1)
    expected = np.mean(weight * ((out - target) ** 2).mean(1))
    loss = float(module.objective_loss(b, x0, t, noise, drop).detach())
    assert loss == pytest.approx(expected, rel=1e-5)


def test_flow_matching_regresses_the_velocity_at_continuous_times():
    module, b = module_of(["diffusion=flow"]), batch()
    x0 = module.to_model_space(b)
    s, noise, drop = module.training_draws(x0)
    assert s.dtype == torch.float32 and 0 <= float(s.min()) and float(s.max()) < 1
    x_s = (1 - s[:, None]) * noise + s[:, None] * x0
    velocity = module.backbone(x_s, s * 1000.0, b["c_pre"], b["c_pert"], b["c_pert_mask"])
    expected = torch.nn.functional.mse_loss(velocity, x0 - noise)
    torch.testing.assert_close(module.objective_loss(b, x0, s, noise, drop), expected)


@pytest.mark.parametrize("model", DIT_MODELS)
def test_diffusion_flow_gives_every_dit_an_ode_sampler(model):
    module = build(compose_train([f"model={model}", "diffusion=flow"]).model)
    sampler = module.sampler()
    assert isinstance(sampler, FlowSampler) and sampler.method == "euler" and sampler.nfe == 10
    heun = build(compose_train([f"model={model}", "diffusion=flow", "diffusion.sampler=heun",
                                "diffusion.sampling_steps=5"]).model).sampler()
    assert heun.method == "heun" and heun.nfe == 10


@pytest.mark.parametrize("overrides", [["diffusion=flow"], ["diffusion.prediction=v"], ["diffusion.prediction=x0"]])
def test_a_trained_module_samples_finite_predictions_of_the_right_shape(overrides):
    module, b = module_of(overrides), batch()
    module.hparams.eval_samples = 2
    pred = module.predict_batch(b)
    assert pred.shape == b["x0"].shape and torch.isfinite(pred).all()
    again = module.predict_batch(b)
    assert torch.equal(pred, again), "seeded by the batch rows"


def test_a_denoising_module_converts_its_prediction_for_the_samplers():
    module = module_of(["diffusion.prediction=x0", "diffusion.sampler=ddim", "diffusion.sampling_steps=5"])
    assert isinstance(module.sampler(), DDIMSampler)
    b = batch(4)
    eps_fn = module.network_fn(b)
    x_t, t = torch.randn(4, 12), torch.full((4,), 20, dtype=torch.long)
    x0_hat = module.backbone(x_t, t, b["c_pre"], b["c_pert"], b["c_pert_mask"])
    abar = module.schedule.alphas_cumprod[20]
    torch.testing.assert_close(eps_fn(x_t, t), (x_t - abar.sqrt() * x0_hat) / (1 - abar).sqrt())


@pytest.mark.parametrize("overrides, message", [
    (["diffusion.objective=score"], "denoising, flow_matching"),
    (["diffusion=flow", "diffusion.prediction=epsilon"], "predicts velocity"),
    (["diffusion.prediction=velocity"], "predicts epsilon | x0 | v"),
    (["diffusion=flow", "diffusion.sampler=ddim"], "euler | heun"),
    (["diffusion=flow", "diffusion.max_timestep=38"], "max_timestep"),
    (["diffusion.sampler=heun"], "flow-matching model"),
    (["diffusion.loss_weighting=p2"], "none, min_snr"),
])
def test_choices_that_do_not_fit_together_are_refused_by_name(overrides, message):
    with pytest.raises((ValueError, InstantiationException), match=re.escape(message)):
        module_of(overrides)


@pytest.mark.parametrize("overrides", [["diffusion=flow"], ["diffusion.prediction=v", "diffusion.loss_weighting=min_snr"]],
                         ids=["flow", "v_min_snr"])
def test_a_smoke_run_trains_and_tests_each_objective_on_the_plate(overrides, tmp_path, data_dir):
    cfg = compose_run(["model=crossdit", "trainer.fast_dev_run=true", *QUIET, *TINY_BACKBONE, *overrides],
                      tmp_path, tmp_path / "cache", data_dir)
    assert np.isfinite(train(cfg)["test/mse"])
