"""Training callbacks: early stopping that waits for a minimum number of epochs and says why it stopped;
an exact resume of the global random state and of plateau schedulers; a compute budget."""

from __future__ import annotations

import logging
import math
import random
import time
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.callbacks import EarlyStopping as LightningEarlyStopping
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger(__name__)


class EarlyStopping(LightningEarlyStopping):
    """Lightning's early stopping, with patience counted only from epoch `min_epochs` on.

    The best value is tracked from the first validation; validations before epoch `min_epochs` (0-based)
    never count towards `patience`, so a run is not stopped by the noisy first epochs (the authors of
    PertDiT: patience 10 after epoch 60). A non-finite monitored value still stops at once. When it stops,
    one log line gives the epoch, the monitored value, the best value and its epoch, and the patience.
    """

    def __init__(self, *args: Any, min_epochs: int = 0, **kwargs: Any) -> None:
        kwargs.setdefault("verbose", False)  # Lightning's per-improvement lines; the stop line is ours
        super().__init__(*args, **kwargs)
        self.min_epochs = int(min_epochs)
        self.best_epoch = -1
        self._epoch = 0

    def _evaluate_stopping_criteria(self, current: torch.Tensor) -> tuple[bool, str | None]:
        previous_best = float(self.best_score)
        should_stop, reason = super()._evaluate_stopping_criteria(current)
        if float(self.best_score) != previous_best:
            self.best_epoch = self._epoch
        if self.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED or not should_stop:
            if self._epoch < self.min_epochs:  # patience starts counting at epoch min_epochs
                self.wait_count = 0
                self.stopping_reason = EarlyStoppingReason.NOT_STOPPED
                return False, reason
        return should_stop, reason

    def _run_early_stopping_check(self, trainer) -> None:
        self._epoch = trainer.current_epoch
        stopped_before = trainer.should_stop
        super()._run_early_stopping_check(trainer)
        if trainer.should_stop and not stopped_before and self.stopped_epoch == trainer.current_epoch:
            current = trainer.callback_metrics.get(self.monitor)
            self._report_stop(float(current) if current is not None else math.nan)

    @rank_zero_only
    def _report_stop(self, current: float) -> None:
        if self.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED:
            log.info("early stopping after epoch %d: %s %.5g has not improved on the best %.5g (epoch %d) "
                     "for %d validations (patience %d, counted from epoch %d)", self.stopped_epoch,
                     self.monitor, current, float(self.best_score), self.best_epoch, self.wait_count,
                     self.patience, self.min_epochs)
        else:
            log.info("early stopping after epoch %d: %s (best %s %.5g at epoch %d)", self.stopped_epoch,
                     self.stopping_reason_message, self.monitor, float(self.best_score), self.best_epoch)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "best_epoch": self.best_epoch, "min_epochs": self.min_epochs}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The run's state (best value and epoch, wait count); the configured patience wins over the saved
        one, so a resumed run can be given more patience."""
        patience = self.patience
        super().load_state_dict(state_dict)
        self.patience = patience
        self.best_epoch = int(state_dict.get("best_epoch", -1))


class ExactResume(Callback):
    """Makes a resumed run continue as the uninterrupted one would have.

    Lightning restores weights, optimiser, schedulers and loop counters, but not (a) the global random number
    generators (dropout, PRnet's decoder noise, ChemCPA's ... draw from them) and (b) the epoch-end step of a
    ReduceLROnPlateau scheduler, which Lightning takes after the epoch-end checkpoint is written and skips on
    restart. This callback writes the RNG states and the plateau schedulers' monitored values into every
    checkpoint, and on resume sets the RNG states back and takes the missed plateau step just before training
    continues.
    """

    KEY = "pertdit_exact_resume"

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        plateau = []
        for config in trainer.lr_scheduler_configs:
            value = trainer.callback_metrics.get(config.monitor) if config.reduce_on_plateau else None
            plateau.append(None if value is None else float(value))
        checkpoint[self.KEY] = {"rng": rng_states(), "plateau": plateau, "epoch": trainer.current_epoch}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        self._pending = checkpoint.get(self.KEY)

    def on_train_start(self, trainer, pl_module) -> None:
        if self._pending is None:
            return
        pending, self._pending = self._pending, None
        for config, value in zip(trainer.lr_scheduler_configs, pending.get("plateau", [])):
            if config.reduce_on_plateau and value is not None and config.interval == "epoch":
                config.scheduler.step(value)
        set_rng_states(pending["rng"])


def rng_states() -> dict[str, Any]:
    """The global RNG states (python, numpy, torch CPU and CUDA) as tensors and plain values (so that a
    checkpoint holding them still loads with weights_only=True)."""
    version, state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": [version, torch.tensor(state, dtype=torch.int64), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Set the global RNGs to `states` (from `rng_states`)."""
    version, state, gauss = states["python"]
    random.setstate((version, tuple(int(v) for v in state.tolist()), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class ComputeBudget(Callback):
    """Stops training once it has used a compute budget: process CPU time (all threads of this process, so a
    budget means the same work on a busy and on a quiet machine) and/or wall-clock time, counted from the
    start of fitting (validation included) and carried across a resume.

    After fitting, `summary` holds what the run did with its budget: CPU and wall seconds used, optimiser
    steps, epochs, and whether the budget stopped it.
    """

    KEY = "pertdit_compute_budget"

    def __init__(self, cpu_minutes: float | None = None, wall_minutes: float | None = None) -> None:
        for name, value in (("cpu_minutes", cpu_minutes), ("wall_minutes", wall_minutes)):
            if value is not None and not value > 0:
                raise ValueError(f"ComputeBudget: {name} must be > 0 or null, got {value}")
        self.cpu_seconds = None if cpu_minutes is None else 60.0 * float(cpu_minutes)
        self.wall_seconds = None if wall_minutes is None else 60.0 * float(wall_minutes)
        self._used = {"cpu": 0.0, "wall": 0.0}
        self._start: dict[str, float] | None = None
        self.stopped = False
        self.summary: dict[str, Any] = {}

    def _elapsed(self) -> dict[str, float]:
        if self._start is None:
            return dict(self._used)
        return {"cpu": self._used["cpu"] + time.process_time() - self._start["cpu"],
                "wall": self._used["wall"] + time.perf_counter() - self._start["wall"]}

    def on_fit_start(self, trainer, pl_module) -> None:
        self._start = {"cpu": time.process_time(), "wall": time.perf_counter()}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        used = self._elapsed()
        limits = (("cpu", self.cpu_seconds), ("wall", self.wall_seconds))
        over = [(kind, used[kind], limit) for kind, limit in limits if limit is not None and used[kind] >= limit]
        if over and not self.stopped:
            self.stopped = True
            trainer.should_stop = True
            kind, value, limit = over[0]
            log.info("compute budget reached after %d optimiser steps (epoch %d): %.0f %s seconds used of %.0f",
                     trainer.global_step, trainer.current_epoch, value, kind.upper(), limit)

    def on_fit_end(self, trainer, pl_module) -> None:
        used = self._elapsed()
        self._used, self._start = used, None
        self.summary = {"cpu_seconds": round(used["cpu"], 1), "wall_seconds": round(used["wall"], 1),
                        "steps": int(trainer.global_step), "epochs": int(trainer.current_epoch),
                        "stopped_by_budget": self.stopped,
                        "cpu_budget_seconds": self.cpu_seconds, "wall_budget_seconds": self.wall_seconds}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[self.KEY] = self._elapsed()

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(self.KEY)
        if saved:
            self._used = {"cpu": float(saved["cpu"]), "wall": float(saved["wall"])}
