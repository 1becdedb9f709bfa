"""One obs schema for every L1000 file kind: the harmonised profile metadata that preprocessing reads.

| column | meaning |
|---|---|
| `cell_id`, `pert_id` | text |
| `pert_iname` | compound name (`""` when the only name is the id); controls: `DMSO`, `H2O`, `UnTrt`, ... |
| `pert_type` | lower case: `trt_cp`, `trt_poscon`, `ctl_vehicle`, `ctl_untrt`, ... |
| `control_kind` | `DMSO`, `H2O`, `untreated` (or the vehicle's own name) for controls, `""` for treated profiles |
| `dose` | µM, float; `0.0` for controls; NaN when a treated profile has none |
| `time` | hours, float; NaN when unknown |
| `plate`, `well` | text (`""` when unknown) |
| `source` | the short name of the file the profile came from |
| `source_control` | the profile id of the control that the file itself pairs this profile with, or `""` |

A `FileKind` names, for one metadata layout, the columns each field is read from (the first non-empty one
wins, row by row). `detect_kind` picks the layout of a file that was read with the project's readers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pertdit.errors import DataError

log = logging.getLogger(__name__)
SCHEMA = ("cell_id", "pert_id", "pert_iname", "pert_type", "control_kind", "dose", "time", "plate", "well",
          "source", "source_control")
#: CMap's "not applicable" placeholder in metadata fields.
MISSING = ("-666", "-666.0", "nan", "NaN", "None", "")
CONTROL_PREFIX = "ctl_"
UNTREATED_TYPES = ("ctl_untrt",)
#: Vehicle names as written by the files -> control kind.
VEHICLE_NAMES = {"DMSO": "DMSO", "H2O": "H2O", "WATER": "H2O", "UNTRT": "untreated", "CMAP-000": "untreated"}
DOSE_UNITS_TO_UM = {"um": 1.0, "µm": 1.0, "micromolar": 1.0, "nm": 1e-3, "mm": 1e3}
TIME_UNITS_TO_H = {"h": 1.0, "hr": 1.0, "hrs": 1.0, "hour": 1.0, "hours": 1.0, "m": 1 / 60, "min": 1 / 60}


@dataclass(frozen=True)
class FileKind:
    """Where one metadata layout keeps each field (candidate columns, first non-empty wins per row)."""

    name: str
    pert_iname: tuple[str, ...]
    dose: tuple[str, ...]
    dose_unit: tuple[str, ...]
    time: tuple[str, ...]
    time_unit: tuple[str, ...]
    plate: tuple[str, ...] = ("plate", "det_plate", "rna_plate")
    well: tuple[str, ...] = ("well", "det_well", "rna_well")
    own_control: str | None = None
    description: str = ""

    def used_columns(self) -> set[str]:
        """Every source column this layout reads."""
        names = {"cell_id", "pert_id", "pert_type", *self.pert_iname, *self.dose, *self.dose_unit, *self.time,
                 *self.time_unit, *self.plate, *self.well}
        return names | ({self.own_control} if self.own_control else set())


KINDS: dict[str, FileKind] = {
    kind.name: kind for kind in (
        FileKind("cmap_gct", ("pert_iname",), ("pert_dose",), ("pert_dose_unit",), ("pert_time",),
                 ("pert_time_unit",), description="CMap GCT/GCTX (pert_iname, pert_dose, pert_time)"),
        FileKind("cmap_gct_old", ("pert_iname", "pert_desc"), ("exp_pert_dose",), ("exp_pert_dose_unit",),
                 ("exp_pert_time",), ("exp_pert_time_unit",),
                 description="older CMap GCT (upper-case pert_type, pert_desc, exp_pert_dose, exp_pert_time)"),
        FileKind("prnet_h5ad", ("pert_iname", "condition"), ("dose", "pert_dose"), ("pert_dose_unit",),
                 ("pert_time",), ("pert_time_unit",), own_control="paired_control_index",
                 description="PRnet/ChemCPA .h5ad (dose, control, paired_control_index by obs name)"),
        FileKind("harmonised", ("pert_iname",), ("dose",), (), ("time",), (), own_control="source_control",
                 description="already in this schema (the bundle)"),
    )
}


def detect_kind(obs: pd.DataFrame) -> FileKind:
    """The layout of `obs`: harmonised when every schema column is there, else by the dose column."""
    if all(column in obs.columns for column in SCHEMA):
        return KINDS["harmonised"]
    if "exp_pert_dose" in obs.columns and "pert_dose" not in obs.columns:
        return KINDS["cmap_gct_old"]
    if "pert_dose" in obs.columns and "dose" not in obs.columns:
        return KINDS["cmap_gct"]
    return KINDS["prnet_h5ad"]


def first_filled(obs: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Text of the first column (of `columns` present in `obs`) that is not empty or -666, row by row."""
    out = np.full(len(obs), "", dtype=object)
    for column in columns:
        if column not in obs.columns:
            continue
        values = _text(obs[column])
        fill = (out == "") & ~np.isin(values, MISSING)
        out[fill] = values[fill]
    return out


def _text(column: pd.Series) -> np.ndarray:
    """Values as text: missing -> `""`, whole floats without a decimal point (24.0 -> "24")."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = _text(pd.Series(column.cat.categories.to_numpy(dtype=object)))
        codes = column.cat.codes.to_numpy()
        return np.where(codes < 0, "", categories[codes.clip(min=0)]).astype(object)
    if column.dtype == object and pd.api.types.infer_dtype(column, skipna=False) == "string":
        return column.to_numpy(dtype=object)  # the readers' convention: text, "" for missing
    values = column.astype(object).to_numpy()
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            out[i] = ""
        elif isinstance(value, (float, np.floating)) and float(value).is_integer():
            out[i] = str(int(value))
        elif isinstance(value, bytes):
            out[i] = value.decode("utf-8")
        else:
            out[i] = str(value)
    return out


def numbers(obs: pd.DataFrame, columns: Sequence[str], units: Sequence[str], factors: dict[str, float],
            what: str, where: str) -> np.ndarray:
    """Float values of the first filled column of `columns`, converted by the unit column.

    NaN where a row has no value, a value that is not a number, or a unit not in `factors` (each logged by
    name; a treated profile without a dose is then dropped and reported by preprocessing).
    """
    text = first_filled(obs, columns)
    values = pd.to_numeric(pd.Series(np.where(text == "", np.nan, text), dtype=object), errors="coerce")
    bad = text[(text != "") & values.isna().to_numpy()]
    if len(bad):
        log.warning("%s: %d profile(s) have a %s (%s) that is not a number, e.g. %s: read as missing", where,
                    len(bad), what, "/".join(columns), sorted(set(bad))[:5])
    values = values.to_numpy(dtype=np.float64)
    unit = np.array([u.lower() for u in first_filled(obs, units)], dtype=object)
    known = np.isin(unit, [*factors, ""])
    if not known.all():
        log.warning("%s: %d profile(s) give their %s in unit(s) %s (%s), which are not %s: read as missing",
                    where, int((~known).sum()), what, sorted(set(unit[~known])), "/".join(units), sorted(factors))
    scale = np.array([factors.get(u, np.nan) if u else 1.0 for u in unit], dtype=np.float64)
    return values * scale


def control_kinds(pert_type: np.ndarray, pert_id: np.ndarray, pert_iname: np.ndarray) -> np.ndarray:
    """`DMSO`, `H2O`, `untreated` (or the vehicle's own name) for control rows, `""` for the others."""
    out = np.full(len(pert_type), "", dtype=object)
    for i, (kind, pid, name) in enumerate(zip(pert_type, pert_id, pert_iname)):
        if not str(kind).startswith(CONTROL_PREFIX):
            continue
        if kind in UNTREATED_TYPES:
            out[i] = "untreated"
            continue
        label = str(name) or str(pid)
        out[i] = VEHICLE_NAMES.get(label.upper(), VEHICLE_NAMES.get(str(pid).upper(), label))
    return out


def harmonise_obs(obs: pd.DataFrame, source: str, kind: FileKind | None = None,
                  where: str | None = None) -> pd.DataFrame:
    """`obs` of a file read by the project's readers -> a frame with the `SCHEMA` columns (same index).

    Controls are recognised by `pert_type` (never by dose) and get dose 0; `source` names the file.
    """
    where = where or source
    kind = kind or detect_kind(obs)
    missing = [c for c in ("cell_id", "pert_id", "pert_type") if c not in obs.columns]
    if not any(c in obs.columns for c in kind.dose):
        missing.append("/".join(kind.dose))
    if missing:
        raise DataError(f"{where}: profile metadata lacks {missing}; it has {list(obs.columns)[:20]}")
    out = pd.DataFrame(index=pd.Index(obs.index.astype(str), dtype=object))
    for column in ("cell_id", "pert_id"):
        out[column] = _text(obs[column])
    out["pert_type"] = np.char.lower(_text(obs["pert_type"]).astype(str)).astype(object)
    out["pert_iname"] = first_filled(obs, kind.pert_iname)
    is_control = out["pert_type"].str.startswith(CONTROL_PREFIX).to_numpy()
    if kind.name == "harmonised":
        out["control_kind"] = _text(obs["control_kind"])
    else:
        out["control_kind"] = control_kinds(out["pert_type"].to_numpy(), out["pert_id"].to_numpy(),
                                            out["pert_iname"].to_numpy())
    dose = numbers(obs, kind.dose, kind.dose_unit, DOSE_UNITS_TO_UM, "dose", where)
    out["dose"] = np.where(is_control, 0.0, dose)
    out["time"] = numbers(obs, kind.time, kind.time_unit, TIME_UNITS_TO_H, "time", where)
    out["plate"] = first_filled(obs, kind.plate)
    out["well"] = first_filled(obs, kind.well)
    out["source"] = _text(obs["source"]) if "source" in obs.columns else source
    out["source_control"] = own_controls(obs, kind, where)
    return out


def own_controls(obs: pd.DataFrame, kind: FileKind, where: str) -> np.ndarray:
    """Profile id of the file's own paired control per row (`""` when the file has no pairing).

    The pairing column holds profile ids, or row positions (integers) into the file.
    """
    column = kind.own_control
    if column is None or column not in obs.columns:
        return np.full(len(obs), "", dtype=object)
    values = obs[column]
    if pd.api.types.is_integer_dtype(values) or pd.api.types.is_float_dtype(values):
        positions = pd.to_numeric(values, errors="coerce").to_numpy()
        valid = np.isfinite(positions) & (positions >= 0) & (positions < len(obs))
        if not valid.all():
            raise DataError(f"{where}: obs['{column}'] holds row positions outside 0..{len(obs) - 1}, e.g. "
                            f"{list(values[~valid][:5])}; it must give each profile's control row")
        return np.asarray(obs.index.astype(str), dtype=object)[positions.astype(np.int64)]
    ids = _text(values)
    unknown = ids[(ids != "") & ~pd.Index(ids).isin(obs.index.astype(str))]
    if len(unknown):
        raise DataError(f"{where}: obs['{column}'] names {len(unknown)} profile(s) that are not in the file, "
                        f"e.g. {list(unknown[:5])}; it must hold the obs names (or row positions) of controls")
    return ids
