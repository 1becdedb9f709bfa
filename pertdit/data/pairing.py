"""Pair every perturbed profile with one vehicle control of the same cell line (same plate preferred)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pertdit.errors import DataError


def pair_controls(obs: pd.DataFrame, seed: int = 0) -> np.ndarray:
    """Row position of a paired control for every row of `obs` (needs `cell_id`, `plate`, `is_control`).

    A perturbed row draws one control uniformly (seeded) from the controls of its cell line on its plate, or
    from all controls of its cell line when its plate has none; a control row points to itself.
    """
    rng = np.random.default_rng(seed)
    is_control = obs["is_control"].to_numpy(bool)
    cells = obs["cell_id"].astype(str).to_numpy()
    plates = obs["plate"].astype(str).to_numpy()
    paired = np.arange(len(obs), dtype=np.int64)
    controls = np.flatnonzero(is_control)
    by_cell_plate = pd.Series(controls).groupby([cells[controls], plates[controls]]).apply(np.asarray).to_dict()
    by_cell = pd.Series(controls).groupby(cells[controls]).apply(np.asarray).to_dict()
    missing: list[str] = []
    for key, rows in pd.Series(np.flatnonzero(~is_control)).groupby(
            [cells[~is_control], plates[~is_control]]).apply(np.asarray).items():
        pool = by_cell_plate.get(key)
        if pool is None:
            pool = by_cell.get(key[0])
        if pool is None:
            missing.append(key[0])
            continue
        paired[rows] = rng.choice(pool, size=len(rows), replace=True)
    if missing:
        raise DataError(f"no vehicle control for cell line(s) {sorted(set(missing))}; every perturbed profile "
                        "needs a control of its cell line (drop those cell lines or add their controls)")
    return paired
