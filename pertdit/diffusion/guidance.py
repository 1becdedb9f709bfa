"""Classifier-free guidance (Ho & Salimans 2022): wrappers that build an `eps_fn` for the samplers.

Convention: eps = eps_uncond + scale * (eps_cond - eps_uncond). `scale = 1` is the conditional prediction;
`scale = 0` (or None) means guidance is disabled, which also gives the conditional prediction (it is the
config value for "off", as in the authors' configs), so the unconditional branch is never evaluated then.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pertdit.diffusion.schedule import EpsFn


def guidance_enabled(scale: float | None) -> bool:
    """True when `scale` asks for a combination of conditional and unconditional predictions."""
    if scale is not None and scale < 0:
        raise ValueError(f"guidance scale must be >= 0 (0 disables guidance), got {scale}")
    return scale is not None and scale not in (0.0, 1.0)


def classifier_free_guidance(eps_cond_fn: EpsFn, eps_uncond_fn: EpsFn, scale: float | None) -> EpsFn:
    """An `eps_fn(x_t, t)` combining two predictors; returns `eps_cond_fn` itself when guidance is off."""
    if not guidance_enabled(scale):
        return eps_cond_fn

    def guided(x_t: Tensor, t: Tensor) -> Tensor:
        eps_uncond = eps_uncond_fn(x_t, t)
        return eps_uncond + scale * (eps_cond_fn(x_t, t) - eps_uncond)

    return guided


def backbone_eps_fn(
    backbone: nn.Module,
    c_pre: Tensor,
    c_pert: Tensor,
    c_pert_mask: Tensor,
    guidance_scale: float | None = 0.0,
) -> EpsFn:
    """Bind a backbone's conditions into an `eps_fn(x_t (B, G), t (B,)) -> (B, G)`.

    With guidance on, the conditional and the null-condition (`drop_cond=True`) predictions are made in one
    forward pass over a doubled batch (2B).
    """
    if not guidance_enabled(guidance_scale):
        return lambda x_t, t: backbone(x_t, t, c_pre, c_pert, c_pert_mask)

    B = c_pre.shape[0]
    drop = torch.cat([torch.zeros(B, dtype=torch.bool), torch.ones(B, dtype=torch.bool)]).to(c_pre.device)
    c_pre2, c_pert2 = torch.cat([c_pre, c_pre]), torch.cat([c_pert, c_pert])
    mask2 = torch.cat([c_pert_mask, c_pert_mask])

    def guided(x_t: Tensor, t: Tensor) -> Tensor:
        eps = backbone(torch.cat([x_t, x_t]), torch.cat([t, t]), c_pre2, c_pert2, mask2, drop_cond=drop)
        eps_cond, eps_uncond = eps[:B], eps[B:]
        return eps_uncond + guidance_scale * (eps_cond - eps_uncond)

    return guided


def sample_drop_mask(
    batch_size: int,
    p_uncond: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor | None:
    """Training-time condition dropout: (B,) bool, True with probability `p_uncond`; None when p = 0."""
    if not 0.0 <= p_uncond <= 1.0:
        raise ValueError(f"p_uncond must be a probability in [0, 1], got {p_uncond}")
    if p_uncond == 0.0:
        return None
    return torch.rand(batch_size, generator=generator, device=device) < p_uncond
