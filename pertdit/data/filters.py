"""Which profiles preprocessing keeps, and why each other one is dropped (one reason per profile).

Reasons, checked in this order (a profile gets the first that applies):

| reason | profiles |
|---|---|
| `time_filter` | time (h) not in `data.times` |
| `pert_type_not_used` | `pert_type` neither treated (`keep_pert_types`) nor control (`control_pert_types`), e.g. `trt_poscon` |
| `control_kind_not_used` | a control whose kind (DMSO, H2O, untreated) is not in `control_kinds` |
| `dose_not_positive` | a treated profile with dose 0 or none |
| `invalid_smiles` | a treated profile whose compound has no SMILES, or one RDKit cannot parse |
| `too_few_observations` | a treated profile whose compound has fewer profiles (over every source kept) than its source's `min_observations` |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

REASONS = ("time_filter", "pert_type_not_used", "control_kind_not_used", "dose_not_positive", "invalid_smiles",
           "too_few_observations")


@dataclass
class FilterResult:
    """`reason` per profile (`""` = kept), `is_control` per profile, and the names behind each reason."""

    reason: np.ndarray
    is_control: np.ndarray
    details: dict = field(default_factory=dict)

    @property
    def keep(self) -> np.ndarray:
        return self.reason == ""


def _named(pert_ids: pd.Series, names: pd.Series) -> list[str]:
    pairs = pd.DataFrame({"id": pert_ids.to_numpy(), "name": names.to_numpy()}).drop_duplicates()
    return sorted(f"{pid} ({name})" if name and name != pid else pid for pid, name in pairs.itertuples(index=False))


def filter_profiles(obs: pd.DataFrame, smiles: pd.Series, keep_pert_types: Sequence[str],
                    control_pert_types: Sequence[str], control_kinds: Sequence[str] | None,
                    times: Sequence[float] | None, min_observations: Mapping[str, int] | int) -> FilterResult:
    """Assign each profile of `obs` (the harmonised schema) its drop reason; `smiles` canonical or `""`.

    `min_observations`: one number, or source -> number (every source of `obs` present).
    """
    n = len(obs)
    reason = np.full(n, "", dtype=object)

    def drop(mask: np.ndarray, why: str) -> None:
        reason[(reason == "") & mask] = why

    pert_type = obs["pert_type"].astype(str).to_numpy()
    if times is not None:
        time = obs["time"].to_numpy(dtype=float)
        drop(~np.isclose(time[:, None], np.asarray(list(times), dtype=float)[None, :]).any(axis=1), "time_filter")
    is_treated = np.isin(pert_type, list(keep_pert_types))
    is_control = np.isin(pert_type, list(control_pert_types)) & ~is_treated
    drop(~(is_treated | is_control), "pert_type_not_used")
    if control_kinds is not None:
        drop(is_control & ~obs["control_kind"].astype(str).isin(list(control_kinds)).to_numpy(),
             "control_kind_not_used")
    dose = obs["dose"].to_numpy(dtype=float)
    drop(is_treated & ~(dose > 0), "dose_not_positive")
    drop(is_treated & (smiles.to_numpy() == ""), "invalid_smiles")

    counted = is_treated & (reason == "")
    counts = obs.loc[counted, "pert_id"].value_counts()
    total = obs["pert_id"].map(counts).fillna(0).to_numpy(dtype=int)
    sources = obs["source"].astype(str).to_numpy()
    if isinstance(min_observations, Mapping):
        threshold = np.array([min_observations[s] for s in sources], dtype=int)
    else:
        threshold = np.full(n, int(min_observations))
    rare = counted & (total < threshold)
    drop(rare, "too_few_observations")

    details = {
        "dropped_pert_types": {str(k): int(v) for k, v in
                               pd.Series(pert_type[reason == "pert_type_not_used"]).value_counts().items()},
        "dropped_control_kinds": {str(k): int(v) for k, v in pd.Series(
            obs["control_kind"].astype(str).to_numpy()[reason == "control_kind_not_used"]).value_counts().items()},
        "invalid_smiles": _named(obs.loc[reason == "invalid_smiles", "pert_id"],
                                 obs.loc[reason == "invalid_smiles", "pert_iname"]),
        "too_few_observations": {str(pid): int(counts.get(pid, 0)) for pid in
                                 sorted(set(obs.loc[rare, "pert_id"]))},
        "dose_not_positive": [f"{row} ({pid}, dose {d:g})" for row, pid, d in
                              zip(obs.index[reason == "dose_not_positive"],
                                  obs.loc[reason == "dose_not_positive", "pert_id"], dose[reason == "dose_not_positive"])],
    }
    return FilterResult(reason=reason, is_control=is_control, details=details)


def profile_accounting(sources: np.ndarray, result: FilterResult) -> dict[str, dict[str, int]]:
    """Per source and in total: profiles read, kept (treated / controls), and dropped for each reason.

    `read == kept + sum(dropped)` holds in every row (checked).
    """
    table: dict[str, dict[str, int]] = {}
    for name in [*pd.unique(sources), "total"]:
        rows = np.ones(len(sources), bool) if name == "total" else sources == name
        entry = {"read": int(rows.sum()), "kept": int((rows & result.keep).sum()),
                 "kept_treated": int((rows & result.keep & ~result.is_control).sum()),
                 "kept_controls": int((rows & result.keep & result.is_control).sum())}
        entry.update({why: int((rows & (result.reason == why)).sum()) for why in REASONS})
        if entry["read"] != entry["kept"] + sum(entry[why] for why in REASONS):
            raise AssertionError(f"profile accounting of {name} does not add up: {entry}")
        table[str(name)] = entry
    return table


def format_accounting(table: Mapping[str, Mapping[str, int]]) -> str:
    """A plain-text table: one row per source (and the total), one column per count."""
    columns = ["read", "kept", "kept_treated", "kept_controls", *REASONS]
    width = max(len(name) for name in table) + 2
    header = "source".ljust(width) + " ".join(c.rjust(max(len(c), 5)) for c in columns)
    lines = [header]
    for name, entry in table.items():
        lines.append(name.ljust(width) + " ".join(str(int(entry.get(c, 0))).rjust(max(len(c), 5)) for c in columns))
    return "\n".join(lines)
