"""`train(cfg)`: build data, representation, model and trainer from a Hydra config; fit, test, report."""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from omegaconf import DictConfig, OmegaConf

from pertdit.callbacks import ComputeBudget
from pertdit.checkpoints import check_checkpoint, load_checkpoint, resume_checkpoint, safe_loading
from pertdit.console import configure_console, log_every_n_steps
from pertdit.metrics import evaluate_h5ad, format_table, write_metrics_csv
from pertdit.metrics.calibration import format_calibration, write_calibration_csv
from pertdit.provenance import (
    PROVENANCE_FILE,
    SUBSTITUTION_COLUMN,
    run_provenance,
    substitution_note,
    write_run_provenance,
)

log = logging.getLogger(__name__)

#: output names of a run; a smoke test (`trainer.fast_dev_run`) writes `*.smoke.*` instead
OUTPUT_NAMES = {False: ("metrics.csv", "PRED.h5ad"), True: ("metrics.smoke.csv", "PRED.smoke.h5ad")}


def output_names(smoke: bool, test_set: str | None = None) -> tuple[str, str]:
    """(measures file, predictions file) of a test: metrics.csv and PRED.h5ad, or metrics_<set>.csv and
    PRED_<set>.h5ad for each test set of a run that scores several (`split.test_set=all`); a smoke test
    writes `*.smoke.*` instead."""
    names = OUTPUT_NAMES[smoke]
    if test_set is None:
        return names
    return tuple(name.replace(".", f"_{test_set}.", 1) for name in names)  # type: ignore[return-value]


def is_smoke_test(cfg: DictConfig) -> bool:
    """True for `trainer.fast_dev_run`: a few batches to check the pipeline, never a result."""
    return bool(OmegaConf.select(cfg, "trainer.fast_dev_run", default=False))


def _instantiate_dict(node: DictConfig | None) -> list[Any]:
    return [instantiate(v) for v in (node or {}).values() if v is not None and "_target_" in v]


def build_datamodule(cfg: DictConfig):
    """The data module of `cfg.data` with `cfg.split` and `cfg.perturbation`, set up for fitting."""
    dm = instantiate(cfg.data, split=instantiate(cfg.split), representation=instantiate(cfg.perturbation),
                     _recursive_=False)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def build_model(cfg: DictConfig, dm, run_dir: Path) -> L.LightningModule:
    """The LightningModule of `cfg.model`, sized from the data module."""
    relu = cfg.eval.relu
    if relu is None:
        relu = dm.adata.uns["pertdit"].get("transform") == "prnet"
    prediction_name = output_names(is_smoke_test(cfg), _named_test_sets(dm)[0])[1]
    prediction_path = str(run_dir / prediction_name) if cfg.eval.write_predictions else None
    return instantiate(cfg.model, **dm.dims, relu_predictions=bool(relu),
                       control_reference=cfg.eval.control_reference, prediction_path=prediction_path,
                       record_spread=bool(cfg.eval.get("spread", True)), _recursive_=False, _convert_="all")


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit (unless the model needs no training), test, write metrics.csv; return the test measures.

    `cfg.ckpt_path` resumes: a checkpoint file, a run folder (its checkpoints/last.ckpt) or "last".
    """
    configure_console()
    L.seed_everything(cfg.seed, workers=True)
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    smoke = is_smoke_test(cfg)
    ckpt_path = resume_checkpoint(cfg.get("ckpt_path"), run_dir)
    _save_config(cfg, run_dir / "config.yaml")
    dm = build_datamodule(cfg)
    representation = dm.adata.uns["pertdit"].get("representation")
    write_run_provenance(run_dir / PROVENANCE_FILE, representation)
    substitution = substitution_note(representation)
    if substitution:
        log.warning("the drug representation made a substitution (recorded in %s and metrics.csv): %s",
                    run_dir / PROVENANCE_FILE, substitution)
    model = build_model(cfg, dm, run_dir)
    loggers = _instantiate_dict(cfg.get("logger"))
    if ckpt_path:
        _keep_log_history(loggers, ckpt_path)
    callbacks = [c for c in _instantiate_dict(cfg.get("callbacks"))
                 if loggers or not isinstance(c, L.pytorch.callbacks.LearningRateMonitor)]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                     **_trainer_adjustments(cfg, model, dm))
    if smoke:
        log.info("trainer.fast_dev_run: a smoke test, not a result; outputs are written as %s and %s",
                 *OUTPUT_NAMES[True])
    if getattr(model, "requires_training", True):
        with safe_loading(), warnings.catch_warnings():
            if ckpt_path:  # resuming writes into the run's own checkpoint folder, on purpose
                warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
            trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path, weights_only=True if ckpt_path else None)
        _report_end_of_training(trainer, cfg)
        if trainer.is_global_zero:
            _write_compute_summary(trainer, model, run_dir)
    else:
        model.fit_statistics(dm)  # the training rows, streamed in chunks
    metrics: dict[str, float] = {k: float(v) for k, v in trainer.callback_metrics.items()}
    written: list[Path] = []
    if cfg.get("test", True):
        metrics.update(_test(cfg, trainer, model, dm, run_dir, smoke, written))
    _finish_loggers(trainer)
    if trainer.is_global_zero:
        _report_outputs(run_dir, trainer, written)
    return metrics


def _named_test_sets(dm) -> list[str | None]:
    """The test sets whose outputs carry their name (`split.test_set=all`), else [None]: one metrics.csv."""
    return list(dm.split.test_sets) if dm.split.scores_every_test_set else [None]


def _test(cfg: DictConfig, trainer: L.Trainer, model, dm, run_dir: Path, smoke: bool,
          written: list[Path]) -> dict[str, float]:
    """Test with the best checkpoint (else the final weights) on every test set of the split; write
    metrics.csv (or metrics_<set>.csv per set; metrics.smoke.csv for a smoke test)."""
    metrics: dict[str, float] = {}
    for test_set in _named_test_sets(dm):
        if test_set is not None:
            dm.select_test_set(test_set)
            model.test_stage = f"test/{test_set}"
        metrics.update(_test_set(cfg, trainer, model, dm, run_dir, smoke, written, test_set))
    return metrics


def _test_set(cfg: DictConfig, trainer: L.Trainer, model, dm, run_dir: Path, smoke: bool,
              written: list[Path], test_set: str | None) -> dict[str, float]:
    """Test the data module's selected test set; write its measures (and predictions) under the names of
    `output_names(smoke, test_set)`."""
    metrics_name, prediction_name = output_names(smoke, test_set)
    if model.prediction_path is not None:
        model.prediction_path = str(run_dir / prediction_name)
    model.test_table = None
    model.calibration_table = None
    best = _best_checkpoint_path(trainer)
    model.provenance = run_provenance(cfg, test_set or dm.split.name, best or "final weights (no checkpoint)",
                                      smoke)
    with safe_loading():
        trainer.test(model, datamodule=dm, ckpt_path=str(check_checkpoint(best)) if best else None,
                     weights_only=True if best else None, verbose=False)  # the table is logged below
    table = model.test_table
    if table is None and model.prediction_path and Path(model.prediction_path).is_file():
        # spawned DDP (trainer=ddp_cpu): the test ran in child processes; rank 0 wrote its predictions
        table = evaluate_h5ad(model.prediction_path, control_reference=cfg.eval.control_reference)
    if trainer.is_global_zero and table is not None:
        if smoke:
            table = table.assign(smoke_test=True)
        substitution = substitution_note(dm.adata.uns["pertdit"].get("representation"))
        if substitution:
            table = table.assign(**{SUBSTITUTION_COLUMN: substitution})
        written.append(write_metrics_csv(table, run_dir / metrics_name))
        if getattr(model, "calibration_table", None) is not None:
            written.append(write_calibration_csv(model.calibration_table, run_dir / metrics_name.replace(
                "metrics", "calibration")))
            log.info("calibration of the predicted spread (docs/calibration.md):\n%s",
                     format_calibration(model.calibration_table))
        log.info("test measures (%s, split %s%s):\n%s", cfg.model._target_.rsplit(".", 1)[-1],
                 test_set or dm.split.name, ", smoke test" if smoke else "", format_table(table))
    if model.prediction_path and Path(model.prediction_path).is_file():
        written.append(Path(model.prediction_path))
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def _save_config(cfg: DictConfig, path: Path) -> None:
    """The resolved config, written to a temporary file and renamed (never half-written)."""
    tmp = path.with_suffix(".yaml.tmp")
    OmegaConf.save(cfg, tmp, resolve=True)
    os.replace(tmp, path)


def _keep_log_history(loggers: list[Any], ckpt_path: str) -> None:
    """Resuming: keep the loggers' history up to the checkpoint's epoch (rows after it are logged again)."""
    epoch = int(load_checkpoint(ckpt_path).get("epoch", -1))
    log.info("resuming from %s (after epoch %d)", ckpt_path, epoch)
    for logger in loggers:
        keep = getattr(logger, "keep_history", None)
        if keep:
            keep(epoch)


def _trainer_adjustments(cfg: DictConfig, model, dm) -> dict[str, Any]:
    """Trainer arguments that depend on the model and the data, each said in the log when it applies."""
    kwargs: dict[str, Any] = {}
    if not model.automatic_optimization and cfg.trainer.get("gradient_clip_val"):
        log.info("%s optimises manually; Lightning cannot clip its gradients, so trainer.gradient_clip_val=%s "
                 "is not applied", type(model).__name__, cfg.trainer.gradient_clip_val)
        kwargs["gradient_clip_val"] = None
    configured = int(cfg.trainer.get("log_every_n_steps") or 50)
    batches = _train_batches_per_epoch(cfg, dm)
    interval = log_every_n_steps(configured, batches)
    if interval != configured:
        log.info("an epoch has %d training batches: logging every %d steps (trainer.log_every_n_steps=%d)",
                 batches, interval, configured)
        kwargs["log_every_n_steps"] = interval
    return kwargs


def _train_batches_per_epoch(cfg: DictConfig, dm) -> int:
    """Training batches per epoch, as Lightning counts them (limit_train_batches: a count or a fraction)."""
    per_device = math.ceil(len(dm.rows["train"]) / max(1, int(dm.batch_size)))
    limit = cfg.trainer.get("limit_train_batches")
    if limit is None:
        return per_device
    if isinstance(limit, float) and limit <= 1.0:
        return max(1, int(per_device * limit))
    return min(per_device, int(limit))


def _best_checkpoint_path(trainer: L.Trainer) -> str:
    """The best-by-validation checkpoint of the fit ("" if none): the monitored ModelCheckpoint's."""
    for callback in trainer.checkpoint_callbacks:
        if getattr(callback, "monitor", None) and getattr(callback, "best_model_path", ""):
            return callback.best_model_path
    return ""


def _report_end_of_training(trainer: L.Trainer, cfg: DictConfig) -> None:
    """One line on why the fit ended when it was not early stopping (which reports itself)."""
    if trainer.fast_dev_run or not trainer.is_global_zero:
        return
    stopped_early = any(getattr(c, "stopped_epoch", 0) for c in trainer.early_stopping_callbacks)
    if not stopped_early:
        log.info("training ended after epoch %d of trainer.max_epochs=%s (%d optimiser steps)",
                 trainer.current_epoch - 1, cfg.trainer.get("max_epochs"), trainer.global_step)


def _stop_reason(trainer: L.Trainer, budget: ComputeBudget) -> str:
    """Why the fit ended: compute_budget, early_stopping, max_steps or max_epochs."""
    if budget.stopped:
        return "compute_budget"
    if any(getattr(c, "stopping_reason", EarlyStoppingReason.NOT_STOPPED) != EarlyStoppingReason.NOT_STOPPED
           for c in trainer.early_stopping_callbacks):
        return "early_stopping"
    if trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps:
        return "max_steps"
    return "max_epochs"


def _write_compute_summary(trainer: L.Trainer, model, run_dir: Path) -> None:
    """`compute.json`: what the fit used (ComputeBudget's CPU and wall seconds, steps, epochs, whether the budget
    stopped it), why it stopped (`stopped_by`) and the model's trainable parameters."""
    budgets = [c for c in trainer.callbacks if isinstance(c, ComputeBudget)]
    if not budgets:
        return
    summary = {**budgets[0].summary, "stopped_by": _stop_reason(trainer, budgets[0]),
               "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    tmp = run_dir / "compute.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, run_dir / "compute.json")
    log.info("compute: %.0f CPU seconds (%.0f wall), %d optimiser steps, %d epochs, %d trainable parameters%s",
             summary["cpu_seconds"], summary["wall_seconds"], summary["steps"], summary["epochs"],
             summary["trainable_parameters"], " (stopped by its budget)" if summary["stopped_by_budget"] else "")


def _report_outputs(run_dir: Path, trainer: L.Trainer, written: list[Path]) -> None:
    """The run folder and the files a user opens next, one per line."""
    lines = [f"run directory: {run_dir.resolve()}"]
    lines += [f"  {p.name}: {p.resolve()}" for p in written]
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        lines.append(f"  last checkpoint (resume with `pertdit train --resume {run_dir}`): {last.resolve()}")
    best = _best_checkpoint_path(trainer)
    if best:
        lines.append(f"  best checkpoint: {Path(best).resolve()}")
    log.info("outputs:\n%s", "\n".join(lines))


def _finish_loggers(trainer: L.Trainer) -> None:
    """Close W&B runs so a multirun does not merge them."""
    for logger in trainer.loggers:
        finalize = getattr(logger, "finalize", None)
        if finalize:
            finalize("success")
    try:
        import wandb

        if wandb.run is not None:
            wandb.finish()
    except ImportError:  # pragma: no cover - wandb is a dependency, but keep training usable without it
        pass
