"""LightningModules: the base evaluation path, the diffusion model and the baselines."""

from pertdit.lit.base import PerturbationModule
from pertdit.lit.trivial import TrivialModule

__all__ = ["PerturbationModule", "TrivialModule"]
