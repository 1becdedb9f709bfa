"""Reverse-process samplers (DDPM ancestral, DDIM). Swappable: each only needs a schedule and an `eps_fn`.

Samples are never clipped: expression data are not confined to [-1, 1].
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from pertdit.diffusion.schedule import EpsFn, NoiseSchedule

DDPM_VARIANCES = ("fixed_small", "fixed_large")


class _Sampler:
    """Shared loop: x_T ~ N(0, I), then `step` over `timesteps()` from noisy to clean."""

    def __init__(self, schedule: NoiseSchedule) -> None:
        self.schedule = schedule

    def timesteps(self) -> list[int]:
        """The timesteps visited, in decreasing order."""
        raise NotImplementedError

    def step(self, eps: Tensor, index: int, x_t: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One reverse update from the `index`-th visited timestep to the next one (or to x0)."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(
        self,
        eps_fn: EpsFn,
        shape: Sequence[int],
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        progress: bool = False,
    ) -> Tensor:
        """Draw x0 of `shape` (B, G); `eps_fn(x_t (B, G), t (B,) long) -> eps (B, G)`.

        Every random draw comes from `generator` (it must live on `device`), so a seeded generator makes
        the result reproducible. `device` defaults to the generator's device, else the schedule's.
        """
        if device is None:
            device = generator.device if generator is not None else self.schedule.betas.device
        dtype = dtype or torch.float32
        x = torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
        steps: Iterable[tuple[int, int]] = enumerate(self.timesteps())
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(list(steps), desc=type(self).__name__)
        for index, t in steps:
            t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=device)
            eps = eps_fn(x, t_batch)
            x = self.step(eps.to(dtype), index, x, generator)
        return x

    def _noise_like(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


class DDPMSampler(_Sampler):
    """Ancestral DDPM sampling over all T training timesteps (Ho et al. 2020).

    `variance="fixed_small"` uses the posterior variance beta~_t (diffusers' default),
    `"fixed_large"` uses beta_t (beta~_1 at t = 1).
    """

    def __init__(self, schedule: NoiseSchedule, variance: str = "fixed_small") -> None:
        super().__init__(schedule)
        if variance not in DDPM_VARIANCES:
            raise ValueError(f"unknown DDPM variance {variance!r}; valid: {', '.join(DDPM_VARIANCES)}")
        self.variance = variance

    def timesteps(self) -> list[int]:
        return list(range(self.schedule.num_train_timesteps - 1, -1, -1))

    def step(self, eps: Tensor, index: int, x_t: Tensor, generator: torch.Generator | None = None) -> Tensor:
        s = self.schedule
        t = s.num_train_timesteps - 1 - index
        t_batch = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)
        x0_hat = s.predict_x0(x_t, eps, t_batch)
        mean, var = s.posterior_mean_variance(x0_hat, x_t, t_batch)
        if t == 0:
            return mean
        if self.variance == "fixed_large":
            var = (s.betas[t] if t > 1 else s.posterior_variance[1]).to(x_t.dtype)
        return mean + var.sqrt() * self._noise_like(x_t, generator)


class DDIMSampler(_Sampler):
    """DDIM sampling (Song et al. 2021) on `num_steps` timesteps spaced evenly from T-1 down to 0.

    `eta=0` is deterministic given x_T; `eta=1` with `num_steps=T` is the DDPM (fixed_small) sampler.
    """

    def __init__(self, schedule: NoiseSchedule, num_steps: int = 10, eta: float = 0.0) -> None:
        super().__init__(schedule)
        T = schedule.num_train_timesteps
        if not 1 <= num_steps <= T:
            raise ValueError(f"DDIM num_steps must be in [1, {T}] (the training timesteps), got {num_steps}")
        if eta < 0:
            raise ValueError(f"DDIM eta must be >= 0, got {eta}")
        self.num_steps = num_steps
        self.eta = eta
        self._timesteps = torch.linspace(T - 1, 0, num_steps, dtype=torch.float64).round().long().tolist()

    def timesteps(self) -> list[int]:
        return list(self._timesteps)

    def step(self, eps: Tensor, index: int, x_t: Tensor, generator: torch.Generator | None = None) -> Tensor:
        s = self.schedule
        t = self._timesteps[index]
        abar = s.alphas_cumprod[t].to(x_t.dtype)
        last = index + 1 == len(self._timesteps)
        abar_prev = abar.new_ones(()) if last else s.alphas_cumprod[self._timesteps[index + 1]].to(x_t.dtype)
        x0_hat = (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()
        sigma2 = self.eta**2 * (1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)
        x_prev = abar_prev.sqrt() * x0_hat + (1 - abar_prev - sigma2).clamp(min=0).sqrt() * eps
        if self.eta > 0 and not last:
            x_prev = x_prev + sigma2.sqrt() * self._noise_like(x_t, generator)
        return x_prev
