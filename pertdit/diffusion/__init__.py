"""Noise schedules, parametrisations (epsilon, x0, v) and loss weights, samplers (DDPM, DDIM, DPM-Solver++),
flow matching (linear path, Euler/Heun) and classifier-free guidance."""

from pertdit.diffusion.flow import FLOW_SAMPLERS, FlowSampler
from pertdit.diffusion.guidance import (
    backbone_eps_fn,
    classifier_free_guidance,
    guidance_enabled,
    sample_drop_mask,
)
from pertdit.diffusion.parametrisation import (
    LOSS_WEIGHTINGS,
    PREDICTIONS,
    eps_fn_from_output,
    loss_weights,
    output_to_eps,
    output_to_x0,
    prediction_target,
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
    "FLOW_SAMPLERS",
    "FlowSampler",
    "LOSS_WEIGHTINGS",
    "PREDICTIONS",
    "eps_fn_from_output",
    "loss_weights",
    "output_to_eps",
    "output_to_x0",
    "prediction_target",
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
