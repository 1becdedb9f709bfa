"""Compose the real Hydra config in tests, with tiny model sizes and a temporary cache."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from pertdit.config import CONFIG_DIR, register_resolvers

TINY_BACKBONE = ["model.backbone.d_model=16", "model.backbone.n_layers=1", "model.backbone.n_heads=2",
                 "model.backbone.mlp_hidden=16", "model.backbone.time_embed_dim=16"]
QUIET = ["logger=[]", "callbacks=none", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def compose_train(overrides: list[str], run_dir: Path, cache_dir: Path, data_dir: Path) -> DictConfig:
    """The `train` config with `overrides`, writing into `run_dir` and caching into `cache_dir`."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=[*overrides, f"paths.run_dir={run_dir}", f"paths.cache_dir={cache_dir}",
                                           f"paths.data_dir={data_dir}"])
