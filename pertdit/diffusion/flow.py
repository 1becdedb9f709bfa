"""Flow matching on the linear path from N(0, I) to the data (rectified flow / conditional flow matching, as
CellFlow uses for single cells), and its ODE samplers.

Path: x_s = (1 - s) z + s x1 with z ~ N(0, I), x1 the data, s in [0, 1] (s = 0 noise, s = 1 data). The network
predicts the velocity u = x1 - z from (x_s, s); the marginal velocity field E[u | x_s] transports N(0, I) to
the data along ds. Given a velocity prediction v at (x, s): x1_hat = x + (1 - s) v and z_hat = x - s v.
In the notation of the diffusion samplers alpha_s = s and sigma_s = 1 - s, so SNR = s^2 / (1 - s)^2 and the
squared error of the velocity is the x1 error over (1 - s)^2 (`velocity_x1_error_scale`).

Samplers integrate ds from 0 to 1 on `num_steps` even steps:
- `euler`: x <- x + h v (first order); with `eta` > 0 each step re-draws part of the noise, as DDIM's eta
  does: x_next = s' x1_hat + sqrt((1 - s')^2 - c^2) z_hat + c xi with
  c^2 = eta^2 (1 - s')^2 (1 - (s (1 - s'))^2 / (s' (1 - s))^2), which keeps the path's marginals for any eta
  (eta = 0 is exactly the Euler step, eta = 1 the posterior of a Markov forward process);
- `heun`: Heun's second-order method (2 network evaluations per step).
Samples are never clipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

VelocityFn = Callable[[Tensor, Tensor], Tensor]
"""`velocity_fn(x_s (B, G), s (B,) float in [0, 1]) -> velocity (B, G)`."""

FLOW_SAMPLERS = ("euler", "heun")


def sample_path_times(batch_size: int, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> Tensor:
    """s ~ Uniform[0, 1), (B,) float32."""
    return torch.rand(batch_size, generator=generator, device=device)


def _column(s: Tensor, like: Tensor) -> Tensor:
    return s.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


def interpolate(x1: Tensor, noise: Tensor, s: Tensor) -> Tensor:
    """x_s = (1 - s) noise + s x1; x1, noise (B, ...), s (B,)."""
    s = _column(s, x1)
    return (1 - s) * noise + s * x1


def velocity_target(x1: Tensor, noise: Tensor) -> Tensor:
    """The conditional velocity d x_s / ds = x1 - noise."""
    return x1 - noise


def path_snr(s: Tensor) -> Tensor:
    """SNR of the linear path, s^2 / (1 - s)^2 (inf at s = 1)."""
    return s**2 / (1 - s) ** 2


def velocity_x1_error_scale(s: Tensor) -> Tensor:
    """MSE of the velocity / MSE of the implied x1: 1 / (1 - s)^2."""
    return 1 / (1 - s) ** 2


class FlowSampler:
    """ODE (or DDIM-like stochastic) integration of a velocity field from s = 0 (N(0, I)) to s = 1."""

    def __init__(self, num_steps: int = 10, method: str = "euler", eta: float = 0.0) -> None:
        if method not in FLOW_SAMPLERS:
            raise ValueError(f"unknown flow-matching sampler {method!r}; valid: {', '.join(FLOW_SAMPLERS)}")
        if num_steps < 1:
            raise ValueError(f"sampling_steps must be >= 1, got {num_steps}")
        if eta < 0 or (eta > 0 and method != "euler"):
            raise ValueError(f"eta must be >= 0, and > 0 only with the euler sampler; got eta={eta} with {method}")
        self.num_steps, self.method, self.eta = num_steps, method, eta

    def times(self) -> list[float]:
        """The grid 0 = s_0 < ... < s_n = 1."""
        return torch.linspace(0.0, 1.0, self.num_steps + 1, dtype=torch.float64).tolist()

    @property
    def nfe(self) -> int:
        """Network evaluations per sample."""
        return self.num_steps * (2 if self.method == "heun" else 1)

    def step(self, velocity_fn: VelocityFn, x: Tensor, s: float, s_next: float,
             generator: torch.Generator | None = None) -> Tensor:
        """One step from s to s_next."""
        h = s_next - s
        v = velocity_fn(x, torch.full((x.shape[0],), s, dtype=torch.float32, device=x.device)).to(x.dtype)
        if self.method == "heun":
            x_euler = x + h * v
            v_next = velocity_fn(x_euler, torch.full((x.shape[0],), s_next, dtype=torch.float32,
                                                     device=x.device)).to(x.dtype)
            return x + h * 0.5 * (v + v_next)
        if self.eta == 0 or s_next >= 1.0:
            return x + h * v
        x1_hat, z_hat = x + (1 - s) * v, x - s * v
        sigma, sigma_next = 1 - s, 1 - s_next
        kept = (s * sigma_next) / (s_next * sigma)  # alpha sigma' / (alpha' sigma); 0 at s = 0
        c2 = self.eta**2 * sigma_next**2 * (1 - kept**2)
        c2 = min(max(c2, 0.0), sigma_next**2)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return s_next * x1_hat + (sigma_next**2 - c2) ** 0.5 * z_hat + c2**0.5 * noise

    @torch.no_grad()
    def sample(self, velocity_fn: VelocityFn, shape: Sequence[int], generator: torch.Generator | None = None,
               device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Tensor:
        """Draw x1 of `shape` (B, G) from z ~ N(0, I); every random draw comes from `generator`."""
        if device is None:
            device = generator.device if generator is not None else "cpu"
        x = torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype or torch.float32)
        grid = self.times()
        for s, s_next in zip(grid[:-1], grid[1:]):
            x = self.step(velocity_fn, x, s, s_next, generator)
        return x
