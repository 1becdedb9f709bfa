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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pertdit.metrics.measures import GROUPINGS, METRICS, compute_measures

REPLICATE_KEYS: tuple[str, ...] = ("cell_id", "smiles", "dose", "time")
CEILING_COLUMNS: tuple[str, ...] = ("ceiling_mean", "ceiling_median", "ceiling_n_groups", "ceiling_n_nan",
                                    "model_same_rows_mean", "ceiling_profiles", "unreplicated_profiles")


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


def replicate_ceiling(truth: np.ndarray, pred: np.ndarray, control: np.ndarray, cell: Sequence,
                      drug: Sequence, dose: Sequence[float], groups: Sequence, relu: bool = False,
                      control_reference: str = "paired") -> pd.DataFrame:
    """The replicate ceiling and the model on the same rows, one row per (metric, grouping).

    truth, pred, control: (N, G) as for `compute_measures`; groups: (N,) replicate group ids. Columns: metric,
    grouping and `CEILING_COLUMNS`. With no replicated group every statistic is NaN and the counts say why.
    """
    truth, pred, control = (np.asarray(a) for a in (truth, pred, control))
    cell, drug, dose = (np.asarray(a) for a in (cell, drug, dose))
    replicated, loo, half_a, half_pred = replicate_predictions(truth, control, groups)
    unreplicated = int((~replicated).sum())
    rows = {"per_sample": (replicated, loo), "grouped": (half_a, half_pred)}
    tables = {}
    for part, (mask, ceiling_pred) in rows.items():
        if not mask.any():
            tables[part] = None
            continue
        args = (cell[mask], drug[mask], dose[mask].astype(np.float64))
        ceiling = compute_measures(truth[mask], ceiling_pred[mask], control[mask], *args,
                                   control_reference=control_reference)
        model = compute_measures(truth[mask], pred[mask], control[mask], *args, relu=relu,
                                 control_reference=control_reference)
        tables[part] = (ceiling.set_index(["metric", "grouping"]), model.set_index(["metric", "grouping"]),
                        int(mask.sum()))
    out = []
    for metric in METRICS:
        for grouping in GROUPINGS:
            found = tables["per_sample" if grouping == "per_sample" else "grouped"]
            row = {"metric": metric, "grouping": grouping, "unreplicated_profiles": unreplicated}
            if found is None:
                row.update(ceiling_mean=np.nan, ceiling_median=np.nan, ceiling_n_groups=0, ceiling_n_nan=0,
                           model_same_rows_mean=np.nan, ceiling_profiles=0)
            else:
                ceiling, model, n_rows = found
                c = ceiling.loc[(metric, grouping)]
                row.update(ceiling_mean=float(c["mean"]), ceiling_median=float(c["median"]),
                           ceiling_n_groups=int(c["n_groups"]), ceiling_n_nan=int(c["n_nan"]),
                           model_same_rows_mean=float(model.loc[(metric, grouping), "mean"]),
                           ceiling_profiles=n_rows)
            out.append(row)
    return pd.DataFrame(out, columns=["metric", "grouping", *CEILING_COLUMNS])


def with_replicate_ceiling(table: pd.DataFrame, ceiling: pd.DataFrame) -> pd.DataFrame:
    """`table` (the measures) with the ceiling columns appended, matched on (metric, grouping)."""
    base = table.drop(columns=[c for c in CEILING_COLUMNS if c in table.columns])
    merged = base.merge(ceiling, on=["metric", "grouping"], how="left", validate="one_to_one")
    return merged[[*base.columns, *CEILING_COLUMNS]]
