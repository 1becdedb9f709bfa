"""`train(cfg)`: build data, representation, model and trainer from a Hydra config; fit, test, report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from pertdit.metrics import evaluate_h5ad, format_table, write_metrics_csv

log = logging.getLogger(__name__)


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
    prediction_path = str(run_dir / "PRED.h5ad") if cfg.eval.write_predictions else None
    return instantiate(cfg.model, **dm.dims, relu_predictions=bool(relu),
                       control_reference=cfg.eval.control_reference, prediction_path=prediction_path,
                       _recursive_=False, _convert_="all")


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit (unless the model needs no training), test, write metrics.csv; return the test measures."""
    L.seed_everything(cfg.seed, workers=True)
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    dm = build_datamodule(cfg)
    model = build_model(cfg, dm, run_dir)
    loggers = _instantiate_dict(cfg.get("logger"))
    callbacks = [c for c in _instantiate_dict(cfg.get("callbacks"))
                 if loggers or not isinstance(c, L.pytorch.callbacks.LearningRateMonitor)]
    trainer_kwargs = {}
    if not model.automatic_optimization and cfg.trainer.get("gradient_clip_val"):
        log.info("%s optimises manually; Lightning cannot clip its gradients, so trainer.gradient_clip_val=%s "
                 "is not applied", type(model).__name__, cfg.trainer.gradient_clip_val)
        trainer_kwargs["gradient_clip_val"] = None
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **trainer_kwargs)
    if getattr(model, "requires_training", True):
        trainer.fit(model, datamodule=dm, ckpt_path=cfg.get("ckpt_path"))
    else:
        model.fit_statistics(dm)  # the training rows, streamed in chunks
    metrics: dict[str, float] = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.get("test", True):
        best = getattr(trainer.checkpoint_callback, "best_model_path", "") if trainer.checkpoint_callback else ""
        trainer.test(model, datamodule=dm, ckpt_path=best or None, weights_only=False if best else None)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        table = model.test_table
        if table is None and model.prediction_path and Path(model.prediction_path).is_file():
            # spawned DDP (trainer=ddp_cpu): the test ran in child processes; rank 0 wrote its predictions
            table = evaluate_h5ad(model.prediction_path, control_reference=cfg.eval.control_reference)
        if trainer.is_global_zero and table is not None:
            write_metrics_csv(table, run_dir / "metrics.csv")
            log.info("test measures (%s, split %s):\n%s", cfg.model._target_.rsplit(".", 1)[-1],
                     dm.split.name, format_table(table))
    _finish_loggers(trainer)
    return metrics


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
