"""The 10 measures as a torchmetrics Metric: accumulates batches (and DDP ranks), scores once at the end.

Batches are reduced as they come to the measures' sufficient statistics (`pertdit.metrics.accumulate`):
each sample's R2 and PCC(lnFC), and float64 sums per (cell, drug, dose) group. So 100k test profiles cost
24 bytes x genes per group plus 16 bytes per sample, not three float32 copies of every profile.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from torchmetrics import Metric
from torchmetrics.utilities.distributed import gather_all_tensors

from pertdit.metrics.accumulate import GroupSums, measures_from_sums, merge_groups, per_sample_values
from pertdit.metrics.measures import CONTROL_REFERENCES, empty_measures

# registered list states (gathered with "cat" across DDP ranks) -> dtype
_SAMPLE_STATES: dict[str, torch.dtype] = {"sample_row": torch.long, "sample_r2": torch.float64,
                                          "sample_pcc": torch.float64}
# the last batch, kept whole until the next update: a DistributedSampler's padding repeats rows there
_PENDING_STATES: dict[str, torch.dtype] = {"pending_pred": torch.float32, "pending_truth": torch.float32,
                                           "pending_control": torch.float32, "pending_cell": torch.long,
                                           "pending_drug": torch.long, "pending_dose": torch.float64,
                                           "pending_row": torch.long}


class PerturbationMetrics(Metric):
    """R2 and PCC(lnFC) x 5 groupings over every sample seen since the last `reset()`.

    `compute()` scores the union of all batches and all DDP ranks. Samples passed with a dataset `row` are
    scored once per row: a row seen before on this rank is skipped at `update`; across ranks, where a
    DistributedSampler pads the last batches with repeated rows, each rank's last batch stays whole
    (`pending_*`) until `compute()`, which keeps the first copy of a repeated row (in rank order).
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
        for name in (*_SAMPLE_STATES, *_PENDING_STATES):
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self._groups = GroupSums()
        self._seen: set[int] = set()
        self._gathered: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
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
        keep = self._unseen(row)
        pred = pred.detach().float()
        if self.relu:
            pred = pred.clamp(min=0)
        self._flush_pending()
        batch = {"pending_pred": pred, "pending_truth": truth, "pending_control": control,
                 "pending_cell": cell_index, "pending_drug": drug_index, "pending_dose": dose, "pending_row": row}
        for name, dtype in _PENDING_STATES.items():
            setattr(self, name, [batch[name].detach()[keep].to(dtype).reshape(-1)])

    def _unseen(self, row: torch.Tensor) -> torch.Tensor:
        """(B,) bool: rows not seen before on this rank (rows < 0 always count)."""
        keep = []
        for r in row.tolist():
            keep.append(r < 0 or r not in self._seen)
            if r >= 0:
                self._seen.add(r)
        return torch.tensor(keep, dtype=torch.bool, device=row.device)

    def _flush_pending(self) -> None:
        """Move the pending batch into the running statistics."""
        pending = _pending_arrays(self)
        if pending is None:
            return
        r2, pcc = per_sample_values(pending["truth"], pending["pred"], pending["control"])
        self._groups.add(pending["keys"], pending["truth"], pending["pred"], pending["control"])
        for name, values in (("sample_row", pending["row"]), ("sample_r2", r2), ("sample_pcc", pcc)):
            getattr(self, name).append(torch.as_tensor(values, dtype=_SAMPLE_STATES[name], device=self.device))
        for name in _PENDING_STATES:
            setattr(self, name, [])

    def compute(self) -> dict[str, float]:
        """Mean of each measure: {"r2/per_sample": ..., "pcc_lnfc/drug": ...}; NaN when nothing was seen."""
        try:
            if self._gathered is None:  # one process: fold the last batch in (no other rank can repeat its rows)
                self._flush_pending()
            rows = _as_numpy(self.sample_row, np.int64)
            r2, pcc = _as_numpy(self.sample_r2, np.float64), _as_numpy(self.sample_pcc, np.float64)
            keys, sums, counts = self._gathered or self._groups.arrays()
            sums = sums.reshape(len(sums), 3, -1) if len(sums) else sums
            pending = _pending_arrays(self)
            if pending is not None:
                keep = _first_copies(pending["row"], rows)
                extra = GroupSums()
                extra.add(pending["keys"][keep], pending["truth"][keep], pending["pred"][keep],
                          pending["control"][keep])
                more_r2, more_pcc = per_sample_values(pending["truth"][keep], pending["pred"][keep],
                                                      pending["control"][keep])
                r2, pcc = np.concatenate([r2, more_r2]), np.concatenate([pcc, more_pcc])
                keys, sums, counts = _concatenate((keys, sums, counts), extra.arrays())
            keys, sums, counts = merge_groups(keys, sums, counts)
            table = empty_measures() if not len(r2) else measures_from_sums(
                r2, pcc, keys, sums, counts, self.control_reference)
        finally:
            self._gathered = None
        self._table = table
        return {f"{row.metric}/{row.grouping}": float(row.mean) for row in table.itertuples()}

    def table(self) -> pd.DataFrame:
        """The full measures table (mean, median, min, max, n_groups, n_nan per measure)."""
        self.compute()  # synced across ranks; cached by torchmetrics until the next update/reset
        assert self._table is not None
        return self._table.copy()

    def _sync_dist(self, dist_sync_fn: Any = gather_all_tensors, process_group: Any | None = None) -> None:
        """Gather the list states (a rank that saw no batch sends empty states of the right dtype) and the
        group sums of every rank (merged in `compute`)."""
        for name, dtype in {**_SAMPLE_STATES, **_PENDING_STATES}.items():
            if isinstance(getattr(self, name), list) and not getattr(self, name):
                setattr(self, name, [torch.zeros(0, dtype=dtype, device=self.device)])
        super()._sync_dist(dist_sync_fn, process_group)
        keys, sums, counts = self._groups.arrays()
        parts = []
        for array in (keys, sums.reshape(len(sums), int(np.prod(sums.shape[1:]))), counts):
            local = torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float64, device=self.device)
            gathered = dist_sync_fn(local, group=process_group)
            parts.append([g.cpu().numpy() for g in gathered])
        keep = [i for i, c in enumerate(parts[2]) if len(c)]
        if not keep:
            self._gathered = (np.zeros((0, 3)), np.zeros((0, 0)), np.zeros(0))
            return
        self._gathered = tuple(np.concatenate([part[i] for i in keep]) for part in parts)

    def reset(self) -> None:
        """Forget every accumulated sample."""
        super().reset()
        self._groups = GroupSums()
        self._seen = set()
        self._gathered = None
        self._table = None


def _as_numpy(state: list[torch.Tensor] | torch.Tensor, dtype: type) -> np.ndarray:
    """A list state (or the tensor a DDP sync made of it) as one numpy array."""
    if isinstance(state, torch.Tensor):
        return state.cpu().numpy().astype(dtype, copy=False)
    return torch.cat(state).cpu().numpy().astype(dtype, copy=False) if state else np.empty(0, dtype=dtype)


def _pending_arrays(metric: PerturbationMetrics) -> dict[str, np.ndarray] | None:
    """The pending batch (all ranks' after a sync) as numpy arrays, with group keys; None when empty."""
    row = _as_numpy(metric.pending_row, np.int64)
    if not len(row):
        return None
    out = {"row": row}
    for name in ("pred", "truth", "control"):
        out[name] = _as_numpy(getattr(metric, f"pending_{name}"), np.float32).reshape(len(row), -1)
    out["keys"] = np.column_stack([_as_numpy(metric.pending_cell, np.float64),
                                   _as_numpy(metric.pending_drug, np.float64),
                                   _as_numpy(metric.pending_dose, np.float64)])
    return out


def _first_copies(pending_rows: np.ndarray, counted_rows: np.ndarray) -> np.ndarray:
    """(P,) bool: pending rows to score: no identity (< 0), or not yet counted and the first copy among
    the pending rows; RuntimeError when counted rows repeat (only a sampler's last-batch padding can)."""
    known = counted_rows[counted_rows >= 0]
    if len(np.unique(known)) != len(known):
        raise RuntimeError("PerturbationMetrics: a dataset row was scored on two DDP ranks outside their last "
                           "batch; only a DistributedSampler's padding (last batch) can be de-duplicated")
    keep = pending_rows < 0
    _, first = np.unique(pending_rows, return_index=True)
    first_copy = np.zeros(len(pending_rows), dtype=bool)
    first_copy[first] = True
    return keep | (first_copy & ~np.isin(pending_rows, known) & (pending_rows >= 0))


def _concatenate(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Stack two (keys, sums, counts) triples (either may be empty)."""
    if not len(a[0]):
        return b
    if not len(b[0]):
        return a
    return tuple(np.concatenate([x, y]) for x, y in zip(a, b))
