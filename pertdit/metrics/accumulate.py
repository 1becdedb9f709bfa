"""The 10 measures from sufficient statistics, so evaluation streams: samples are added block by block and
never kept.

What the measures need (DESIGN.md, "The 10 measures"): each sample's R2 and PCC(lnFC) (two numbers), and
for every (cell, drug, dose) group the sums of the truth, prediction and paired-control profiles and the
sample count (`GroupSums`, float64). Every coarser grouping (cov_drug, drug_dose, drug) is a union of
(cell, drug, dose) groups, and PRnet's `cell_mean` control reference is a count-weighted mean of per-cell
control sums, so all 10 measures follow from these (`measures_from_sums`). Memory: 24 bytes x genes per
(cell, drug, dose) group plus 16 bytes per sample, instead of 12 bytes x genes per sample (three float32
profiles) and its copies.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pertdit.metrics.measures import (
    COLUMNS,
    CONTROL_REFERENCES,
    GROUPINGS,
    METRICS,
    _summary,
    pearson_rows,
    r2_rows,
)

#: columns of a group key (cell code, drug code, dose) that make each grouping
KEY_COLUMNS: dict[str, tuple[int, ...]] = {"cov_drug_dose": (0, 1, 2), "cov_drug": (0, 1), "drug_dose": (1, 2),
                                           "drug": (1,)}
#: fine groups handled at once when scoring (memory ~ 3 x block x genes x 8 bytes)
BLOCK_GROUPS = 512


def per_sample_values(truth: np.ndarray, pred: np.ndarray, control: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) R2(y_i, p_i) and (N,) pearson(y_i - x_i, p_i - x_i) of a block of samples, in float64."""
    y, p, x = (np.asarray(a, dtype=np.float64) for a in (truth, pred, control))
    return r2_rows(y, p), pearson_rows(y - x, p - x)


class GroupSums:
    """Running float64 sums of truth, prediction and control (K, 3, G) and counts (K,) per group key
    (cell, drug, dose) (K, 3); grows by doubling."""

    def __init__(self) -> None:
        self._slots: dict[tuple[float, float, float], int] = {}
        self._keys = np.zeros((0, 3))
        self._sums = np.zeros((0, 3, 0))
        self._counts = np.zeros(0)

    def __len__(self) -> int:
        return len(self._slots)

    def add(self, keys: np.ndarray, truth: np.ndarray, pred: np.ndarray, control: np.ndarray) -> None:
        """Add B samples: keys (B, 3) float64 (cell code, drug code, dose), profiles (B, G)."""
        keys = np.asarray(keys, dtype=np.float64)
        if not len(keys):
            return
        n_genes = truth.shape[1]
        if self._sums.shape[2] != n_genes:
            if len(self):
                raise ValueError(f"profiles have {n_genes} genes, earlier ones {self._sums.shape[2]}")
            self._sums = np.zeros((len(self._keys), 3, n_genes))
        slots = np.array([self._slot(k) for k in map(tuple, keys.tolist())], dtype=np.int64)
        order = np.argsort(slots, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(slots[order]) != 0])
        targets = slots[order][starts]
        for part, values in enumerate((truth, pred, control)):
            block = np.asarray(values, dtype=np.float64)[order]
            self._sums[targets, part] += np.add.reduceat(block, starts, axis=0)
        self._counts[targets] += np.diff(np.r_[starts, len(slots)])

    def _slot(self, key: tuple[float, float, float]) -> int:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = len(self._slots)
            if slot >= len(self._keys):
                self._grow(max(256, len(self._keys) + len(self._keys) // 4))
            self._keys[slot] = key
        return slot

    def _grow(self, capacity: int) -> None:
        """Enlarge in place (`ndarray.resize` reallocates; large blocks are remapped, not copied), new rows 0."""
        for name in ("_keys", "_sums", "_counts"):
            array = getattr(self, name)
            if not array.flags.owndata:
                array = array.copy()
            array.resize((capacity, *array.shape[1:]), refcheck=False)
            setattr(self, name, array)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """keys (K, 3), sums (K, 3, G), counts (K,) of the groups seen (views, no copy)."""
        n = len(self._slots)
        return self._keys[:n], self._sums[:n], self._counts[:n]


def merge_groups(keys: np.ndarray, sums: np.ndarray, counts: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Add up rows of the same key (e.g. the groups of several DDP ranks): unique keys, sums, counts."""
    if not len(keys):
        return keys, sums, counts
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    if len(unique) == len(keys):
        return keys, sums, counts
    order = np.argsort(inverse.ravel(), kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(inverse.ravel()[order]) != 0])
    return unique, np.add.reduceat(sums[order], starts, axis=0), np.add.reduceat(counts[order], starts)


@dataclass
class _Coarse:
    """The fine groups of one grouping, sorted by coarse group, in blocks of whole coarse groups."""

    order: np.ndarray
    starts: np.ndarray
    codes: np.ndarray

    def blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(fine group indices, offsets of each coarse group within them) per block."""
        bounds = np.searchsorted(self.starts, np.arange(0, len(self.order), BLOCK_GROUPS))
        bounds = np.unique(np.r_[bounds, len(self.starts)])
        edges = np.r_[self.starts, len(self.order)]
        for g0, g1 in zip(bounds[:-1], bounds[1:]):
            rows = self.order[edges[g0]:edges[g1]]
            yield rows, self.starts[g0:g1] - edges[g0]


def _coarse(keys: np.ndarray, columns: tuple[int, ...]) -> _Coarse:
    _, codes = np.unique(keys[:, list(columns)], axis=0, return_inverse=True)
    codes = codes.ravel()
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
    return _Coarse(order=order, starts=starts, codes=codes)


def measures_from_sums(r2: np.ndarray, pcc: np.ndarray, keys: np.ndarray, sums: np.ndarray, counts: np.ndarray,
                       control_reference: str = "paired") -> pd.DataFrame:
    """The measures table (columns `COLUMNS`) from per-sample values (N,) and merged group sums.

    Grouped: R2(mean y, mean p) and pearson(mean y - ref, mean p - ref), ref = the mean of the group's paired
    controls (`paired`) or of its samples' cell-line control means (`cell_mean`, PRnet's variant).
    """
    if control_reference not in CONTROL_REFERENCES:
        raise ValueError(f"control_reference must be one of {CONTROL_REFERENCES}, got {control_reference!r}")
    values = {("r2", "per_sample"): np.asarray(r2), ("pcc_lnfc", "per_sample"): np.asarray(pcc)}
    cell_means = _cell_control_means(keys, sums, counts) if control_reference == "cell_mean" else None
    for grouping in GROUPINGS[1:]:
        values["r2", grouping], values["pcc_lnfc", grouping] = _grouped(
            _coarse(keys, KEY_COLUMNS[grouping]), keys, sums, counts, cell_means)
    rows = [_summary(m, g, values[m, g]) for m in METRICS for g in GROUPINGS]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _cell_control_means(keys: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> dict[float, np.ndarray]:
    """cell code -> mean paired control of that cell line's samples (G,)."""
    means = {}
    for cell in np.unique(keys[:, 0]):
        mine = keys[:, 0] == cell
        means[cell] = sums[mine, 2].sum(axis=0) / counts[mine].sum()
    return means


def _grouped(coarse: _Coarse, keys: np.ndarray, sums: np.ndarray, counts: np.ndarray,
             cell_means: dict[float, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    r2, pcc = [np.empty(0)], [np.empty(0)]
    for rows, starts in coarse.blocks():
        n = np.add.reduceat(counts[rows], starts)[:, None]
        mean_y = np.add.reduceat(sums[rows, 0], starts, axis=0) / n
        mean_p = np.add.reduceat(sums[rows, 1], starts, axis=0) / n
        if cell_means is None:
            ref = np.add.reduceat(sums[rows, 2], starts, axis=0) / n
        else:
            weighted = counts[rows, None] * np.stack([cell_means[c] for c in keys[rows, 0]])
            ref = np.add.reduceat(weighted, starts, axis=0) / n
        r2.append(r2_rows(mean_y, mean_p))
        pcc.append(pearson_rows(mean_y - ref, mean_p - ref))
    return np.concatenate(r2), np.concatenate(pcc)


class MeasureAccumulator:
    """Add (truth, pred, control, cell, drug, dose) block by block; `table()` gives the measures.

    `cell` and `drug` are ids of any hashable type (str or int), mapped to codes as they come; a `row` id
    >= 0 seen before is skipped (each row scored once). `relu`: predictions clipped at 0 first.
    """

    def __init__(self, relu: bool = False) -> None:
        self.relu = relu
        self.groups = GroupSums()
        self._codes: tuple[dict, dict] = ({}, {})
        self._r2: list[np.ndarray] = []
        self._pcc: list[np.ndarray] = []
        self._seen: set[int] = set()

    def add(self, truth: np.ndarray, pred: np.ndarray, control: np.ndarray, cell, drug, dose,
            rows: np.ndarray | None = None) -> None:
        """Add a block: truth, pred, control (B, G); cell, drug, dose (B,); rows (B,) dataset rows or None."""
        keep = self._new_rows(rows, len(truth))
        if keep is not None:
            truth, pred, control = truth[keep], pred[keep], control[keep]
            cell, drug, dose = np.asarray(cell)[keep], np.asarray(drug)[keep], np.asarray(dose)[keep]
        pred = np.maximum(pred, 0) if self.relu else pred
        r2, pcc = per_sample_values(truth, pred, control)
        self._r2.append(r2)
        self._pcc.append(pcc)
        keys = np.column_stack([self._code(0, cell), self._code(1, drug), np.asarray(dose, dtype=np.float64)])
        self.groups.add(keys, truth, pred, control)

    def _new_rows(self, rows: np.ndarray | None, n: int) -> np.ndarray | None:
        if rows is None:
            return None
        keep = np.ones(n, dtype=bool)
        for i, row in enumerate(np.asarray(rows).tolist()):
            if row >= 0:
                keep[i] = row not in self._seen
                self._seen.add(row)
        return None if keep.all() else keep

    def _code(self, which: int, ids) -> np.ndarray:
        lookup = self._codes[which]
        return np.array([lookup.setdefault(i, len(lookup)) for i in np.asarray(ids).tolist()], dtype=np.float64)

    def table(self, control_reference: str = "paired") -> pd.DataFrame:
        """The measures table of every sample added so far."""
        keys, sums, counts = self.groups.arrays()
        r2 = np.concatenate(self._r2) if self._r2 else np.empty(0)
        pcc = np.concatenate(self._pcc) if self._pcc else np.empty(0)
        return measures_from_sums(r2, pcc, keys, sums, counts, control_reference)
