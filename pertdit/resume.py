"""`pertdit train --resume RUN_DIR`: continue an interrupted run with its own config and last checkpoint.

The run folder's `config.yaml` (the resolved config `train(cfg)` wrote) is read back, `ckpt_path` is pointed
at `checkpoints/last.ckpt` (rewritten at the end of every epoch), and training continues in the same folder:
same data, split, model, seed, so it ends with the weights an uninterrupted run would have, and the CSV log
keeps its history. Only overrides in `SAFE_OVERRIDES` are accepted: they change how long or how visibly the
run trains, never what it trains. Anything else (another model size, split, seed, learning rate) is a new run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from pertdit.checkpoints import LAST
from pertdit.errors import PertDiTError

log = logging.getLogger(__name__)
_ABSENT = object()

#: keys a resumed run may change, and why each is safe
SAFE_OVERRIDES = {
    "trainer.max_epochs": "train longer (or stop sooner)",
    "trainer.max_steps": "train longer (or stop sooner)",
    "callbacks.early_stopping.patience": "more (or less) patience from now on",
    "callbacks.early_stopping.min_epochs": "when patience starts counting",
    "callbacks.compute_budget.cpu_minutes": "the CPU budget of the whole fit (minutes)",
    "callbacks.compute_budget.wall_minutes": "the wall-clock budget of the whole fit (minutes)",
    "callbacks.last_checkpoint.every_n_train_steps": "how often last.ckpt is rewritten",
    "trainer.enable_progress_bar": "console only",
    "trainer.enable_model_summary": "console only",
    "data.num_workers": "loader processes; the batches are the same",
    "test": "whether to test at the end",
    "eval.write_predictions": "whether to write PRED.h5ad",
}


class ResumeError(PertDiTError, ValueError):
    """A run cannot be resumed as asked (no config or checkpoint, or an override that changes the run)."""


def resume_config(run_dir: str | Path, overrides: list[str] | None = None) -> DictConfig:
    """The config of the run in `run_dir`, set to resume from its last.ckpt, with `overrides` (KEY=VALUE,
    keys from `SAFE_OVERRIDES` only) applied."""
    run_dir = Path(run_dir)
    config = run_dir / "config.yaml"
    if not config.is_file():
        raise ResumeError(f"cannot resume {run_dir}: no config.yaml there (a run folder of `pertdit train` "
                          "holds config.yaml and checkpoints/)")
    last = run_dir / "checkpoints" / LAST
    if not last.is_file():
        raise ResumeError(f"cannot resume {run_dir}: no checkpoints/{LAST} (the run stopped before its first "
                          "epoch ended, or ran with callbacks=none); start it again")
    cfg = OmegaConf.load(config)
    saved_dir = OmegaConf.select(cfg, "paths.run_dir", default=None)
    if saved_dir and Path(saved_dir).resolve() != run_dir.resolve():  # the folder was moved or copied
        cfg = _repoint(cfg, str(saved_dir), str(run_dir))
    for key, value in parse_overrides(overrides or []):
        if OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT:
            raise ResumeError(f"cannot set {key} when resuming {run_dir}: its config.yaml has no such key "
                              "(e.g. early stopping is off in that run)")
        OmegaConf.update(cfg, key, value, merge=False)
    cfg.paths.run_dir = str(run_dir)
    cfg.ckpt_path = str(last)
    return cfg


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    """(key, value) of each KEY=VALUE (values parsed as YAML: 300, true, null); a `ResumeError` naming the
    override when it is not one of `SAFE_OVERRIDES`."""
    parsed = []
    allowed = ", ".join(SAFE_OVERRIDES)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key.startswith(("+", "~")) or key not in SAFE_OVERRIDES:
            raise ResumeError(f"--resume accepts overrides that do not change what the run trains "
                              f"({allowed}); got {item!r}. To change anything else, start a new run (optionally from "
                              "these weights with ckpt_path=FILE)")
        parsed.append((key, yaml.safe_load(value) if value else None))
    return parsed


def _repoint(cfg: DictConfig, old: str, new: str) -> DictConfig:
    """`cfg` with every string under the old run folder moved under the new one."""
    def move(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, list):
            return [move(v) for v in value]
        if isinstance(value, str) and (value == old or value.startswith(old.rstrip("/") + "/")):
            return new + value[len(old):]
        return value

    log.info("the run folder moved from %s to %s: paths re-pointed", old, new)
    return OmegaConf.create(move(OmegaConf.to_container(cfg, resolve=False)))
