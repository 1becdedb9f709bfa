"""The LightningModule every PertDiT model (diffusion or baseline) derives from.

A subclass says how to predict a batch (`predict_batch`); this base class runs validation and test through
the 10 measures and writes the test predictions as a PRED.h5ad (the evaluation contract of DESIGN.md).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from pertdit.metrics import PerturbationMetrics

Batch = dict[str, torch.Tensor]
log = logging.getLogger(__name__)


class PerturbationModule(L.LightningModule):
    """Base class: evaluation with the 10 measures, prediction writing, shared optimiser plumbing."""

    #: True for models with a learned embedding per training cell line: they cannot predict another one
    uses_cell_identity: bool = False

    def __init__(
        self,
        relu_predictions: bool = False,
        control_reference: str = "paired",
        prediction_path: str | None = None,
        record_spread: bool = True,
    ) -> None:
        super().__init__()
        self.relu_predictions = relu_predictions
        self.prediction_path = prediction_path
        self.record_spread = record_spread  # eval.spread: spread layers in PRED.h5ad, calibration.csv
        self.val_metrics = PerturbationMetrics(relu=relu_predictions, control_reference=control_reference)
        self.test_metrics = PerturbationMetrics(relu=relu_predictions, control_reference=control_reference)
        self._test_rows: list[torch.Tensor] = []
        self._test_preds: list[torch.Tensor] = []
        self._test_spreads: list[dict] = []
        self._spread_kind = ""
        self.calibration_table = None  # set after a test when the model has a spread (metrics/calibration.py)
        self.test_table = None
        self.provenance: dict | None = None  # set by train(): written into the PRED.h5ad's uns["pertdit"]
        # prefix of the logged test measures; train() sets test/<set> when one run scores several test sets
        self.test_stage = "test"

    # -- what a model must provide -------------------------------------------------------------------------
    def predict_batch(self, batch: Batch) -> torch.Tensor:
        """Predicted post-perturbation profiles (B, G) for a batch."""
        raise NotImplementedError

    def predict_with_spread(self, batch: Batch):
        """The point prediction (B, G) and the model's `PredictiveSpread` for the batch, or None when it has
        none (deterministic models). Overridden by models that sample or predict a variance."""
        return self.predict_batch(batch), None

    # -- evaluation ------------------------------------------------------------------------------------------
    def _evaluate_batch(self, batch: Batch, metrics: PerturbationMetrics, stage: str,
                        pred: torch.Tensor | None = None) -> torch.Tensor:
        pred = (self.predict_batch(batch) if pred is None else pred).float()
        metrics.update(pred, batch["x0"], batch["c_pre"], batch["cell_index"], batch["drug_index"], batch["dose"],
                       row=batch["row"])
        self.log(f"{stage}/mse", F.mse_loss(pred, batch["x0"]), on_epoch=True, on_step=False,
                 batch_size=pred.shape[0], sync_dist=True)
        return pred

    def _log_measures(self, metrics: PerturbationMetrics, stage: str) -> None:
        for key, value in metrics.compute().items():
            self.log(f"{stage}/{key}", float(value), sync_dist=False, rank_zero_only=True)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate_batch(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_measures(self.val_metrics, "val")
        self.val_metrics.reset()

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        pred, spread = self.predict_with_spread(batch) if self.record_spread else (None, None)
        pred = self._evaluate_batch(batch, self.test_metrics, self.test_stage, pred)
        self._test_rows.append(batch["row"].detach().cpu())
        self._test_preds.append(pred.detach().cpu())
        if spread is not None:
            self._spread_kind = spread.kind
            self._test_spreads.append(spread.layers(batch["x0"].detach().cpu().double().numpy(),
                                                    seed=int(batch["row"][0])))

    def on_test_epoch_end(self) -> None:
        self._log_measures(self.test_metrics, self.test_stage)
        self.test_table = self.test_metrics.table()
        self.test_metrics.reset()
        spreads, order = self._test_spreads, self._test_order()
        rows, preds = self._gather_test_predictions()
        self._test_rows, self._test_preds, self._test_spreads = [], [], []
        if not rows.numel():
            return
        self._add_replicate_ceiling(rows, preds)
        layers = self._spread_layers(rows, spreads, order)
        if self.prediction_path and self.trainer.is_global_zero:
            self.write_predictions(rows, preds, self.prediction_path, layers=layers)

    def _add_replicate_ceiling(self, rows: torch.Tensor, preds: torch.Tensor) -> None:
        """Append the replicate ceiling (and the model on the same rows) to `test_table` and log both; read
        block by block from the dataset and the predictions (the PRED AnnData is never built whole)."""
        from pertdit.lit.predictions import ceiling_of_rows
        from pertdit.metrics.replicates import with_replicate_ceiling

        ceiling = ceiling_of_rows(self.trainer.datamodule.adata, rows.numpy(), preds.float().numpy(),
                                  self.relu_predictions, self.test_metrics.control_reference)
        self.test_table = with_replicate_ceiling(self.test_table, ceiling)
        for row in ceiling.itertuples():
            self.log(f"{self.test_stage}/ceiling/{row.metric}/{row.grouping}", float(row.ceiling_mean),
                     rank_zero_only=True)
            self.log(f"{self.test_stage}/same_rows/{row.metric}/{row.grouping}",
                     float(row.model_same_rows_mean), rank_zero_only=True)
        first = ceiling.iloc[0]
        self.log(f"{self.test_stage}/ceiling_profiles", float(first["ceiling_profiles"]), rank_zero_only=True)
        self.log(f"{self.test_stage}/unreplicated_profiles", float(first["unreplicated_profiles"]),
                 rank_zero_only=True)

    def _test_order(self) -> np.ndarray | None:
        """Positions of the first occurrence of each test row, in row order (what `_gather_test_predictions`
        keeps, on one process)."""
        if not self._test_rows:
            return None
        _, first = np.unique(torch.cat(self._test_rows).numpy(), return_index=True)
        return first

    def _spread_layers(self, rows: torch.Tensor, spreads: list[dict], order: np.ndarray | None) -> dict:
        """The spread layers of the test rows (metrics/calibration.py), and `calibration_table`, the coverage of
        their central intervals. On several processes the spread is not gathered: none, with a warning."""
        from pertdit.metrics.calibration import calibration_table, concat_layers

        if not spreads:
            return {}
        if self.trainer.world_size > 1:
            log.warning("the predictive spread is not gathered across %d processes: PRED.h5ad has no spread "
                        "layers and no calibration.csv is written (test on one device for them)",
                        self.trainer.world_size)
            return {}
        layers = concat_layers(spreads, order)
        truth = np.asarray(self.trainer.datamodule.adata.X[rows.numpy()], dtype=np.float32)
        self.calibration_table = calibration_table(truth, layers, source=self._spread_kind)
        return layers

    def _gather_test_predictions(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._test_rows:
            return torch.empty(0, dtype=torch.long), torch.empty(0)
        rows = torch.cat(self._test_rows)
        preds = torch.cat(self._test_preds)
        if self.trainer.world_size > 1:  # a distributed sampler pads with repeats: keep each row once
            rows = self.all_gather(rows.to(self.device)).reshape(-1).cpu()
            preds = self.all_gather(preds.to(self.device)).reshape(rows.shape[0], -1).cpu()
        order = torch.argsort(rows, stable=True)
        rows, preds = rows[order], preds[order]
        keep = torch.ones_like(rows, dtype=torch.bool)
        keep[1:] = rows[1:] != rows[:-1]
        return rows[keep], preds[keep]

    def write_predictions(self, rows: torch.Tensor, preds: torch.Tensor, path: str | Path,
                          layers: dict | None = None) -> Path:
        """Write PRED.h5ad (X = predictions, layers truth/control, and the spread `layers` when given) for the
        given dataset rows, block by block from the (memory-mapped) dataset."""
        from pertdit.lit.predictions import write_prediction_h5ad

        adata = self.trainer.datamodule.adata
        provenance = {**(self.provenance or {}), **({"spread": self._spread_kind} if layers else {})}
        return write_prediction_h5ad(adata, rows.numpy(), preds.float().numpy(), path,
                                     relu=self.relu_predictions, provenance=provenance, layers=layers)

    # -- optimisation ---------------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:  # pragma: no cover - subclasses that train override this
        return None
