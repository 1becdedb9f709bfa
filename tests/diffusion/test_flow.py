"""Flow matching on the linear path: the path itself, and its samplers with the exact velocity of Gaussian data.

For x1 ~ N(mu, S^2) per dimension and x_s = (1 - s) z + s x1, x_s ~ N(s mu, V) with V = (1 - s)^2 + s^2 S^2,
E[x1 | x_s] = mu + s S^2 / V (x_s - s mu) and E[z | x_s] = (1 - s) / V (x_s - s mu); the optimal velocity is
their difference, an affine function of x_s. So every sampling chain is linear-Gaussian: its exact mean and
variance are computed independently below in numpy float64, and on a fine grid they reach N(mu, S^2).
"""

import numpy as np
import pytest
import torch

from pertdit.diffusion.flow import (
    FlowSampler,
    interpolate,
    path_snr,
    sample_path_times,
    velocity_target,
    velocity_x1_error_scale,
)

MU = torch.tensor([1.0, -2.0, 0.5, 3.0, 8.0, -5.0])  # not confined to [-1, 1]
SD = torch.tensor([0.5, 1.0, 0.7, 2.0, 0.6, 1.5])
N = 20_000


def optimal_velocity(x, s):
    s = s.double()[:, None]
    var = (1 - s) ** 2 + s**2 * SD.double() ** 2
    centred = x.double() - s * MU.double()
    x1_hat = MU.double() + s * SD.double() ** 2 / var * centred
    z_hat = (1 - s) / var * centred
    return (x1_hat - z_hat).float()


def _affine_velocity(s, mu, s2):
    """v(x, s) = a x + b for the optimal velocity (numpy, per dimension)."""
    var = (1 - s) ** 2 + s**2 * s2
    a = s * s2 / var - (1 - s) / var
    b = mu - s * a * mu
    return a, b


def chain_moments(method, num_steps, mu, s2, eta=0.0):
    """Exact mean and variance of the sampling chain from x ~ N(0, 1), in numpy float64."""
    grid = np.linspace(0.0, 1.0, num_steps + 1)
    m, v = np.zeros_like(mu), np.ones_like(mu)
    for s, s_next in zip(grid[:-1], grid[1:]):
        h = s_next - s
        a, b = _affine_velocity(s, mu, s2)
        if method == "heun":
            a2, b2 = _affine_velocity(s_next, mu, s2)
            # x_e = (1 + h a) x + h b; x' = x + h/2 (a x + b + a2 x_e + b2)
            gain = 1 + h / 2 * (a + a2 * (1 + h * a))
            shift = h / 2 * (b + a2 * h * b + b2)
            m, v = gain * m + shift, gain**2 * v
        elif eta == 0 or s_next >= 1:
            m, v = (1 + h * a) * m + h * b, (1 + h * a) ** 2 * v
        else:
            sigma, sigma_next = 1 - s, 1 - s_next
            kept = s * sigma_next / (s_next * sigma)
            c2 = eta**2 * sigma_next**2 * (1 - kept**2)
            # x1_hat = x + (1 - s) v, z_hat = x - s v; x' = s' x1_hat + sqrt(sigma'^2 - c2) z_hat + c xi
            k = np.sqrt(sigma_next**2 - c2)
            gain = s_next * (1 + sigma * a) + k * (1 - s * a)
            shift = s_next * sigma * b - k * s * b
            m, v = gain * m + shift, gain**2 * v + c2
    return m, v


def assert_matches_moments(x, m, v):
    x = x.double().numpy()
    n = x.shape[0]
    assert (np.abs(x.mean(0) - m) < 5 * np.sqrt(v / n) + 1e-6).all(), (x.mean(0), m)
    assert (np.abs(x.var(0) - v) < 5 * v * np.sqrt(2 / n) + 1e-10).all(), (x.var(0), v)


# --- the path ------------------------------------------------------------------------------------------
def test_the_path_goes_from_the_noise_to_the_data_at_constant_velocity():
    x1, z = torch.randn(4, 3) * 5 + 2, torch.randn(4, 3)
    torch.testing.assert_close(interpolate(x1, z, torch.zeros(4)), z)
    torch.testing.assert_close(interpolate(x1, z, torch.ones(4)), x1)
    s, h = torch.full((4,), 0.3), 0.2
    torch.testing.assert_close((interpolate(x1, z, s + h) - interpolate(x1, z, s)) / h, velocity_target(x1, z),
                               rtol=1e-5, atol=1e-5)


def test_path_times_are_uniform_on_the_unit_interval():
    s = sample_path_times(50_000, generator=torch.Generator().manual_seed(0))
    assert s.dtype == torch.float32 and 0 <= float(s.min()) and float(s.max()) < 1
    counts = torch.histc(s, bins=10, min=0, max=1)
    assert ((counts / 5000 - 1).abs() < 0.07).all()


def test_velocity_error_is_the_data_error_over_one_minus_s_squared():
    s = torch.tensor([0.0, 0.5, 0.9], dtype=torch.float64)
    x1, z = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    x_s = interpolate(x1, z, s)
    velocity = velocity_target(x1, z) + 0.1 * torch.randn(3, 4, dtype=torch.float64)
    x1_hat = x_s + (1 - s)[:, None] * velocity
    ratio = ((velocity - velocity_target(x1, z)) ** 2).mean(1) / ((x1_hat - x1) ** 2).mean(1)
    torch.testing.assert_close(ratio, velocity_x1_error_scale(s))
    torch.testing.assert_close(path_snr(s), s**2 / (1 - s) ** 2)


# --- the samplers --------------------------------------------------------------------------------------
@pytest.mark.parametrize("method, steps, eta", [("euler", 400, 0.0), ("heun", 20, 0.0), ("euler", 400, 1.0)],
                         ids=["euler_ode", "heun", "euler_stochastic"])
def test_a_fine_grid_transports_the_noise_to_the_gaussian(method, steps, eta):
    x = FlowSampler(steps, method, eta).sample(optimal_velocity, (N, 6), generator=torch.Generator().manual_seed(0))
    assert x.shape == (N, 6) and torch.isfinite(x).all()
    assert ((x.mean(0) - MU).abs() < 0.05 * SD).all(), x.mean(0) - MU
    assert ((x.var(0) / SD**2 - 1).abs() < 0.1).all(), x.var(0) / SD**2


@pytest.mark.parametrize("method, steps, eta", [("euler", 10, 0.0), ("heun", 5, 0.0), ("euler", 10, 1.0),
                                                ("euler", 10, 0.5), ("euler", 1, 0.0)],
                         ids=["euler10", "heun5", "euler10_eta1", "euler10_eta05", "one_step"])
def test_few_step_samples_match_their_exact_chain_moments(method, steps, eta):
    sampler = FlowSampler(steps, method, eta)
    x = sampler.sample(optimal_velocity, (N, 6), generator=torch.Generator().manual_seed(3))
    m, v = chain_moments(method, steps, MU.double().numpy(), SD.double().numpy() ** 2, eta)
    assert_matches_moments(x, m, v)


def test_one_euler_step_from_pure_noise_predicts_the_data_mean():
    """At s = 0 the optimal velocity is mu - z: one Euler step lands every sample on mu."""
    x = FlowSampler(1).sample(optimal_velocity, (16, 6), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(x, MU.expand(16, -1), rtol=1e-5, atol=1e-5)


def test_the_sampler_evaluates_the_network_at_the_grid_times():
    for method, expected in (("euler", [0.0, 0.25, 0.5, 0.75]),
                             ("heun", [0.0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 1.0])):
        sampler, seen = FlowSampler(4, method), []

        def velocity(x, s):
            assert s.dtype == torch.float32 and s.shape == (x.shape[0],)
            seen.append(float(s[0]))
            return torch.zeros_like(x)

        sampler.sample(velocity, (2, 3))
        assert seen == pytest.approx(expected) and len(seen) == sampler.nfe


def test_sampling_is_reproducible_and_never_clipped():
    sampler = FlowSampler(10, "euler", eta=1.0)
    a = sampler.sample(optimal_velocity, (256, 6), generator=torch.Generator().manual_seed(7))
    b = sampler.sample(optimal_velocity, (256, 6), generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert a[:, 4].min() > 5  # mu = 8, sd = 0.6


def test_bad_sampler_settings_are_refused():
    with pytest.raises(ValueError, match="euler, heun"):
        FlowSampler(10, "ddim")
    with pytest.raises(ValueError, match="eta"):
        FlowSampler(10, "heun", eta=1.0)
    with pytest.raises(ValueError, match="sampling_steps"):
        FlowSampler(0)
