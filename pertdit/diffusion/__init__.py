"""Noise schedules, the epsilon-prediction loss, samplers (DDPM, DDIM) and classifier-free guidance."""

from pertdit.diffusion.guidance import (
    backbone_eps_fn,
    classifier_free_guidance,
    guidance_enabled,
    sample_drop_mask,
)
from pertdit.diffusion.samplers import DDIMSampler, DDPMSampler
from pertdit.diffusion.schedule import BETA_SCHEDULES, EpsFn, NoiseSchedule, make_betas

__all__ = [
    "BETA_SCHEDULES",
    "DDIMSampler",
    "DDPMSampler",
    "EpsFn",
    "NoiseSchedule",
    "backbone_eps_fn",
    "classifier_free_guidance",
    "guidance_enabled",
    "make_betas",
    "sample_drop_mask",
]
