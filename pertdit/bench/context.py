"""Shared set-up of the benchmarks: Hydra config composition, the real plate's data module, models, batches.

Everything is built through the project's own path (`pertdit.train.build_datamodule`, `build_model`), so a
benchmark times what `pertdit train` runs.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning.pytorch  # noqa: F401  (imported before `quiet` sets its log level: import resets it)
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from pertdit.bench.machine import MachineInfo
from pertdit.bench.settings import BenchSettings, ModelSize, settings_for
from pertdit.config import CONFIG_DIR, register_resolvers

Batch = dict[str, torch.Tensor]
SPLIT = "random_fold"  # random split of the plate (PRnet 5-fold, fold 0)


class BenchContext:
    """Devices and their settings, the composed configs, the plate's data module, results shared by sections."""

    def __init__(self, devices: Sequence[str], quick: bool = False, data_dir: str | None = None,
                 cache_dir: str | None = None, seed: int = 0, workdir: str | Path | None = None,
                 verbose: bool = True, command: str = "python -m pertdit.bench", scale_dir: str | None = None,
                 scale_profiles: Sequence[int] | None = None) -> None:
        self.devices = list(devices)
        self.scale_dir = scale_dir  # where the datascale section keeps its synthetic releases (None: a temp dir)
        self.quick = quick
        self.settings: dict[str, BenchSettings] = {d: settings_for(d, quick) for d in (*self.devices, "cpu")}
        if scale_profiles:
            self.settings = {d: replace(s, scale_profiles=tuple(scale_profiles)) for d, s in self.settings.items()}
        self.data_dir, self.cache_dir, self.seed = data_dir, cache_dir, seed
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="pertdit-bench-")
        self.workdir = Path(workdir or self._tmp.name)
        self.machine = MachineInfo(command=command)
        self.verbose = verbose
        self.shared: dict[Any, Any] = {}  # results one section leaves for another (e.g. step throughput)
        self._datamodule = None

    def log(self, message: str) -> None:
        if self.verbose:
            print(f"[bench] {message}", file=sys.stderr, flush=True)

    # -- configs -------------------------------------------------------------------------------------------
    def compose(self, overrides: Sequence[str] = (), run_name: str = "run") -> DictConfig:
        """The `train` config on the plate's random split, with `overrides`."""
        paths = [f"paths.run_dir={self.workdir / run_name}"]
        if self.data_dir:
            paths.append(f"paths.data_dir={self.data_dir}")
        if self.cache_dir:
            paths.append(f"paths.cache_dir={self.cache_dir}")
        register_resolvers()
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose("train", overrides=[f"split={SPLIT}", f"seed={self.seed}", *overrides, *paths])

    def datamodule(self):
        """The plate's data module (random split, batch 64), built once."""
        if self._datamodule is None:
            from pertdit.train import build_datamodule

            self._datamodule = build_datamodule(self.compose())
        return self._datamodule

    def module(self, model: str, size: ModelSize, device: str, overrides: Sequence[str] = (),
               datamodule=None):
        """The LightningModule of `pertdit/conf/model/<model>.yaml` at `size`, on `device`."""
        from pertdit.train import build_model

        cfg = self.compose([f"model={model}", *size.overrides(), *overrides], run_name=f"run-{model}")
        dm = datamodule or self.datamodule()
        torch.manual_seed(self.seed)
        return build_model(cfg, dm, Path(cfg.paths.run_dir)).to(device)

    # -- batches -------------------------------------------------------------------------------------------
    def rows(self, part: str, n: int | None = None, seed: int | None = None) -> np.ndarray:
        """`n` rows of a split (all when None); drawn with replacement when the split has fewer."""
        rows = self.datamodule().rows[part]
        if n is None:
            return rows
        rng = np.random.default_rng(self.seed if seed is None else seed)
        return rng.choice(rows, size=n, replace=n > len(rows))

    def test_rows(self, device: str) -> np.ndarray:
        """The test rows sampled by the sampling benchmarks on `device`."""
        return self.rows("test")[: self.settings[device].test_profiles]

    def batch(self, n: int, device: str, part: str = "train") -> Batch:
        """A real batch of `n` profiles of the plate, on `device`."""
        return to_device(self.datamodule().batch_of_rows(self.rows(part, n)), device)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def to_device(batch: Batch, device: str | torch.device) -> Batch:
    return {k: v.to(device) for k, v in batch.items()}


@contextmanager
def autocast(device: str, enabled: bool) -> Iterator[None]:
    """bf16 autocast on CUDA when `enabled` (what `precision: bf16-mixed` does), else nothing."""
    if enabled and torch.device(device).type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


@contextmanager
def quiet() -> Iterator[None]:
    """Silence Lightning's banners and the warnings of calling `training_step` outside a Trainer."""
    names = ("lightning.pytorch", "lightning.fabric", "pertdit")
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*self.log.*")
        warnings.filterwarnings("ignore", module="lightning")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        try:
            yield
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
