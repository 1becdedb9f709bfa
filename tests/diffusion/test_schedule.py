"""The forward process: beta schedules, add_noise statistics, the training loss, buffers."""

import numpy as np
import pytest
import torch

from pertdit.diffusion import BETA_SCHEDULES, NoiseSchedule


@pytest.mark.parametrize("name", BETA_SCHEDULES)
def test_schedule_shapes_and_monotonicity(name):
    s = NoiseSchedule(num_train_timesteps=50, beta_schedule=name)
    for buf in ("betas", "alphas_cumprod", "alphas_cumprod_prev", "posterior_variance"):
        assert getattr(s, buf).shape == (50,)
    betas, abar = s.betas.double(), s.alphas_cumprod.double()
    assert ((betas > 0) & (betas < 1)).all()
    assert (betas[1:] >= betas[:-1]).all(), "betas must not decrease"
    assert (abar[1:] < abar[:-1]).all(), "abar must strictly decrease"
    assert 0 < abar[-1] < 0.05 and abar[0] > 0.9
    np.testing.assert_allclose(abar.numpy(), np.cumprod(1 - betas.numpy()), rtol=1e-4, atol=1e-7)
    assert s.alphas_cumprod_prev[0] == 1.0


def test_scaled_linear_matches_its_definition():
    s = NoiseSchedule(50, "scaled_linear", beta_start=0.002, beta_end=0.4)
    expected = np.linspace(np.sqrt(0.002), np.sqrt(0.4), 50) ** 2
    np.testing.assert_allclose(s.betas.numpy(), expected, rtol=1e-6)


def test_linear_matches_its_definition():
    s = NoiseSchedule(20, "linear", beta_start=1e-3, beta_end=0.1)
    np.testing.assert_allclose(s.betas.numpy(), np.linspace(1e-3, 0.1, 20), rtol=1e-6)


def test_unknown_schedule_names_the_valid_ones():
    with pytest.raises(ValueError, match="scaled_linear, linear, cosine"):
        NoiseSchedule(beta_schedule="quadratic")


def test_posterior_variance_matches_closed_form():
    s = NoiseSchedule()
    b, ab = s.betas.double().numpy(), s.alphas_cumprod.double().numpy()
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    np.testing.assert_allclose(s.posterior_variance.numpy(), b * (1 - ab_prev) / (1 - ab), rtol=1e-4)


@pytest.mark.parametrize("t", [0, 10, 25, 49])
def test_add_noise_has_the_closed_form_mean_and_variance(t):
    s = NoiseSchedule()
    n, x0 = 40_000, torch.tensor([10.0, -3.0, 0.0, 0.5, 250.0])  # not confined to [-1, 1]
    g = torch.Generator().manual_seed(t)
    noise = torch.randn(n, x0.numel(), generator=g)
    x_t = s.add_noise(x0.expand(n, -1), noise, torch.full((n,), t)).double()
    abar = s.alphas_cumprod[t].double()
    mean, var = abar.sqrt() * x0.double(), 1 - abar
    se_mean, se_var = (var / n).sqrt(), var * np.sqrt(2 / n)
    assert ((x_t.mean(0) - mean).abs() < 5 * se_mean + 1e-4 * x0.abs()).all()  # float32 rounding of 250
    assert ((x_t.var(0) - var).abs() < 5 * se_var).all()


def test_add_noise_uses_each_samples_own_timestep():
    s = NoiseSchedule()
    x0, noise, t = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 5, 30, 49])
    out = s.add_noise(x0, noise, t)
    for i in range(4):
        expected = s.sqrt_alphas_cumprod[t[i]] * x0[i] + s.sqrt_one_minus_alphas_cumprod[t[i]] * noise[i]
        torch.testing.assert_close(out[i], expected)


def test_training_loss_is_zero_for_the_oracle_and_mse_otherwise():
    s = NoiseSchedule()
    x0 = torch.randn(64, 7) * 3 + 2

    def oracle(x_t, t):  # recovers the noise from x_t because it knows x0
        return (x_t - s.sqrt_alphas_cumprod[t][:, None] * x0) / s.sqrt_one_minus_alphas_cumprod[t][:, None]

    loss, aux = s.training_loss(oracle, x0, generator=torch.Generator().manual_seed(0))
    assert loss.item() < 1e-8
    assert aux["t"].dtype == torch.long and aux["t"].shape == (64,)
    assert 0 <= aux["t"].min() and aux["t"].max() < 50

    loss0, aux0 = s.training_loss(lambda x_t, t: torch.zeros_like(x_t), x0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(loss0, (aux0["noise"] ** 2).mean())
    torch.testing.assert_close(aux0["noise"], aux["noise"])  # same seed, same draws


def test_sampled_timesteps_are_uniform():
    s = NoiseSchedule(num_train_timesteps=10)
    t = s.sample_timesteps(50_000, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(t, minlength=10).double()
    assert counts.shape == (10,)
    assert ((counts / 5000 - 1).abs() < 0.07).all()


def test_buffers_are_persistent_and_move_with_the_module():
    s = NoiseSchedule()
    state = s.state_dict()
    for name in ("betas", "alphas_cumprod", "posterior_variance", "posterior_mean_coef1"):
        assert name in state
    s64 = s.to(torch.float64)
    assert s64.alphas_cumprod.dtype == torch.float64
    if torch.cuda.is_available():
        assert s.cuda().betas.is_cuda
    fresh = NoiseSchedule()
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.betas, state["betas"].float())


def test_schedule_lives_inside_a_parent_module():
    parent = torch.nn.Module()
    parent.schedule = NoiseSchedule()
    assert "schedule.alphas_cumprod" in parent.state_dict()
    assert parent.to("meta").schedule.betas.device.type == "meta"
