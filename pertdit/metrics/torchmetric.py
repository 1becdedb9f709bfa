"""The 10 measures as a torchmetrics Metric: accumulates batches (and DDP ranks), scores once at the end."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torchmetrics import Metric
from torchmetrics.utilities.distributed import gather_all_tensors

from pertdit.metrics.measures import CONTROL_REFERENCES, compute_measures, empty_measures

# state name -> dtype; profiles are stored flattened (B * G,) so every state is 1-D (see `_sync_dist`)
_STATES: dict[str, torch.dtype] = {
    "pred": torch.float32,
    "truth": torch.float32,
    "control": torch.float32,
    "cell_index": torch.long,
    "drug_index": torch.long,
    "dose": torch.float32,
    "row": torch.long,
}


class PerturbationMetrics(Metric):
    """R2 and PCC(lnFC) x 5 groupings over every sample seen since the last `reset()`.

    States are concatenated (`dist_reduce_fx="cat"`), so `compute()` scores the union of all batches
    and all DDP ranks. Samples passed with a dataset `row` are scored once per row: a DistributedSampler
    pads the last batches with repeated rows, which would otherwise count twice. Pass
    `compute_on_cpu=True` to keep the accumulated profiles off the GPU.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, relu: bool = False, control_reference: str = "paired", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if control_reference not in CONTROL_REFERENCES:
            raise ValueError(
                f"control_reference must be one of {CONTROL_REFERENCES}, got {control_reference!r}"
            )
        self.relu = relu
        self.control_reference = control_reference
        for name in _STATES:
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self._table: pd.DataFrame | None = None

    def update(
        self,
        pred: torch.Tensor,
        truth: torch.Tensor,
        control: torch.Tensor,
        cell_index: torch.Tensor,
        drug_index: torch.Tensor,
        dose: torch.Tensor,
        row: torch.Tensor | None = None,
    ) -> None:
        """Add a batch: pred, truth, control (B, G); cell_index, drug_index (B,) long; dose (B,) float;
        row (B,) long, the dataset row of each sample (optional; a row seen twice is scored once)."""
        if not (pred.ndim == 2 and pred.shape == truth.shape == control.shape):
            raise ValueError(
                "pred, truth and control must be (B, G) of one shape, got "
                f"{tuple(pred.shape)}, {tuple(truth.shape)}, {tuple(control.shape)}"
            )
        n = pred.shape[0]
        if row is None:  # -1: no identity, never de-duplicated
            row = torch.full((n,), -1, dtype=torch.long, device=pred.device)
        for name, t in (("cell_index", cell_index), ("drug_index", drug_index), ("dose", dose), ("row", row)):
            if t.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {tuple(t.shape)}")
        batch = {"pred": pred, "truth": truth, "control": control}
        batch.update(cell_index=cell_index, drug_index=drug_index, dose=dose, row=row)
        for name, dtype in _STATES.items():
            getattr(self, name).append(batch[name].detach().to(dtype).reshape(-1))

    def compute(self) -> dict[str, float]:
        """Mean of each measure: {"r2/per_sample": ..., "pcc_lnfc/drug": ...}; NaN when nothing was seen."""
        states = {name: _concatenated(getattr(self, name)) for name in _STATES}
        n = 0 if states["dose"] is None else states["dose"].shape[0]
        if n == 0:
            table = empty_measures()
        else:
            arrays = {name: s.cpu().numpy() for name, s in states.items()}
            for name in ("pred", "truth", "control"):
                arrays[name] = arrays[name].reshape(n, -1)
            keep = _unique_rows(arrays["row"])
            arrays = {name: a[keep] for name, a in arrays.items()}
            table = compute_measures(
                arrays["truth"],
                arrays["pred"],
                arrays["control"],
                arrays["cell_index"],
                arrays["drug_index"],
                arrays["dose"].astype(np.float64),
                relu=self.relu,
                control_reference=self.control_reference,
            )
        self._table = table
        return {f"{row.metric}/{row.grouping}": float(row.mean) for row in table.itertuples()}

    def table(self) -> pd.DataFrame:
        """The full measures table (mean, median, min, max, n_groups, n_nan per measure)."""
        self.compute()  # synced across ranks; cached by torchmetrics until the next update/reset
        assert self._table is not None
        return self._table.copy()

    def _sync_dist(self, dist_sync_fn: Any = gather_all_tensors, process_group: Any | None = None) -> None:
        """Gather states across ranks; a rank that saw no batch sends empty states of the right dtype.

        (torchmetrics would send a float32 placeholder, which breaks the gather of the long index states.)
        """
        for name, dtype in _STATES.items():
            if isinstance(getattr(self, name), list) and not getattr(self, name):
                setattr(self, name, [torch.zeros(0, dtype=dtype, device=self.device)])
        super()._sync_dist(dist_sync_fn, process_group)

    def reset(self) -> None:
        """Forget every accumulated sample."""
        super().reset()
        self._table = None


def _unique_rows(row: np.ndarray) -> np.ndarray:
    """Indices that keep each dataset row >= 0 once (first occurrence, in row order) and every row < 0."""
    known = np.flatnonzero(row >= 0)
    _, first = np.unique(row[known], return_index=True)
    return np.concatenate([known[first], np.flatnonzero(row < 0)])


def _concatenated(state: list[torch.Tensor] | torch.Tensor) -> torch.Tensor | None:
    """A list state as one tensor (it is already one after a DDP sync); None when empty."""
    if isinstance(state, torch.Tensor):
        return state
    return torch.cat(state) if state else None
