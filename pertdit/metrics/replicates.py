"""Replicate ceiling: how well one replicate well predicts another, scored by the same measure code as models.

A replicate group is a (cell line, compound SMILES, dose, time) with two or more wells in the evaluated set.
A replicate "predicts" a well the way a model does, from the well's own paired control x_i: p_i = x_i plus
the fold change (y_j - x_j) of the other well(s), each against its own control.
- per_sample: every well of a replicate group is the truth, with p_i = x_i + mean over the OTHER wells j of
  (y_j - x_j): R2(y_i, p_i) and PCC(y_i - x_i, p_i - x_i) as for a model.
- grouped (cov_drug_dose, cov_drug, drug_dose, drug): the wells of each group are dealt, in dataset order,
  into halves A (1st, 3rd, ...) and B; the A wells are the truth, with p_i = x_i + the mean fold change of
  B. (Leave-one-out predictions would average back to the group mean, so every grouped score would be 1.)
Why not the other wells' raw mean scored against x_i: y_j - x_i and y_i - x_i share the noise of the one
control well x_i, which alone correlates them (HT115: median PCC 0.475 that way, 0.102 with own controls;
docs/metrics.md). Next to each ceiling, the model is scored on exactly the same truth rows
(`model_same_rows_mean`). Rows without a replicate are counted (`unreplicated_profiles`), never scored.

Memory: the ceiling is computed in blocks of whole replicate groups (`replicate_blocks`; groups are small), each
block's scores added to running statistics (`ReplicateCeiling`: per-sample values, and the grouped measures'
sums of `pertdit.metrics.accumulate`), so only one block of profiles is ever read: `replicate_ceiling` from
arrays (which may be memory-mapped or h5py datasets: `read_rows`), `pertdit evaluate` straight from a PRED.h5ad.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from pertdit.metrics.accumulate import MeasureAccumulator, per_sample_values
from pertdit.metrics.measures import GROUPINGS, METRICS, _summary

REPLICATE_KEYS: tuple[str, ...] = ("cell_id", "smiles", "dose", "time")
CEILING_COLUMNS: tuple[str, ...] = ("ceiling_mean", "ceiling_median", "ceiling_n_groups", "ceiling_n_nan",
                                    "model_same_rows_mean", "ceiling_profiles", "unreplicated_profiles")
#: profiles read and scored at once (a block holds whole replicate groups, so it may be a little larger)
BLOCK_ROWS = 8192
#: reads the (truth, pred, control) profiles (B, G) of B row positions
RowReader = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def replicate_group_keys(obs: pd.DataFrame) -> pd.Series:
    """(N,) text key `cell|SMILES|dose|time` of each row's replicate group.

    The compound is `smiles` when present (else `drug`); `time` is left out when obs has none.
    """
    compound = "smiles" if "smiles" in obs else "drug"
    parts = [obs["cell_id"].astype(str), obs[compound].astype(str),
             obs["dose"].astype(float).map(lambda d: f"{d:.6g}")]
    if "time" in obs:
        parts.append(obs["time"].astype(float).map(lambda t: f"{t:g}h"))
    key = parts[0]
    for part in parts[1:]:
        key = key + "|" + part
    return key.rename("replicate_group")


def replicate_predictions(truth: np.ndarray, control: np.ndarray, groups: Sequence
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Leave-one-out and split-half "predictions" of each well from its replicates' fold changes.

    truth, control: (N, G), control = each well's paired control; groups: (N,) replicate group ids. Returns
    `replicated` (N,) bool: rows whose group has >= 2 wells; `loo` (N, G): x_i + the mean of (y_j - x_j) over
    the other wells of the group (NaN rows where it has one well); `half_a` (N,) bool: the rows dealt to half
    A (positions 0, 2, 4, ... of a replicated group, in row order); `half_pred` (N, G): for half-A rows,
    x_i + the mean of (y_j - x_j) over the group's half-B wells (NaN elsewhere).
    """
    control = np.asarray(control, dtype=np.float64)
    shift = np.asarray(truth, dtype=np.float64) - control
    codes, _ = pd.factorize(np.asarray(groups), sort=False)
    n_groups = codes.max(initial=-1) + 1
    sizes = np.bincount(codes, minlength=n_groups)
    sums = np.zeros((n_groups, shift.shape[1]))
    np.add.at(sums, codes, shift)
    replicated = sizes[codes] >= 2
    loo = np.full(shift.shape, np.nan)
    others = (sums[codes[replicated]] - shift[replicated]) / (sizes[codes[replicated], None] - 1)
    loo[replicated] = control[replicated] + others
    position = pd.Series(codes).groupby(codes).cumcount().to_numpy()
    half_a = replicated & (position % 2 == 0)
    half_b = replicated & (position % 2 == 1)
    b_sums = np.zeros((n_groups, shift.shape[1]))
    np.add.at(b_sums, codes[half_b], shift[half_b])
    b_counts = np.bincount(codes[half_b], minlength=n_groups)
    half_pred = np.full(shift.shape, np.nan)
    half_pred[half_a] = control[half_a] + b_sums[codes[half_a]] / b_counts[codes[half_a], None]
    return replicated, loo, half_a, half_pred


def replicate_blocks(groups: Sequence, block_rows: int = BLOCK_ROWS) -> tuple[list[np.ndarray], int]:
    """Row positions of the replicated groups (2+ rows), in blocks of whole groups of about `block_rows`
    rows (a group's rows in dataset order, groups in order of first appearance), and the number of rows
    without a replicate (never read)."""
    codes, _ = pd.factorize(np.asarray(groups), sort=False)
    sizes = np.bincount(codes, minlength=codes.max(initial=-1) + 1)
    replicated = np.flatnonzero(sizes[codes] >= 2)
    order = replicated[np.argsort(codes[replicated], kind="stable")]
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0]) if len(order) else np.zeros(0, np.int64)
    bounds = [0]
    while bounds[-1] < len(order):
        following = np.searchsorted(starts, bounds[-1] + max(1, block_rows), side="left")
        bounds.append(int(starts[following]) if following < len(starts) else len(order))
    blocks = [order[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    return blocks, int(len(codes) - len(replicated))


class ReplicateCeiling:
    """Running statistics of the replicate ceiling and of the model on the same rows; `add` blocks of WHOLE
    replicate groups (`replicate_blocks`), `table` gives one row per (metric, grouping) with `CEILING_COLUMNS`.

    Per sample: the leave-one-out R2 and PCC of every replicated row (ceiling) and the model's on them.
    Grouped: the split-half A rows with B's fold change (ceiling) and the model's predictions of the same A
    rows, each through a `MeasureAccumulator` (float64 sums per (cell, drug, dose) group, never the profiles).
    """

    def __init__(self, relu: bool = False) -> None:
        self.relu = relu
        self.per_sample: dict[str, list[np.ndarray]] = {"ceiling_r2": [], "ceiling_pcc": [], "model_r2": [],
                                                        "model_pcc": []}
        self.halves = {"ceiling": MeasureAccumulator(relu=False), "model": MeasureAccumulator(relu=relu)}
        self.profiles = {"per_sample": 0, "grouped": 0}
        self.unreplicated = 0

    def add(self, truth: np.ndarray, pred: np.ndarray, control: np.ndarray, cell: Sequence, drug: Sequence,
            dose: Sequence[float], groups: Sequence) -> None:
        """A block of whole replicate groups: profiles (B, G), ids (B,); rows of a group in dataset order."""
        truth, pred, control = (np.asarray(a, dtype=np.float64) for a in (truth, pred, control))
        cell, drug, dose = np.asarray(cell), np.asarray(drug), np.asarray(dose, dtype=np.float64)
        replicated, loo, half_a, half_pred = replicate_predictions(truth, control, groups)
        self.unreplicated += int((~replicated).sum())
        model = np.maximum(pred, 0) if self.relu else pred
        for name, prediction in (("ceiling", loo), ("model", model)):
            r2, pcc = per_sample_values(truth[replicated], prediction[replicated], control[replicated])
            self.per_sample[f"{name}_r2"].append(r2)
            self.per_sample[f"{name}_pcc"].append(pcc)
        ids = (cell[half_a], drug[half_a], dose[half_a])
        self.halves["ceiling"].add(truth[half_a], half_pred[half_a], control[half_a], *ids)
        self.halves["model"].add(truth[half_a], pred[half_a], control[half_a], *ids)
        self.profiles["per_sample"] += int(replicated.sum())
        self.profiles["grouped"] += int(half_a.sum())

    def _tables(self, control_reference: str) -> dict[str, tuple[pd.DataFrame, pd.DataFrame] | None]:
        """(ceiling, model) measure tables indexed by (metric, grouping), per part; None for an empty part."""
        found: dict[str, tuple[pd.DataFrame, pd.DataFrame] | None] = {"per_sample": None, "grouped": None}
        if self.profiles["per_sample"]:
            values = {k: np.concatenate(v) for k, v in self.per_sample.items()}
            found["per_sample"] = tuple(
                pd.DataFrame([_summary("r2", "per_sample", values[f"{name}_r2"]),
                              _summary("pcc_lnfc", "per_sample", values[f"{name}_pcc"])]
                             ).set_index(["metric", "grouping"]) for name in ("ceiling", "model"))
        if self.profiles["grouped"]:
            found["grouped"] = tuple(self.halves[name].table(control_reference).set_index(["metric", "grouping"])
                                     for name in ("ceiling", "model"))
        return found

    def table(self, control_reference: str = "paired") -> pd.DataFrame:
        """metric, grouping and `CEILING_COLUMNS`; every statistic NaN (and the counts saying why) when no group
        had two wells."""
        found = self._tables(control_reference)
        out = []
        for metric in METRICS:
            for grouping in GROUPINGS:
                part = "per_sample" if grouping == "per_sample" else "grouped"
                row = {"metric": metric, "grouping": grouping, "unreplicated_profiles": self.unreplicated}
                if found[part] is None:
                    row.update(ceiling_mean=np.nan, ceiling_median=np.nan, ceiling_n_groups=0, ceiling_n_nan=0,
                               model_same_rows_mean=np.nan, ceiling_profiles=0)
                else:
                    ceiling, model = found[part]
                    c = ceiling.loc[(metric, grouping)]
                    row.update(ceiling_mean=float(c["mean"]), ceiling_median=float(c["median"]),
                               ceiling_n_groups=int(c["n_groups"]), ceiling_n_nan=int(c["n_nan"]),
                               model_same_rows_mean=float(model.loc[(metric, grouping), "mean"]),
                               ceiling_profiles=self.profiles[part])
                out.append(row)
        return pd.DataFrame(out, columns=["metric", "grouping", *CEILING_COLUMNS])


def streamed_ceiling(read: RowReader, cell: Sequence, drug: Sequence, dose: Sequence[float], groups: Sequence,
                     relu: bool = False, control_reference: str = "paired",
                     block_rows: int = BLOCK_ROWS) -> pd.DataFrame:
    """The replicate ceiling table, reading the profiles of one block of whole replicate groups at a time
    through `read(rows) -> (truth, pred, control)`; rows without a replicate are never read."""
    cell, drug, dose, groups = (np.asarray(a) for a in (cell, drug, dose, groups))
    blocks, unreplicated = replicate_blocks(groups, block_rows)
    ceiling = ReplicateCeiling(relu=relu)
    ceiling.unreplicated = unreplicated
    for rows in blocks:
        truth, pred, control = read(rows)
        ceiling.add(truth, pred, control, cell[rows], drug[rows], dose[rows], groups[rows])
    return ceiling.table(control_reference)


def read_rows(*arrays) -> RowReader:
    """A `RowReader` over (truth, pred, control) arrays: numpy (also memory-mapped) or h5py datasets (read in
    increasing row order, as h5py needs, then put back in the order asked)."""

    def read(rows: np.ndarray) -> tuple[np.ndarray, ...]:
        order = np.argsort(rows, kind="stable")
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        return tuple(np.asarray(a[rows[order]])[back] for a in arrays)

    return read


def replicate_ceiling(truth: np.ndarray, pred: np.ndarray, control: np.ndarray, cell: Sequence,
                      drug: Sequence, dose: Sequence[float], groups: Sequence, relu: bool = False,
                      control_reference: str = "paired", block_rows: int = BLOCK_ROWS) -> pd.DataFrame:
    """The replicate ceiling and the model on the same rows, one row per (metric, grouping).

    truth, pred, control: (N, G) as for `compute_measures` (numpy, memory-mapped or h5py datasets; read one
    block of `block_rows` at a time); groups: (N,) replicate group ids. Columns: metric, grouping and
    `CEILING_COLUMNS`. With no replicated group every statistic is NaN and the counts say why.
    """
    return streamed_ceiling(read_rows(truth, pred, control), cell, drug, dose, groups, relu=relu,
                            control_reference=control_reference, block_rows=block_rows)


def with_replicate_ceiling(table: pd.DataFrame, ceiling: pd.DataFrame) -> pd.DataFrame:
    """`table` (the measures) with the ceiling columns appended, matched on (metric, grouping)."""
    base = table.drop(columns=[c for c in CEILING_COLUMNS if c in table.columns])
    merged = base.merge(ceiling, on=["metric", "grouping"], how="left", validate="one_to_one")
    return merged[[*base.columns, *CEILING_COLUMNS]]
