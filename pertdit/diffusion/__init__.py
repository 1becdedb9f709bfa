"""Noise schedules, the epsilon-prediction loss, samplers (DDPM, DDIM, DPM-Solver++) and classifier-free guidance."""

from pertdit.diffusion.guidance import (
    backbone_eps_fn,
    classifier_free_guidance,
    guidance_enabled,
    sample_drop_mask,
)
from pertdit.diffusion.samplers import (
    SAMPLERS,
    DDIMSampler,
    DDPMSampler,
    DPMSolverSampler,
    Sampler,
    make_sampler,
    spaced_timesteps,
)
from pertdit.diffusion.schedule import BETA_SCHEDULES, EpsFn, NoiseSchedule, make_betas

__all__ = [
    "BETA_SCHEDULES",
    "DDIMSampler",
    "DDPMSampler",
    "DPMSolverSampler",
    "SAMPLERS",
    "Sampler",
    "EpsFn",
    "NoiseSchedule",
    "backbone_eps_fn",
    "classifier_free_guidance",
    "guidance_enabled",
    "make_betas",
    "make_sampler",
    "sample_drop_mask",
    "spaced_timesteps",
]
