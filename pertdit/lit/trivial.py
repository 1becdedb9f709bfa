"""Trivial baselines through the same evaluation path: `control` and `mean_shift`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from pertdit.lit.base import Batch, PerturbationModule

KINDS = ("control", "mean_shift")


class TrivialModule(PerturbationModule):
    """`control`: predict the paired control. `mean_shift`: control + mean training shift of the drug at that
    dose, falling back to the drug's mean shift over doses, then to the global mean shift (unseen drugs)."""

    requires_training = False

    def __init__(self, kind: str = "mean_shift", n_genes: int = 0, n_drugs: int = 0, d_pert: int = 0,
                 n_cells: int = 0, dose_decimals: int = 4, fit_chunk_rows: int = 4096, **base_kwargs) -> None:
        super().__init__(**base_kwargs)
        if kind not in KINDS:
            raise ValueError(f"unknown trivial baseline {kind!r}; choose one of {KINDS}")
        self.save_hyperparameters()
        self.kind = kind
        self.dose_decimals = dose_decimals
        self.fit_chunk_rows = fit_chunk_rows
        self.register_buffer("global_shift", torch.zeros(n_genes))
        self.register_buffer("drug_shift", torch.zeros(n_drugs, n_genes))
        self.register_buffer("drug_seen", torch.zeros(n_drugs, dtype=torch.bool))
        self.register_buffer("dose_keys", torch.zeros(0, 2))
        self.register_buffer("dose_shift", torch.zeros(0, n_genes))
        # per-gene SD of the training residuals (truth - prediction): the reference spread of calibration.csv
        self.register_buffer("residual_sd", torch.zeros(n_genes))

    def _dose_key(self, drug_index: torch.Tensor, dose: torch.Tensor) -> torch.Tensor:
        return torch.stack([drug_index.double(), torch.round(dose.double() * 10**self.dose_decimals)], dim=1)

    @torch.no_grad()
    def fit_statistics(self, source: Batch | Iterable[Batch] | Any) -> None:
        """Mean shifts (x0 - c_pre): global, per drug, per (drug, dose), summed in float64 batch by batch.

        `source`: a data module (its training rows, streamed in chunks of `fit_chunk_rows` without drug
        tokens), an iterable of batches, or one batch.
        """
        if isinstance(source, dict):
            batches: Iterable[Batch] = [source]
        elif hasattr(source, "iter_batches"):
            batches = source.iter_batches("train", self.fit_chunk_rows, conditions=False)
        else:
            batches = list(source)  # read twice: the shifts, then the residuals
        n_drugs, n_genes = self.drug_shift.shape
        total, count = torch.zeros(n_genes, dtype=torch.float64), 0
        drug_sums = torch.zeros(n_drugs, n_genes, dtype=torch.float64)
        drug_counts = torch.zeros(n_drugs, dtype=torch.float64)
        dose_sums: dict[tuple[float, float], torch.Tensor] = {}
        dose_counts: dict[tuple[float, float], int] = {}
        for batch in batches:
            shift = (batch["x0"] - batch["c_pre"]).double().cpu()
            drug = batch["drug_index"].cpu()
            total += shift.sum(0)
            count += len(shift)
            drug_sums.index_add_(0, drug, shift)
            drug_counts.index_add_(0, drug, torch.ones(len(drug), dtype=torch.float64))
            keys, inverse = torch.unique(self._dose_key(drug, batch["dose"].cpu()), dim=0, return_inverse=True)
            sums = torch.zeros(len(keys), n_genes, dtype=torch.float64).index_add_(0, inverse, shift)
            counts = torch.bincount(inverse, minlength=len(keys))
            for key, key_sum, key_count in zip(map(tuple, keys.tolist()), sums, counts.tolist()):
                dose_sums[key] = dose_sums[key] + key_sum if key in dose_sums else key_sum
                dose_counts[key] = dose_counts.get(key, 0) + key_count
        device = self.global_shift.device
        self.global_shift = (total / max(count, 1)).float().to(device)
        self.drug_seen = (drug_counts > 0).to(device)
        self.drug_shift = (drug_sums / drug_counts.clamp(min=1)[:, None]).float().to(device)
        order = sorted(dose_sums)
        self.dose_keys = torch.tensor(order, dtype=torch.float32).reshape(-1, 2).to(device)
        self.dose_shift = (torch.stack([dose_sums[k] / dose_counts[k] for k in order]).float() if order
                           else torch.zeros(0, n_genes)).to(device)
        if hasattr(source, "iter_batches"):
            batches = source.iter_batches("train", self.fit_chunk_rows, conditions=False)
        self.residual_sd = self._residual_sd(batches).to(device)

    def _residual_sd(self, batches: Iterable[Batch]) -> torch.Tensor:
        """(G,) SD (ddof 1) of truth - prediction over the batches, in float64."""
        total, total_sq, count = 0.0, 0.0, 0
        for batch in batches:
            residual = (batch["x0"] - self.predict_batch(batch)).double().cpu()
            total, total_sq, count = total + residual.sum(0), total_sq + (residual**2).sum(0), count + len(residual)
        if count < 2:
            return torch.zeros_like(self.global_shift)
        variance = (total_sq - total**2 / count) / (count - 1)
        return variance.clamp(min=0).sqrt().float()

    def predict_with_spread(self, batch: Batch):
        """The point prediction and the Gaussian around it with the training residual SD per gene: the
        trivial reference of the calibration (docs/calibration.md)."""
        from pertdit.metrics.calibration import PredictiveSpread

        pred = self.predict_batch(batch)
        sd = self.residual_sd.cpu().numpy()[None].repeat(pred.shape[0], 0)
        return pred, PredictiveSpread(mean=pred.detach().float().cpu().numpy(), sd=sd)

    def predict_batch(self, batch: Batch) -> torch.Tensor:
        control = batch["c_pre"]
        if self.kind == "control":
            return control
        drug = batch["drug_index"]
        shift = self.global_shift.expand_as(control).clone()
        seen = self.drug_seen[drug.clamp(min=0)] & (drug >= 0)
        shift[seen] = self.drug_shift[drug[seen]]
        if len(self.dose_keys):
            key = self._dose_key(drug, batch["dose"]).to(self.dose_keys.dtype)
            match = (key[:, None, :] == self.dose_keys[None]).all(-1)
            has = match.any(1)
            shift[has] = self.dose_shift[match[has].float().argmax(1)]
        return control + shift
