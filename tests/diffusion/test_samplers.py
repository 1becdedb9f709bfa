"""Samplers recover a known Gaussian with its analytic optimal noise predictor; guidance wrappers.

For data x0 ~ N(mu, s^2) per dimension, E[eps | x_t] = (x_t - sqrt(abar) mu) sqrt(1 - abar) /
(abar s^2 + 1 - abar): the exact optimal predictor, so a correct sampler must return ~N(mu, s^2) on a fine
schedule. On the authors' coarse schedule (T = 50, betas up to 0.4) the discretisation itself shrinks the
variance; there the samples must match the moments of the (linear-Gaussian) sampling chain, computed
independently below in numpy float64.
"""

import numpy as np
import pytest
import torch

from pertdit.diffusion import (
    DDIMSampler,
    DDPMSampler,
    DPMSolverSampler,
    NoiseSchedule,
    backbone_eps_fn,
    classifier_free_guidance,
    make_sampler,
    sample_drop_mask,
    spaced_timesteps,
)

MU = torch.tensor([1.0, -2.0, 0.5, 3.0, 8.0, -5.0])  # not confined to [-1, 1]: no clipping allowed
SD = torch.tensor([0.5, 1.0, 0.7, 2.0, 0.6, 1.5])
N = 20_000


def optimal_eps(schedule: NoiseSchedule):
    abar_all = schedule.alphas_cumprod

    def eps_fn(x_t, t):
        abar = abar_all[t][:, None]
        return (x_t - abar.sqrt() * MU) * (1 - abar).sqrt() / (abar * SD**2 + 1 - abar)

    return eps_fn


def fine_schedule():
    """Small steps, and abar_T ~ 2.5e-7 so that x_T ~ N(0, I) matches the true marginal (DDIM keeps any
    mismatch: it maps x_T deterministically)."""
    return NoiseSchedule(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.03)


def assert_recovers(x, mean_tol=0.05, var_rtol=0.1):
    assert torch.isfinite(x).all()
    assert ((x.mean(0) - MU).abs() < mean_tol * SD).all(), (x.mean(0) - MU)
    assert ((x.var(0) / SD**2 - 1).abs() < var_rtol).all(), x.var(0) / SD**2


# --- exact moments of the sampling chains (independent numpy reference) ---------------------------
def _posterior_mean_gain(abar, mu, s2):
    """x0_hat = E[x0 | x_t] = g x_t + h for Gaussian data."""
    g = np.sqrt(abar) * s2 / (abar * s2 + 1 - abar)
    return g, mu * (1 - np.sqrt(abar) * g)


def ddpm_chain_moments(betas, mu, s2, variance="fixed_small"):
    abar = np.cumprod(1 - betas)
    m, v = np.zeros_like(mu), np.ones_like(mu)
    for t in range(len(betas) - 1, -1, -1):
        ab_prev = abar[t - 1] if t > 0 else 1.0
        c1 = np.sqrt(ab_prev) * betas[t] / (1 - abar[t])
        c2 = np.sqrt(1 - betas[t]) * (1 - ab_prev) / (1 - abar[t])
        g, h = _posterior_mean_gain(abar[t], mu, s2)
        a, b = c1 * g + c2, c1 * h
        sigma2 = 0.0 if t == 0 else betas[t] * (1 - ab_prev) / (1 - abar[t])
        if variance == "fixed_large" and t > 0:
            sigma2 = betas[t] if t > 1 else betas[1] * (1 - abar[0]) / (1 - abar[1])
        m, v = a * m + b, a**2 * v + sigma2
    return m, v


def ddim_chain_moments(betas, timesteps, eta, mu, s2):
    abar = np.cumprod(1 - betas)
    m, v = np.zeros_like(mu), np.ones_like(mu)
    for i, t in enumerate(timesteps):
        ab, ab_prev = abar[t], (abar[timesteps[i + 1]] if i + 1 < len(timesteps) else 1.0)
        g, h = _posterior_mean_gain(ab, mu, s2)
        sigma2 = eta**2 * (1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)
        k = np.sqrt(1 - ab_prev - sigma2) / np.sqrt(1 - ab)  # on eps_hat = (x - sqrt(ab) x0_hat) / sqrt(1-ab)
        a = np.sqrt(ab_prev) * g + k * (1 - np.sqrt(ab) * g)
        b = np.sqrt(ab_prev) * h - k * np.sqrt(ab) * h
        m, v = a * m + b, a**2 * v + (sigma2 if i + 1 < len(timesteps) else 0.0)
    return m, v


def dpm_solver_chain_moments(betas, timesteps, mu, s2, order=2, stochastic=False):
    """Exact per-dimension mean and variance of DPM-Solver++ (Lu et al. 2022, eqs. of the 2M and SDE-2M
    updates) driven by the optimal Gaussian predictor. Every quantity is affine in the independent standard
    normals xi = (x_T, z_1, z_2, ...): a value is a pair (coefficients over xi, constant)."""
    abar = np.cumprod(1 - betas)
    n_noise = len(timesteps) + 1
    x = (np.eye(n_noise)[0][:, None] * np.ones_like(mu), np.zeros_like(mu))  # x_T = xi_0
    previous = None
    for i, t in enumerate(timesteps):
        alpha_s, sigma_s = np.sqrt(abar[t]), np.sqrt(1 - abar[t])
        g, h0 = _posterior_mean_gain(abar[t], mu, s2)
        m = (g * x[0], g * x[1] + h0)  # the optimal x0 prediction E[x0 | x_s]
        if i + 1 == len(timesteps):
            x = m
            break
        ab_t = abar[timesteps[i + 1]]
        alpha_t, sigma_t = np.sqrt(ab_t), np.sqrt(1 - ab_t)
        h = np.log(alpha_t / sigma_t) - np.log(alpha_s / sigma_s)
        d = m
        if order == 2 and previous is not None:
            (m_prev, h_prev) = previous
            w = 1 / (2 * h_prev / h)
            d = ((1 + w) * m[0] - w * m_prev[0], (1 + w) * m[1] - w * m_prev[1])
        previous = (m, h)
        if stochastic:
            cx, cd, cz = sigma_t / sigma_s * np.exp(-h), alpha_t * (1 - np.exp(-2 * h)), sigma_t * np.sqrt(1 - np.exp(-2 * h))
            coef = cx * x[0] + cd * d[0]
            coef[i + 1] += cz
            x = (coef, cx * x[1] + cd * d[1])
        else:
            cx, cd = sigma_t / sigma_s, -alpha_t * np.expm1(-h)
            x = (cx * x[0] + cd * d[0], cx * x[1] + cd * d[1])
    return x[1], (x[0] ** 2).sum(0)


def assert_matches_moments(x, m, v):
    x = x.double().numpy()
    n = x.shape[0]
    assert (np.abs(x.mean(0) - m) < 5 * np.sqrt(v / n)).all(), (x.mean(0), m)
    assert (np.abs(x.var(0) - v) < 5 * v * np.sqrt(2 / n)).all(), (x.var(0), v)


# --- recovery on a fine schedule -----------------------------------------------------------------------
def test_ddpm_over_all_steps_recovers_the_gaussian():
    s = fine_schedule()
    x = DDPMSampler(s).sample(optimal_eps(s), (N, 6), generator=torch.Generator().manual_seed(0))
    assert x.shape == (N, 6) and x.dtype == torch.float32
    assert_recovers(x)


def test_ddim_eta0_recovers_the_gaussian():
    s = fine_schedule()
    x = DDIMSampler(s, num_steps=250, eta=0.0).sample(
        optimal_eps(s), (N, 6), generator=torch.Generator().manual_seed(1)
    )
    assert_recovers(x)


# --- exact chain moments on the authors' schedule -----------------------------------------------------
def _ddpm_chain(variance):
    return lambda betas, timesteps, mu, s2: ddpm_chain_moments(betas, mu, s2, variance)


def _ddim_chain(eta):
    return lambda betas, timesteps, mu, s2: ddim_chain_moments(betas, timesteps, eta, mu, s2)


def _dpm_chain(order, stochastic):
    return lambda betas, timesteps, mu, s2: dpm_solver_chain_moments(betas, timesteps, mu, s2, order, stochastic)


@pytest.mark.parametrize(
    "make, chain",
    [
        (lambda s: DDPMSampler(s), _ddpm_chain("fixed_small")),
        (lambda s: DDPMSampler(s, variance="fixed_large"), _ddpm_chain("fixed_large")),
        (lambda s: DDIMSampler(s, num_steps=10, eta=0.0), _ddim_chain(0.0)),
        (lambda s: DDIMSampler(s, num_steps=10, eta=1.0), _ddim_chain(1.0)),
        (lambda s: DPMSolverSampler(s, num_steps=10), _dpm_chain(2, False)),
        (lambda s: DPMSolverSampler(s, num_steps=10, stochastic=True), _dpm_chain(2, True)),
        (lambda s: DPMSolverSampler(s, num_steps=6, spacing="trailing"), _dpm_chain(2, False)),
    ],
    ids=["ddpm", "ddpm_fixed_large", "ddim_eta0", "ddim_eta1", "dpm_solver_2m", "sde_dpm_solver_2m",
         "dpm_solver_2m_trailing6"],
)
def test_samples_match_exact_chain_moments_on_default_schedule(make, chain):
    s = NoiseSchedule()  # T=50, scaled_linear 0.002 -> 0.4
    sampler = make(s)
    x = sampler.sample(optimal_eps(s), (N, 6), generator=torch.Generator().manual_seed(2))
    m, v = chain(s.betas.double().numpy(), sampler.timesteps(), MU.double().numpy(), SD.double().numpy() ** 2)
    assert_matches_moments(x, m, v)


def test_ddpm_runs_all_training_timesteps():
    s = NoiseSchedule(num_train_timesteps=50)
    seen = []

    def eps_fn(x_t, t):
        assert t.dtype == torch.long and t.shape == (x_t.shape[0],)
        seen.append(int(t[0]))
        return torch.zeros_like(x_t)

    DDPMSampler(s).sample(eps_fn, (2, 3))
    assert seen == list(range(49, -1, -1))


@pytest.mark.parametrize("stochastic", [False, True], ids=["ode", "sde"])
def test_dpm_solver_2m_with_twenty_steps_even_in_logsnr_recovers_the_gaussian(stochastic):
    s = fine_schedule()
    x = DPMSolverSampler(s, num_steps=20, stochastic=stochastic, spacing="logsnr").sample(
        optimal_eps(s), (N, 6), generator=torch.Generator().manual_seed(4))
    assert_recovers(x)


@pytest.mark.parametrize("eta, stochastic", [(0.0, False), (1.0, True)], ids=["ode_is_ddim", "sde_is_ancestral"])
def test_first_order_dpm_solver_is_ddim(eta, stochastic):
    """DPM-Solver++ order 1 is DDIM: eta = 0 for the ODE, eta = 1 (ancestral) for the SDE; same draws."""
    s = NoiseSchedule()
    eps = optimal_eps(s)
    a = DDIMSampler(s, num_steps=10, eta=eta).sample(eps, (64, 6), generator=torch.Generator().manual_seed(5))
    b = DPMSolverSampler(s, num_steps=10, order=1, stochastic=stochastic).sample(
        eps, (64, 6), generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_a_sampler_evaluates_the_network_once_per_visited_timestep():
    s = NoiseSchedule()
    for sampler in (DDPMSampler(s), DDIMSampler(s, 7), DPMSolverSampler(s, 10)):
        calls = []
        sampler.sample(lambda x_t, t: calls.append(int(t[0])) or torch.zeros_like(x_t), (2, 3))
        assert calls == sampler.timesteps() and len(calls) == sampler.nfe


def test_a_multistep_solver_starts_afresh_for_every_sample():
    s, eps = NoiseSchedule(), optimal_eps(NoiseSchedule())
    sampler = DPMSolverSampler(s, num_steps=8)
    a = sampler.sample(eps, (16, 6), generator=torch.Generator().manual_seed(9))
    b = sampler.sample(eps, (16, 6), generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("make", [lambda s: DDIMSampler(s, 10, max_timestep=38),
                                  lambda s: DPMSolverSampler(s, 10, max_timestep=38)], ids=["ddim", "dpm_solver"])
def test_a_chain_started_below_t_max_matches_its_exact_moments(make):
    """Started at t = 38 from N(0, I): for zero-mean data this is nearly the forward marginal there."""
    s = NoiseSchedule()
    sampler = make(s)
    assert sampler.timesteps()[0] == 38 and sampler.nfe == 10
    x = sampler.sample(optimal_eps(s), (N, 6), generator=torch.Generator().manual_seed(6))
    betas = s.betas.double().numpy()
    if isinstance(sampler, DDIMSampler):
        m, v = ddim_chain_moments(betas, sampler.timesteps(), 0.0, MU.double().numpy(), SD.double().numpy() ** 2)
    else:
        m, v = dpm_solver_chain_moments(betas, sampler.timesteps(), MU.double().numpy(), SD.double().numpy() ** 2)
    assert_matches_moments(x, m, v)


def test_timestep_spacings():
    assert spaced_timesteps(50, 10, "linspace") == [49, 44, 38, 33, 27, 22, 16, 11, 5, 0]
    assert spaced_timesteps(50, 10, "trailing") == [49, 44, 39, 34, 29, 24, 19, 14, 9, 4]
    assert spaced_timesteps(50, 10, "leading") == [45, 40, 35, 30, 25, 20, 15, 10, 5, 0]
    assert spaced_timesteps(50, 50, "trailing") == list(range(49, -1, -1))
    abar = NoiseSchedule().alphas_cumprod
    logsnr = spaced_timesteps(50, 10, "logsnr", abar)
    assert logsnr[0] == 49 and logsnr[-1] == 0 and len(set(logsnr)) == 10
    lam = 0.5 * np.log(abar.double().numpy() / (1 - abar.double().numpy()))
    assert np.ptp(np.diff(lam[logsnr])) < 0.2  # even steps in lambda (a lambda step is ~0.15 per t here)
    with pytest.raises(ValueError, match="spacing"):
        spaced_timesteps(50, 10, "uniform")
    assert spaced_timesteps(50, 10, "linspace", max_timestep=38) == [38, 34, 30, 25, 21, 17, 13, 8, 4, 0]
    assert spaced_timesteps(50, 10, "logsnr", abar, max_timestep=38)[0] == 38
    with pytest.raises(ValueError, match="max_timestep"):
        spaced_timesteps(50, 10, max_timestep=50)


def test_make_sampler_builds_each_sampler_by_its_config_name():
    s = NoiseSchedule()
    assert type(make_sampler("ddpm", s)) is DDPMSampler
    ddim = make_sampler("ddim", s, num_steps=10, eta=0.5, spacing="trailing")
    assert isinstance(ddim, DDIMSampler) and ddim.eta == 0.5 and ddim.timesteps()[0] == 49
    sde = make_sampler("sde_dpm_solver", s, num_steps=10, order=1)
    assert isinstance(sde, DPMSolverSampler) and sde.stochastic and sde.order == 1
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        make_sampler("euler", s)
    with pytest.raises(ValueError, match="DDPM visits every training timestep"):
        DDPMSampler(s).set_timesteps(10)


def test_ddim_timesteps_span_the_schedule():
    s = NoiseSchedule(num_train_timesteps=50)
    ts = DDIMSampler(s, num_steps=10).timesteps()
    assert len(ts) == 10 and ts[0] == 49 and ts[-1] == 0
    assert all(a > b for a, b in zip(ts, ts[1:]))
    assert DDIMSampler(s, num_steps=50).timesteps() == list(range(49, -1, -1))
    with pytest.raises(ValueError, match="num_steps"):
        DDIMSampler(s, num_steps=51)


def test_ddim_with_eta1_on_all_steps_is_ddpm():
    s = NoiseSchedule()
    eps = optimal_eps(s)
    a = DDPMSampler(s).sample(eps, (64, 6), generator=torch.Generator().manual_seed(3))
    b = DDIMSampler(s, num_steps=50, eta=1.0).sample(eps, (64, 6), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("make", [DDPMSampler, lambda s: DDIMSampler(s, 10, 0.5)], ids=["ddpm", "ddim"])
def test_sampling_is_deterministic_under_a_seed(make):
    s = NoiseSchedule()
    sampler, eps = make(s), optimal_eps(s)
    a = sampler.sample(eps, (8, 6), generator=torch.Generator().manual_seed(7))
    b = sampler.sample(eps, (8, 6), generator=torch.Generator().manual_seed(7))
    c = sampler.sample(eps, (8, 6), generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("make", [DDPMSampler, lambda s: DDIMSampler(s, 10), lambda s: DPMSolverSampler(s, 10),
                                  lambda s: DPMSolverSampler(s, 10, stochastic=True)],
                         ids=["ddpm", "ddim", "dpm_solver", "sde_dpm_solver"])
def test_samples_are_not_clipped(make):
    s = NoiseSchedule()
    x = make(s).sample(optimal_eps(s), (256, 6), generator=torch.Generator().manual_seed(0))
    assert x[:, 4].min() > 5  # mu = 8, s = 0.6: every sample far outside [-1, 1]


def test_sampling_builds_no_autograd_graph():
    s = NoiseSchedule()
    w = torch.ones(6, requires_grad=True)
    x = DDIMSampler(s, 5).sample(lambda x_t, t: x_t * w, (4, 6))
    assert not x.requires_grad


# --- classifier-free guidance ------------------------------------------------------------------------
def test_guidance_scale_one_and_zero_give_the_conditional_prediction():
    cond, uncond = (lambda x, t: x + 1), (lambda x, t: x * 0)
    x, t = torch.randn(3, 4), torch.zeros(3, dtype=torch.long)
    for scale in (0.0, 1.0, None):
        torch.testing.assert_close(classifier_free_guidance(cond, uncond, scale)(x, t), x + 1)


def test_guidance_extrapolates_from_unconditional():
    cond, uncond = (lambda x, t: x + 1), (lambda x, t: 2 * x)
    x, t = torch.randn(3, 4), torch.zeros(3, dtype=torch.long)
    torch.testing.assert_close(classifier_free_guidance(cond, uncond, 3.0)(x, t), 2 * x + 3 * (x + 1 - 2 * x))
    with pytest.raises(ValueError, match="scale"):
        classifier_free_guidance(cond, uncond, -1.0)


class _ToyBackbone(torch.nn.Module):
    """eps = x_t * 0.5 + mean(c_pert) (or -1 where the condition is dropped) + c_pre."""

    def forward(self, x_t, t, c_pre, c_pert, c_pert_mask, drop_cond=None):
        pert = (c_pert.sum(-1) * c_pert_mask).sum(-1, keepdim=True)
        if drop_cond is not None:
            pert = torch.where(drop_cond[:, None], -1.0, pert)
        return 0.5 * x_t + pert + c_pre


def test_backbone_eps_fn_batches_conditional_and_null_predictions():
    model = _ToyBackbone()
    B, G = 3, 4
    c_pre, c_pert = torch.randn(B, G), torch.randn(B, 2, 5)
    mask = torch.tensor([[1, 1], [1, 0], [1, 1]]).bool()
    x, t = torch.randn(B, G), torch.zeros(B, dtype=torch.long)
    cond = model(x, t, c_pre, c_pert, mask)
    uncond = model(x, t, c_pre, c_pert, mask, drop_cond=torch.ones(B, dtype=torch.bool))
    torch.testing.assert_close(backbone_eps_fn(model, c_pre, c_pert, mask, 0.0)(x, t), cond)
    guided = backbone_eps_fn(model, c_pre, c_pert, mask, 3.0)(x, t)
    torch.testing.assert_close(guided, uncond + 3 * (cond - uncond))


def test_sample_drop_mask_has_the_requested_rate():
    assert sample_drop_mask(10, 0.0) is None
    drop = sample_drop_mask(20_000, 0.1, generator=torch.Generator().manual_seed(0))
    assert drop.dtype == torch.bool and abs(drop.float().mean().item() - 0.1) < 0.01
