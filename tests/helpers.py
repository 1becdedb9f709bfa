"""Compose the real Hydra config in tests, with tiny model sizes and a temporary cache."""

from __future__ import annotations

import os
import time
from pathlib import Path

import lightning as L
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



class EpochProbe(L.Callback):
    """A callback for subprocess tests (`+callbacks.probe._target_=tests.helpers.EpochProbe`): appends
    "start E" / "end E" lines to `path` (on disk at once) and sleeps `batch_sleep` seconds after each training
    batch, so that a signal sent from outside lands in the middle of an epoch."""

    def __init__(self, path: str, batch_sleep: float = 0.0) -> None:
        self.path, self.batch_sleep = path, batch_sleep

    def _write(self, line: str) -> None:
        with open(self.path, "a") as file:
            file.write(line + "\n")
            file.flush()
            os.fsync(file.fileno())

    def on_train_epoch_start(self, trainer, module) -> None:
        self._write(f"start {trainer.current_epoch}")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        time.sleep(self.batch_sleep)

    def on_train_epoch_end(self, trainer, module) -> None:
        self._write(f"end {trainer.current_epoch}")


def probe_epochs(path: Path) -> tuple[list[int], list[int]]:
    """(started, ended) epoch numbers written by `EpochProbe`, in order."""
    lines = path.read_text().split() if path.is_file() else []
    pairs = list(zip(lines[::2], lines[1::2]))
    return ([int(e) for k, e in pairs if k == "start"], [int(e) for k, e in pairs if k == "end"])
