"""The validation subset used during training: every k-th row of the whole validation set.

Validation samples diffusion models, which is expensive, so training validates on at most `max_rows` rows.
Taking the first batches (Lightning's `limit_val_batches`) would see the first cell lines and compounds of
the dataset only; a stride over the rows ordered by (cell line, compound SMILES, dose) spreads the subset
over all of them in proportion to their rows.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

SUBSET_ORDER: tuple[str, ...] = ("cell_id", "smiles", "dose")


def strided_rows(rows: np.ndarray, obs: pd.DataFrame, max_rows: int | None) -> np.ndarray:
    """At most `max_rows` of `rows` (dataset positions): every k-th, k = ceil(len(rows) / max_rows), after
    ordering them by (cell_id, smiles, dose, position). All rows when `max_rows` is None or not smaller."""
    rows = np.asarray(rows, dtype=np.int64)
    if max_rows is None or len(rows) <= max_rows:
        return rows
    if max_rows < 1:
        raise ValueError(f"data.val_max_rows must be a positive number of rows or null (all), got {max_rows}")
    keys = obs.iloc[rows][[c for c in SUBSET_ORDER if c in obs]].reset_index(drop=True).assign(_row=rows)
    ordered = keys.sort_values([*keys.columns], kind="stable")["_row"].to_numpy()
    stride = math.ceil(len(rows) / max_rows)
    return np.sort(ordered[::stride])
