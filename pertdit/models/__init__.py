"""Backbones (gene-token diffusion transformers) and their building blocks.

Backbones are chosen by Hydra `_target_` (pertdit/conf/model/backbone/*.yaml); there is no registry.
"""

from pertdit.models.adadit import AdaDiT
from pertdit.models.backbone import Conditioning, GeneTokenBackbone
from pertdit.models.catcrossdit import CatCrossDiT
from pertdit.models.catonly import CatonlyCrossDiT
from pertdit.models.crossdit import CrossDiT

__all__ = ["AdaDiT", "CatCrossDiT", "CatonlyCrossDiT", "Conditioning", "CrossDiT", "GeneTokenBackbone"]
