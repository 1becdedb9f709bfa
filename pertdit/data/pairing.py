"""Pair every perturbed profile with one vehicle control of its cell line, recording how (`obs["pairing"]`).

Levels, tried in the configured order until one has a control (each draw is seeded and uniform):

| level | controls drawn from |
|---|---|
| `plate` | same cell line, source, plate and time (skipped for rows without a plate) |
| `source` | same cell line, source and time (any plate) |
| `cell` | same cell line (any source, plate or time) |

A file that brings its own pairing (`obs["source_control"]`, a profile id) keeps it for the sources named
in `keep_own` (`True`: every source): label `own`. A pointer to a profile that was filtered out or is not a
control falls back to the levels. Control rows point to themselves (label `self`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pertdit.errors import DataError

LEVELS = ("plate", "source", "cell")
LEVEL_KEYS = {"plate": ("cell", "source", "plate", "time"), "source": ("cell", "source", "time"), "cell": ("cell",)}


@dataclass
class PairingConfig:
    """Options of control pairing (Hydra node `data.preprocess.pairing`)."""

    levels: Sequence[str] = ("plate", "source", "cell")
    keep_own: bool | Sequence[str] = True

    def __post_init__(self) -> None:
        unknown = [level for level in self.levels if level not in LEVELS]
        if unknown or not self.levels:
            raise DataError(f"pairing.levels {list(self.levels)}: choose a non-empty ordered subset of {LEVELS}")


@dataclass
class Pairing:
    """Row position of each row's control, how it was chosen, and own pointers that could not be kept."""

    control_index: np.ndarray
    labels: np.ndarray
    own_replaced: list[str] = field(default_factory=list)


def _keys(obs: pd.DataFrame) -> dict[str, np.ndarray]:
    time = obs["time"].to_numpy(dtype=float) if "time" in obs else np.full(len(obs), np.nan)
    return {"cell": obs["cell_id"].astype(str).to_numpy(),
            "source": obs["source"].astype(str).to_numpy() if "source" in obs else np.full(len(obs), ""),
            "plate": obs["plate"].astype(str).to_numpy() if "plate" in obs else np.full(len(obs), ""),
            "time": np.array(["" if np.isnan(t) else f"{t:g}" for t in time], dtype=object)}


def _own_positions(obs: pd.DataFrame, is_control: np.ndarray, keep_own: bool | Sequence[str],
                   sources: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Position of each row's own control (-1 when none is kept) and rows whose pointer was lost."""
    own = np.full(len(obs), -1, dtype=np.int64)
    if "source_control" not in obs or keep_own is False:
        return own, []
    pointer = obs["source_control"].astype(str).to_numpy()
    wanted = (pointer != "") & ~is_control
    if keep_own is not True:
        wanted &= np.isin(sources, list(keep_own))
    positions = pd.Index(obs.index.astype(str)).get_indexer(pointer)
    valid = wanted & (positions >= 0)
    valid[valid] &= is_control[positions[valid]]
    own[valid] = positions[valid]
    lost = obs.index[wanted & ~valid]
    return own, [f"{row} -> {target}" for row, target in zip(lost, pointer[wanted & ~valid])]


def _groups(rows: np.ndarray, columns: list[np.ndarray]) -> dict[tuple, np.ndarray]:
    """`rows` grouped by their values in `columns`: sorted key tuple -> ascending row positions."""
    if len(rows) == 0:
        return {}
    frame = pd.DataFrame({i: np.asarray(column)[rows] for i, column in enumerate(columns)})
    groups = frame.groupby(list(frame.columns), sort=True).indices
    items = ((key if isinstance(key, tuple) else (key,), rows[np.sort(index)]) for key, index in groups.items())
    return dict(sorted(items, key=lambda item: item[0]))


def assign_controls(obs: pd.DataFrame, seed: int = 0, config: PairingConfig | None = None) -> Pairing:
    """Pair the rows of `obs` (needs `cell_id`, `is_control`; uses `source`, `plate`, `time`, `source_control`)."""
    cfg = config or PairingConfig()
    rng = np.random.default_rng(seed)
    is_control = obs["is_control"].to_numpy(bool)
    keys = _keys(obs)
    paired = np.arange(len(obs), dtype=np.int64)
    labels = np.where(is_control, "self", "").astype(object)
    own, lost = _own_positions(obs, is_control, cfg.keep_own, keys["source"])
    has_own = own >= 0
    paired[has_own], labels[has_own] = own[has_own], "own"

    controls = np.flatnonzero(is_control)
    pools = {level: _groups(controls, [keys[k] for k in LEVEL_KEYS[level]]) for level in cfg.levels}
    todo = np.flatnonzero(~is_control & ~has_own)
    missing: set[str] = set()
    full_key = LEVEL_KEYS["plate"]
    for key, rows in _groups(todo, [keys[k] for k in full_key]).items():
        values = dict(zip(full_key, key))
        for level in cfg.levels:
            if level == "plate" and values["plate"] == "":
                continue
            pool = pools[level].get(tuple(values[k] for k in LEVEL_KEYS[level]))
            if pool is not None:
                paired[rows] = rng.choice(pool, size=len(rows), replace=True)
                labels[rows] = level
                break
        else:
            missing.add(values["cell"])
    if missing:
        raise DataError(f"no vehicle control for cell line(s) {sorted(missing)} at pairing levels "
                        f"{list(cfg.levels)}; every perturbed profile needs a control of its cell line (add "
                        "'cell' to data.preprocess.pairing.levels, opt in other control kinds, or drop them)")
    return Pairing(control_index=paired, labels=labels, own_replaced=lost)


def pair_controls(obs: pd.DataFrame, seed: int = 0, config: PairingConfig | None = None) -> np.ndarray:
    """Row position of a paired control for every row of `obs` (a control row points to itself)."""
    return assign_controls(obs, seed, config).control_index
