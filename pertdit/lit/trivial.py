"""Trivial baselines through the same evaluation path: `control` and `mean_shift`."""

from __future__ import annotations

import torch

from pertdit.lit.base import Batch, PerturbationModule

KINDS = ("control", "mean_shift")


class TrivialModule(PerturbationModule):
    """`control`: predict the paired control. `mean_shift`: control + mean training shift of the drug at that
    dose, falling back to the drug's mean shift over doses, then to the global mean shift (unseen drugs)."""

    requires_training = False

    def __init__(self, kind: str = "mean_shift", n_genes: int = 0, n_drugs: int = 0, d_pert: int = 0,
                 n_cells: int = 0, dose_decimals: int = 4, **base_kwargs) -> None:
        super().__init__(**base_kwargs)
        if kind not in KINDS:
            raise ValueError(f"unknown trivial baseline {kind!r}; choose one of {KINDS}")
        self.save_hyperparameters()
        self.kind = kind
        self.dose_decimals = dose_decimals
        self.register_buffer("global_shift", torch.zeros(n_genes))
        self.register_buffer("drug_shift", torch.zeros(n_drugs, n_genes))
        self.register_buffer("drug_seen", torch.zeros(n_drugs, dtype=torch.bool))
        self.register_buffer("dose_keys", torch.zeros(0, 2))
        self.register_buffer("dose_shift", torch.zeros(0, n_genes))

    def _dose_key(self, drug_index: torch.Tensor, dose: torch.Tensor) -> torch.Tensor:
        return torch.stack([drug_index.double(), torch.round(dose.double() * 10**self.dose_decimals)], dim=1)

    @torch.no_grad()
    def fit_statistics(self, batch: Batch) -> None:
        """Mean shifts (x0 - c_pre) of the training batch: global, per drug, per (drug, dose)."""
        shift = batch["x0"] - batch["c_pre"]
        drug = batch["drug_index"]
        self.global_shift = shift.mean(0)
        counts = torch.zeros(self.drug_shift.shape[0]).index_add_(0, drug, torch.ones(len(drug)))
        sums = torch.zeros_like(self.drug_shift).index_add_(0, drug, shift)
        self.drug_seen = counts > 0
        self.drug_shift = sums / counts.clamp(min=1)[:, None]
        keys, inverse = torch.unique(self._dose_key(drug, batch["dose"]), dim=0, return_inverse=True)
        key_counts = torch.zeros(len(keys), dtype=shift.dtype).index_add_(0, inverse, torch.ones(len(drug)))
        self.dose_keys = keys.float()
        self.dose_shift = torch.zeros(len(keys), shift.shape[1]).index_add_(0, inverse, shift) / key_counts[:, None]

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
