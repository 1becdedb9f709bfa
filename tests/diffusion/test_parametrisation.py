"""Epsilon, x0 and v prediction: conversions, every sampler with every parametrisation, loss weights.

For Gaussian data x0 ~ N(mu, s^2) the optimal predictor of each parametrisation is known in closed form; a
sampler given the optimal x0- or v-predictor (converted by `eps_fn_from_output`) must draw exactly what it
draws with the optimal eps-predictor, whose chain moments `test_samplers.py` computes independently in numpy.
"""

import numpy as np
import pytest
import torch

from pertdit.diffusion import (
    DDIMSampler,
    DDPMSampler,
    DPMSolverSampler,
    NoiseSchedule,
    eps_fn_from_output,
    loss_weights,
    output_to_eps,
    output_to_x0,
    prediction_target,
)
from pertdit.diffusion.parametrisation import weighted_mse, x0_error_scale
from tests.diffusion.test_samplers import (
    MU,
    SD,
    assert_matches_moments,
    ddim_chain_moments,
    ddpm_chain_moments,
    dpm_solver_chain_moments,
    optimal_eps,
)

N = 20_000


def optimal_output(schedule: NoiseSchedule, prediction: str):
    """The optimal network of `prediction` for N(MU, SD^2) data: E[output | x_t] in closed form."""
    abar_all = schedule.alphas_cumprod.double()

    def output_fn(x_t, t):
        abar = abar_all[t][:, None]
        alpha, sigma = abar.sqrt(), (1 - abar).sqrt()
        x = x_t.double()
        x0_hat = MU + alpha * SD**2 / (abar * SD**2 + 1 - abar) * (x - alpha * MU)
        eps_hat = (x - alpha * x0_hat) / sigma
        return {"epsilon": eps_hat, "x0": x0_hat, "v": alpha * eps_hat - sigma * x0_hat}[prediction].float()

    return output_fn


def _alpha_sigma(n=64, g=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    abar = torch.rand(n, 1, generator=gen, dtype=torch.float64) * 0.98 + 0.01
    return gen, abar.sqrt(), (1 - abar).sqrt()


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
def test_a_target_converts_back_to_the_noise_and_the_data(prediction):
    gen, alpha, sigma = _alpha_sigma()
    x0 = torch.randn(64, 6, generator=gen, dtype=torch.float64) * 3 + 5
    noise = torch.randn(64, 6, generator=gen, dtype=torch.float64)
    x_t = alpha * x0 + sigma * noise
    target = prediction_target(prediction, x0, noise, alpha, sigma)
    torch.testing.assert_close(output_to_eps(prediction, target, x_t, alpha, sigma), noise)
    torch.testing.assert_close(output_to_x0(prediction, target, x_t, alpha, sigma), x0)


def test_v_is_alpha_eps_minus_sigma_x0():
    gen, alpha, sigma = _alpha_sigma()
    x0, noise = torch.randn(64, 6, generator=gen, dtype=torch.float64), torch.randn(64, 6, generator=gen,
                                                                                    dtype=torch.float64)
    torch.testing.assert_close(prediction_target("v", x0, noise, alpha, sigma), alpha * noise - sigma * x0)


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_the_converted_optimal_predictor_is_the_optimal_noise_predictor(prediction):
    s = NoiseSchedule()
    eps_fn = eps_fn_from_output(optimal_output(s, prediction), prediction, s.alphas_cumprod)
    x = torch.randn(500, 6, generator=torch.Generator().manual_seed(0)) * 2
    for t in (0, 10, 38, 49):
        t_batch = torch.full((500,), t, dtype=torch.long)
        torch.testing.assert_close(eps_fn(x, t_batch), optimal_eps(s)(x, t_batch), rtol=2e-4, atol=2e-4)


def test_epsilon_needs_no_conversion():
    fn = lambda x_t, t: x_t  # noqa: E731
    assert eps_fn_from_output(fn, "epsilon", NoiseSchedule().alphas_cumprod) is fn


def _chain(name, sampler, betas):
    mu, s2 = MU.double().numpy(), SD.double().numpy() ** 2
    if name == "ddpm":
        return ddpm_chain_moments(betas, mu, s2)
    if name.startswith("ddim"):
        return ddim_chain_moments(betas, sampler.timesteps(), sampler.eta, mu, s2)
    return dpm_solver_chain_moments(betas, sampler.timesteps(), mu, s2, stochastic=sampler.stochastic)


SAMPLERS = {
    "ddpm": DDPMSampler,
    "ddim_eta0": lambda s: DDIMSampler(s, 10),
    "ddim_eta1_from_38": lambda s: DDIMSampler(s, 10, eta=1.0, max_timestep=38),
    "dpm_solver": lambda s: DPMSolverSampler(s, 10),
    "sde_dpm_solver": lambda s: DPMSolverSampler(s, 10, stochastic=True),
}


@pytest.mark.parametrize("sampler_name", list(SAMPLERS))
@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_every_sampler_draws_the_exact_chain_with_every_parametrisation(prediction, sampler_name):
    s = NoiseSchedule()  # the authors' T = 50 scaled-linear schedule
    sampler = SAMPLERS[sampler_name](s)
    eps_fn = eps_fn_from_output(optimal_output(s, prediction), prediction, s.alphas_cumprod)
    x = sampler.sample(eps_fn, (N, 6), generator=torch.Generator().manual_seed(11))
    assert_matches_moments(x, *_chain(sampler_name, sampler, s.betas.double().numpy()))


# --- the loss: what an output error means, and the weights ----------------------------------------------
def _output_of(prediction, x0_hat, x_t, alpha, sigma):
    """The output a network of `prediction` gives when its implied clean data is x0_hat at x_t."""
    eps_hat = (x_t - alpha * x0_hat) / sigma
    return prediction_target(prediction, x0_hat, eps_hat, alpha, sigma)


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
def test_an_output_error_is_the_x0_error_times_the_parametrisations_scale(prediction):
    gen, alpha, sigma = _alpha_sigma()
    x0 = torch.randn(64, 6, generator=gen, dtype=torch.float64)
    noise = torch.randn(64, 6, generator=gen, dtype=torch.float64)
    x0_hat = x0 + 0.3 * torch.randn(64, 6, generator=gen, dtype=torch.float64)
    x_t = alpha * x0 + sigma * noise
    output_error = ((_output_of(prediction, x0_hat, x_t, alpha, sigma)
                     - prediction_target(prediction, x0, noise, alpha, sigma)) ** 2).mean(1)
    x0_error = ((x0_hat - x0) ** 2).mean(1)
    snr = (alpha**2 / sigma**2)[:, 0]
    expected_scale = {"epsilon": snr.numpy(), "x0": np.ones(64), "v": snr.numpy() + 1}[prediction]
    np.testing.assert_allclose((output_error / x0_error).numpy(), expected_scale, rtol=1e-8)
    np.testing.assert_allclose(x0_error_scale(prediction, snr).numpy(), expected_scale, rtol=1e-12)


@pytest.mark.parametrize("prediction", ["epsilon", "x0", "v"])
def test_min_snr_weights_the_x0_error_by_min_snr_gamma_whatever_is_predicted(prediction):
    gen, alpha, sigma = _alpha_sigma(n=200)
    x0 = torch.randn(200, 6, generator=gen, dtype=torch.float64)
    noise = torch.randn(200, 6, generator=gen, dtype=torch.float64)
    x0_hat = x0 + 0.3 * torch.randn(200, 6, generator=gen, dtype=torch.float64)
    x_t = alpha * x0 + sigma * noise
    snr = (alpha**2 / sigma**2)[:, 0]
    weights = loss_weights("min_snr", prediction, snr, gamma=5.0)
    loss = weighted_mse(_output_of(prediction, x0_hat, x_t, alpha, sigma),
                        prediction_target(prediction, x0, noise, alpha, sigma), weights)
    # independent numpy: mean over samples of min(SNR, 5) * per-sample MSE of x0
    snr_np = alpha.numpy()[:, 0] ** 2 / sigma.numpy()[:, 0] ** 2
    expected = np.mean(np.minimum(snr_np, 5.0) * ((x0_hat.numpy() - x0.numpy()) ** 2).mean(1))
    assert float(loss) == pytest.approx(expected, rel=1e-5)  # the loss is summed in float32
    assert (snr_np > 5).any() and (snr_np < 5).any(), "both sides of gamma are exercised"


def test_no_weighting_is_the_plain_mse():
    out, target = torch.randn(8, 5), torch.randn(8, 5)
    assert loss_weights("none", "v", torch.ones(8)) is None
    torch.testing.assert_close(weighted_mse(out, target, None), torch.nn.functional.mse_loss(out, target))


def test_bad_names_and_gamma_are_refused():
    with pytest.raises(ValueError, match="epsilon, x0, v"):
        prediction_target("score", torch.zeros(1), torch.zeros(1), torch.ones(1), torch.ones(1))
    with pytest.raises(ValueError, match="none, min_snr"):
        loss_weights("p2", "epsilon", torch.ones(2))
    with pytest.raises(ValueError, match="gamma"):
        loss_weights("min_snr", "epsilon", torch.ones(2), gamma=0.0)
