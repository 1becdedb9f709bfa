"""The forward (noising) process of a DDPM: beta schedule, `add_noise`, the epsilon-prediction loss."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EpsFn = Callable[[Tensor, Tensor], Tensor]
"""`eps_fn(x_t (B, ...), t (B,) long) -> predicted noise (B, ...)`."""

BETA_SCHEDULES = ("scaled_linear", "linear", "cosine")


def make_betas(num_train_timesteps: int, beta_schedule: str, beta_start: float, beta_end: float) -> Tensor:
    """Betas (T,) float64 for one of `BETA_SCHEDULES`.

    `scaled_linear`: linear in sqrt(beta) from sqrt(beta_start) to sqrt(beta_end) (the authors' default);
    `linear`: linear in beta; `cosine`: Nichol & Dhariwal (2021), s = 0.008, betas capped at 0.999
    (`beta_start`/`beta_end` are not used).
    """
    T = num_train_timesteps
    if beta_schedule == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float64) ** 2
    if beta_schedule == "linear":
        return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    if beta_schedule == "cosine":
        s = 0.008
        steps = torch.arange(T + 1, dtype=torch.float64) / T
        abar = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        return (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
    raise ValueError(
        f"unknown beta_schedule {beta_schedule!r}; valid schedules are {', '.join(BETA_SCHEDULES)}"
    )


def _at(buffer: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """`buffer[t]` shaped (B, 1, ..., 1) to broadcast against `like` (B, ...), in `like`'s dtype."""
    return buffer[t].to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


class NoiseSchedule(nn.Module):
    """A discrete DDPM noise schedule; every tensor is a persistent buffer (moves with `.to()`, checkpointed).

    Buffers, all (T,): `betas`, `alphas`, `alphas_cumprod` (abar_t), `alphas_cumprod_prev` (abar_{t-1},
    1 at t = 0), `sqrt_alphas_cumprod`, `sqrt_one_minus_alphas_cumprod`, `posterior_variance`
    (beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)), `posterior_mean_coef1` (on x0),
    `posterior_mean_coef2` (on x_t).
    """

    def __init__(
        self,
        num_train_timesteps: int = 50,
        beta_schedule: str = "scaled_linear",
        beta_start: float = 0.002,
        beta_end: float = 0.4,
    ) -> None:
        super().__init__()
        if num_train_timesteps < 1:
            raise ValueError(f"num_train_timesteps must be >= 1, got {num_train_timesteps}")
        self.num_train_timesteps = num_train_timesteps
        self.beta_schedule = beta_schedule
        betas = make_betas(num_train_timesteps, beta_schedule, beta_start, beta_end)
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError(
                f"betas of the {beta_schedule!r} schedule must lie in (0, 1); "
                f"got beta_start={beta_start}, beta_end={beta_end}"
            )
        alphas = 1.0 - betas
        abar = torch.cumprod(alphas, dim=0)
        abar_prev = torch.cat([abar.new_ones(1), abar[:-1]])
        tensors = {
            "betas": betas,
            "alphas": alphas,
            "alphas_cumprod": abar,
            "alphas_cumprod_prev": abar_prev,
            "sqrt_alphas_cumprod": abar.sqrt(),
            "sqrt_one_minus_alphas_cumprod": (1 - abar).sqrt(),
            "posterior_variance": betas * (1 - abar_prev) / (1 - abar),
            "posterior_mean_coef1": betas * abar_prev.sqrt() / (1 - abar),
            "posterior_mean_coef2": (1 - abar_prev) * alphas.sqrt() / (1 - abar),
        }
        for name, value in tensors.items():  # computed in float64, stored as float32
            self.register_buffer(name, value.float(), persistent=True)

    def extra_repr(self) -> str:
        return f"num_train_timesteps={self.num_train_timesteps}, beta_schedule={self.beta_schedule!r}"

    # forward process ---------------------------------------------------------------------------------
    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise; x0, noise (B, ...), t (B,) long."""
        signal, sigma = _at(self.sqrt_alphas_cumprod, t, x0), _at(self.sqrt_one_minus_alphas_cumprod, t, x0)
        return signal * x0 + sigma * noise

    def sample_timesteps(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """t ~ Uniform{0, ..., T-1}, (B,) long."""
        device = device or self.betas.device
        return torch.randint(0, self.num_train_timesteps, (batch_size,), generator=generator, device=device)

    def training_loss(
        self, eps_fn: EpsFn, x0: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Epsilon-prediction MSE at uniformly sampled t.

        Returns `(loss, aux)`, `aux` holding `t` (B,), `noise`, `x_t` and `eps_pred` (all like x0).
        Random draws come from `generator` (which must live on x0's device) when given.
        """
        t = self.sample_timesteps(x0.shape[0], generator=generator, device=x0.device)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_t = self.add_noise(x0, noise, t)
        eps_pred = eps_fn(x_t, t)
        loss = F.mse_loss(eps_pred.float(), noise.float())
        return loss, {"t": t, "noise": noise, "x_t": x_t, "eps_pred": eps_pred}

    # reverse-process quantities ----------------------------------------------------------------------
    def predict_x0(self, x_t: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t). Never clipped."""
        signal, sigma = _at(self.sqrt_alphas_cumprod, t, x_t), _at(self.sqrt_one_minus_alphas_cumprod, t, x_t)
        return (x_t - sigma * eps) / signal

    def posterior_mean_variance(self, x0: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Mean (like x_t) and variance (B, 1, ...) of q(x_{t-1} | x_t, x0)."""
        mean = _at(self.posterior_mean_coef1, t, x_t) * x0 + _at(self.posterior_mean_coef2, t, x_t) * x_t
        return mean, _at(self.posterior_variance, t, x_t)
