"""Reverse-process samplers on a discrete `NoiseSchedule`: DDPM (ancestral), DDIM and DPM-Solver++.

Every sampler is a swappable object in the style of diffusers' schedulers: `set_timesteps(n)`, then `step`
once per visited timestep with the network's noise prediction there; `sample(eps_fn, shape)` runs the loop.
The number of network evaluations (NFE) is `len(timesteps())`. Samples are never clipped: expression data are
not confined to [-1, 1]. Why these samplers and which one to use: docs/diffusion.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from pertdit.diffusion.schedule import EpsFn, NoiseSchedule

DDPM_VARIANCES = ("fixed_small", "fixed_large")
SPACINGS = ("linspace", "trailing", "leading", "logsnr")


def spaced_timesteps(num_train_timesteps: int, num_steps: int, spacing: str = "linspace",
                     alphas_cumprod: Tensor | None = None, max_timestep: int | None = None) -> list[int]:
    """`num_steps` distinct training timesteps in decreasing order, the first at most `max_timestep`.

    With M = `max_timestep` (default T - 1, the noisiest training step), and the chain started there from
    N(0, I): `linspace`: evenly from M to 0, rounded (both ends visited); `trailing`: M, M-k, ...
    (k = (M + 1) / n, rounded; the cleanest step possibly not visited); `leading`: ..., k, 0 (diffusers'
    DDIM default, which the authors' DDIM configs use: M itself is never visited); `logsnr`: the timesteps
    nearest to an even grid in lambda = log(alpha / sigma) from M to 0 (needs `alphas_cumprod`; DPM-Solver's
    choice). A smaller M skips the noisiest steps, where x_t carries almost no signal (docs/diffusion.md).
    """
    T = num_train_timesteps
    top = T - 1 if max_timestep is None else int(max_timestep)
    if not 0 <= top <= T - 1:
        raise ValueError(f"max_timestep must be in [0, {T - 1}], got {max_timestep}")
    T = top + 1
    if not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be in [1, {T}] (the training timesteps up to {top}), got {num_steps}")
    if spacing == "logsnr":
        if alphas_cumprod is None:
            raise ValueError("logsnr spacing needs the schedule's alphas_cumprod")
        abar = alphas_cumprod.double().cpu()[:T]
        lam = 0.5 * torch.log(abar / (1 - abar))  # (T,), decreasing in t
        grid = torch.linspace(float(lam[-1]), float(lam[0]), num_steps, dtype=torch.float64)
        steps = (lam[None, :] - grid[:, None]).abs().argmin(dim=1).tolist()
    elif spacing == "linspace":
        steps = torch.linspace(T - 1, 0, num_steps, dtype=torch.float64).round().long().tolist()
    elif spacing == "trailing":
        steps = (torch.arange(T, 0, -T / num_steps, dtype=torch.float64).round().long() - 1).tolist()
    elif spacing == "leading":
        steps = (torch.arange(num_steps, dtype=torch.long) * (T // num_steps)).flip(0).tolist()
    else:
        raise ValueError(f"unknown timestep spacing {spacing!r}; valid: {', '.join(SPACINGS)}")
    if len(set(steps)) != len(steps):
        raise ValueError(f"{spacing} spacing of {num_steps} steps over T={T} repeats a timestep: {steps}")
    return steps


class Sampler:
    """Shared loop: x_T ~ N(0, I), then `step` over `timesteps()` from noisy to clean.

    Subclasses set the visited timesteps in `set_timesteps` and implement `step`; a multistep solver keeps
    its history between steps and clears it at `index == 0`.
    """

    def __init__(self, schedule: NoiseSchedule) -> None:
        self.schedule = schedule
        self._timesteps: list[int] = []

    def set_timesteps(self, num_steps: int) -> None:
        """Choose the visited timesteps for `num_steps` network evaluations."""
        raise NotImplementedError

    def timesteps(self) -> list[int]:
        """The timesteps visited, in decreasing order (one network evaluation each)."""
        return list(self._timesteps)

    @property
    def nfe(self) -> int:
        """Network evaluations per sample (without classifier-free guidance, which doubles the batch)."""
        return len(self._timesteps)

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

    # helpers -------------------------------------------------------------------------------------------
    def _abar(self, index: int, like: Tensor) -> Tensor:
        """abar of the `index`-th visited timestep; 1 past the last one (the clean data)."""
        if index >= len(self._timesteps):
            return like.new_ones(())
        return self.schedule.alphas_cumprod[self._timesteps[index]].to(device=like.device, dtype=torch.float64)

    @staticmethod
    def _noise_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


class DDPMSampler(Sampler):
    """Ancestral DDPM sampling over all T training timesteps (Ho et al. 2020); the authors' sampler.

    `variance="fixed_small"` uses the posterior variance beta~_t (diffusers' default, the authors'),
    `"fixed_large"` uses beta_t (beta~_1 at t = 1).
    """

    def __init__(self, schedule: NoiseSchedule, variance: str = "fixed_small") -> None:
        super().__init__(schedule)
        if variance not in DDPM_VARIANCES:
            raise ValueError(f"unknown DDPM variance {variance!r}; valid: {', '.join(DDPM_VARIANCES)}")
        self.variance = variance
        self.set_timesteps(schedule.num_train_timesteps)

    def set_timesteps(self, num_steps: int) -> None:
        T = self.schedule.num_train_timesteps
        if num_steps != T:
            raise ValueError(f"DDPM visits every training timestep ({T}); for fewer steps use ddim (eta=1 is "
                             f"ancestral sampling on a subsequence) or dpm_solver")
        self._timesteps = list(range(T - 1, -1, -1))

    def step(self, eps: Tensor, index: int, x_t: Tensor, generator: torch.Generator | None = None) -> Tensor:
        s = self.schedule
        t = self._timesteps[index]
        t_batch = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)
        x0_hat = s.predict_x0(x_t, eps, t_batch)
        mean, var = s.posterior_mean_variance(x0_hat, x_t, t_batch)
        if t == 0:
            return mean
        if self.variance == "fixed_large":
            var = (s.betas[t] if t > 1 else s.posterior_variance[1]).to(x_t.dtype)
        return mean + var.sqrt() * self._noise_like(x_t, generator)


class DDIMSampler(Sampler):
    """DDIM (Song et al. 2021) on `num_steps` timesteps (see `spaced_timesteps`), ending at abar = 1.

    `eta=0` is deterministic given x_T (the probability-flow ODE, first order; = DPM-Solver++ order 1);
    `eta=1` is ancestral sampling on the subsequence (with all T steps it is the DDPM sampler).
    """

    def __init__(self, schedule: NoiseSchedule, num_steps: int = 10, eta: float = 0.0,
                 spacing: str = "linspace", max_timestep: int | None = None) -> None:
        super().__init__(schedule)
        if eta < 0:
            raise ValueError(f"DDIM eta must be >= 0, got {eta}")
        self.eta = eta
        self.spacing = spacing
        self.max_timestep = max_timestep
        self.set_timesteps(num_steps)

    @property
    def num_steps(self) -> int:
        return len(self._timesteps)

    def set_timesteps(self, num_steps: int) -> None:
        self._timesteps = spaced_timesteps(self.schedule.num_train_timesteps, num_steps, self.spacing,
                                           self.schedule.alphas_cumprod, self.max_timestep)

    def step(self, eps: Tensor, index: int, x_t: Tensor, generator: torch.Generator | None = None) -> Tensor:
        abar, abar_prev = self._abar(index, x_t), self._abar(index + 1, x_t)
        last = index + 1 == len(self._timesteps)
        x0_hat = (x_t - (1 - abar).sqrt().to(x_t.dtype) * eps) / abar.sqrt().to(x_t.dtype)
        sigma2 = self.eta**2 * (1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)
        coef_eps = (1 - abar_prev - sigma2).clamp(min=0).sqrt()
        x_prev = abar_prev.sqrt().to(x_t.dtype) * x0_hat + coef_eps.to(x_t.dtype) * eps
        if self.eta > 0 and not last:
            x_prev = x_prev + sigma2.sqrt().to(x_t.dtype) * self._noise_like(x_t, generator)
        return x_prev


class DPMSolverSampler(Sampler):
    """DPM-Solver++ (Lu et al. 2022) with data (x0) prediction, multistep, on the training timesteps.

    Between visited timesteps s > t, with lambda = log(alpha / sigma), h = lambda_t - lambda_s and the x0
    predictions m_s (now) and m_prev (one step earlier, at distance h_prev; r = h_prev / h):
    - ODE (`stochastic=False`): x_t = sigma_t / sigma_s x_s - alpha_t (e^-h - 1) D;
    - SDE (`stochastic=True`): x_t = sigma_t / sigma_s e^-h x_s + alpha_t (1 - e^-2h) D
      + sigma_t sqrt(1 - e^-2h) z, z ~ N(0, I);
    with D = m_s (order 1) or, for `order=2` from the second step on, D = m_s + (m_s - m_prev) / (2 r)
    (the "midpoint" 2M update). The last step goes to the clean data (sigma = 0) and returns the last x0
    prediction (order 1 there). Order 1 is DDIM: eta = 0 for the ODE, eta = 1 for the SDE. `spacing` places
    the steps (`spaced_timesteps`).
    """

    def __init__(self, schedule: NoiseSchedule, num_steps: int = 10, order: int = 2, stochastic: bool = False,
                 spacing: str = "linspace", max_timestep: int | None = None) -> None:
        super().__init__(schedule)
        if order not in (1, 2):
            raise ValueError(f"DPM-Solver++ order must be 1 or 2, got {order}")
        self.order = order
        self.stochastic = stochastic
        self.spacing = spacing
        self.max_timestep = max_timestep
        self._previous: tuple[Tensor, Tensor] | None = None  # (x0 prediction, its lambda step h)
        self.set_timesteps(num_steps)

    def set_timesteps(self, num_steps: int) -> None:
        self._timesteps = spaced_timesteps(self.schedule.num_train_timesteps, num_steps, self.spacing,
                                           self.schedule.alphas_cumprod, self.max_timestep)
        self._previous = None

    def step(self, eps: Tensor, index: int, x_t: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if index == 0:
            self._previous = None
        abar_s = self._abar(index, x_t)
        alpha_s, sigma_s = abar_s.sqrt(), (1 - abar_s).sqrt()
        x0_hat = (x_t - sigma_s.to(x_t.dtype) * eps) / alpha_s.to(x_t.dtype)
        if index + 1 == len(self._timesteps):  # to sigma = 0: the data prediction itself
            self._previous = None
            return x0_hat
        abar_t = self._abar(index + 1, x_t)
        alpha_t, sigma_t = abar_t.sqrt(), (1 - abar_t).sqrt()
        h = torch.log(alpha_t / sigma_t) - torch.log(alpha_s / sigma_s)
        data = x0_hat
        if self.order == 2 and self._previous is not None:
            previous, h_previous = self._previous
            r = h_previous / h
            data = x0_hat + (x0_hat - previous) / (2 * r).to(x_t.dtype)
        self._previous = (x0_hat, h)
        if not self.stochastic:
            c_x, c_d = sigma_t / sigma_s, -alpha_t * torch.expm1(-h)
            return c_x.to(x_t.dtype) * x_t + c_d.to(x_t.dtype) * data
        c_x, c_d = sigma_t / sigma_s * torch.exp(-h), -alpha_t * torch.expm1(-2 * h)
        c_z = sigma_t * (-torch.expm1(-2 * h)).sqrt()
        return c_x.to(x_t.dtype) * x_t + c_d.to(x_t.dtype) * data + c_z.to(x_t.dtype) * self._noise_like(x_t, generator)


SAMPLERS = ("ddpm", "ddim", "dpm_solver", "sde_dpm_solver")


def make_sampler(name: str, schedule: NoiseSchedule, num_steps: int = 50, eta: float = 0.0,
                 spacing: str = "linspace", order: int = 2, max_timestep: int | None = None) -> Sampler:
    """A sampler by config name: `ddpm` (all T steps), `ddim` (`num_steps`, `eta`, `spacing`,
    `max_timestep`), `dpm_solver` (ODE, `order`) or `sde_dpm_solver` (the SDE variant)."""
    if name == "ddpm":
        return DDPMSampler(schedule)
    if name == "ddim":
        return DDIMSampler(schedule, num_steps=num_steps, eta=eta, spacing=spacing, max_timestep=max_timestep)
    if name in ("dpm_solver", "sde_dpm_solver"):
        return DPMSolverSampler(schedule, num_steps=num_steps, order=order, stochastic=name == "sde_dpm_solver",
                                spacing=spacing, max_timestep=max_timestep)
    raise ValueError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}")
