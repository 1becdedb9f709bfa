"""What the denoising network predicts (epsilon, x0 or v), the conversions between them, and the loss weights.

For the variance-preserving forward process x_t = alpha_t x0 + sigma_t eps (alpha_t = sqrt(abar_t),
sigma_t = sqrt(1 - abar_t), alpha^2 + sigma^2 = 1) the network output is one of
- `epsilon`: the noise eps (the authors'; Ho et al. 2020);
- `x0`: the clean data;
- `v`: v = alpha eps - sigma x0 (Salimans & Ho 2022).
Each determines the others given x_t, so every sampler (which works with eps, `samplers.py`) takes any of them
through `eps_fn_from_output`. The signal-to-noise ratio is SNR_t = alpha_t^2 / sigma_t^2.

An error of the output is an error of the implied x0 scaled by a factor that depends on t and the
parametrisation: MSE(output) = `x0_error_scale` x MSE(x0_hat), with scale SNR (epsilon), 1 (x0), SNR + 1 (v).
Loss weights are defined on the x0 error (`loss_weights`): `min_snr` (Hang et al. 2023) weights the x0 error
by min(SNR, gamma), i.e. the output's squared error by min(SNR, gamma) / scale, whatever is predicted.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

PREDICTIONS = ("epsilon", "x0", "v")
LOSS_WEIGHTINGS = ("none", "min_snr")

OutputFn = Callable[[Tensor, Tensor], Tensor]
"""`output_fn(x_t (B, G), t (B,)) -> the network's output (B, G)`."""


def check_prediction(prediction: str) -> str:
    """`prediction` itself; a ValueError naming the valid ones otherwise."""
    if prediction not in PREDICTIONS:
        raise ValueError(f"unknown diffusion prediction {prediction!r}; valid: {', '.join(PREDICTIONS)}")
    return prediction


def prediction_target(prediction: str, x0: Tensor, noise: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """What the network is trained to output for x_t = alpha x0 + sigma noise (alpha, sigma broadcast (B, 1))."""
    check_prediction(prediction)
    if prediction == "epsilon":
        return noise
    if prediction == "x0":
        return x0
    return alpha * noise - sigma * x0


def output_to_eps(prediction: str, output: Tensor, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """The noise implied by the network's output at x_t (alpha, sigma broadcast against x_t)."""
    check_prediction(prediction)
    if prediction == "epsilon":
        return output
    if prediction == "x0":
        return (x_t - alpha * output) / sigma
    return sigma * x_t + alpha * output


def output_to_x0(prediction: str, output: Tensor, x_t: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """The clean data implied by the network's output at x_t. Never clipped."""
    check_prediction(prediction)
    if prediction == "epsilon":
        return (x_t - sigma * output) / alpha
    if prediction == "x0":
        return output
    return alpha * x_t - sigma * output


def x0_error_scale(prediction: str, snr: Tensor) -> Tensor:
    """MSE of the output / MSE of the implied x0, per timestep: SNR (epsilon), 1 (x0), SNR + 1 (v)."""
    check_prediction(prediction)
    if prediction == "epsilon":
        return snr
    if prediction == "x0":
        return torch.ones_like(snr)
    return snr + 1


def loss_weights(weighting: str, prediction: str, snr: Tensor, gamma: float = 5.0) -> Tensor | None:
    """Per-sample weights (B,) of the output's squared error; None for `none` (the plain MSE).

    `min_snr`: min(SNR, gamma) / `x0_error_scale`, so the x0 error is weighted by min(SNR, gamma) whatever
    the parametrisation (for epsilon: min(SNR, gamma) / SNR).
    """
    if weighting not in LOSS_WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {weighting!r}; valid: {', '.join(LOSS_WEIGHTINGS)}")
    if weighting == "none":
        return None
    if not gamma > 0:
        raise ValueError(f"min_snr_gamma must be > 0, got {gamma}")
    return snr.clamp(max=gamma) / x0_error_scale(prediction, snr)


def weighted_mse(output: Tensor, target: Tensor, weights: Tensor | None) -> Tensor:
    """Mean squared error over (B, G); with `weights` (B,), the mean over samples of weight x per-sample MSE."""
    if weights is None:
        return torch.nn.functional.mse_loss(output.float(), target.float())
    per_sample = ((output.float() - target.float()) ** 2).mean(dim=tuple(range(1, output.dim())))
    return (weights.float() * per_sample).mean()


def eps_fn_from_output(output_fn: OutputFn, prediction: str, alphas_cumprod: Tensor) -> OutputFn:
    """An `eps_fn(x_t, t)` for the samplers from a network that outputs `prediction` (itself for epsilon)."""
    check_prediction(prediction)
    if prediction == "epsilon":
        return output_fn

    def eps_fn(x_t: Tensor, t: Tensor) -> Tensor:
        abar = alphas_cumprod.to(x_t.device)[t].to(x_t.dtype).reshape(-1, *([1] * (x_t.dim() - 1)))
        return output_to_eps(prediction, output_fn(x_t, t), x_t, abar.sqrt(), (1 - abar).sqrt())

    return eps_fn
