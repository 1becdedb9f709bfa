"""Metadata conventions shared by every reader: numbers, text, column order, ids, obs/var frames.

One rule for all readers, so a GCT, a GCTX and a GEO release of the same plate agree column by column:

- a metadata field whose non-empty values all parse as numbers becomes float64 (CMap's -666 "missing"
  sentinel is kept as -666.0: preprocessing decides what it means); every other field is text (`str`,
  missing as `""`). Identifier and name fields (`TEXT_FIELDS`) always stay text.
- columns are sorted by name (an HDF5 group has no field order, so neither may the GCT).
- `obs` is indexed by the profile id (`cid`); `var` keeps the row id in `var["rid"]`, the Entrez id in
  `var["entrez_id"]` (from `pr_gene_id`, int64 when every value is a whole number) and is indexed by
  `pr_gene_symbol` when present and unique, else by the row id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from pertdit.errors import DataError

#: Fields that stay text even when every value looks like a number (ids, names, wells, structures).
TEXT_FIELDS = frozenset(
    {
        "rid", "cid", "inst_id", "pert_id", "pert_iname", "pert_type", "cell_id", "det_plate", "det_well",
        "rna_plate", "rna_well", "pr_gene_symbol", "canonical_smiles", "smiles", "inchi_key",
        "inchi_key_prefix",
    }
)

#: Row-metadata field of a GCT/GCTX file -> `var` column (`write_gctx` maps it back).
ROW_FIELD_TO_VAR = {"pr_gene_id": "entrez_id"}

#: Row-metadata field whose values become `var_names` when present and unique.
GENE_SYMBOL_FIELD = "pr_gene_symbol"


def require_file(path: str | Path, what: str) -> Path:
    """`path` as a Path; DataError naming the file when it does not exist."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path} (check the path, or set PERTDIT_DATA to the data folder)")
    return path


def check_unique(ids: Sequence[Any] | np.ndarray | pd.Index, what: str, where: str) -> None:
    """DataError naming a few duplicated ids when `ids` repeats a value."""
    index = pd.Index(ids)
    if index.has_duplicates:
        repeated = index[index.duplicated()].unique()
        raise DataError(
            f"{where}: {len(repeated)} duplicated {what} id(s), e.g. {list(repeated[:5])}; "
            f"every {what} needs a unique id (remove or rename the duplicates)"
        )


def as_text(values: Any) -> np.ndarray:
    """Values as an object array of `str`: bytes decoded as UTF-8, missing values as `""`."""
    array = np.asarray(values)
    if array.dtype.kind == "S":
        return np.char.decode(array, "utf-8").astype(object)
    if array.dtype.kind == "U":
        return array.astype(object)
    if array.dtype.kind in "biuf":
        return np.array([_number_text(v) for v in array.tolist()], dtype=object)
    if array.ndim == 1 and pd.api.types.infer_dtype(array, skipna=False) == "string":
        return array  # already str only (the common case; fast for a million rows)
    return np.array([_text(v) for v in array.ravel().tolist()], dtype=object).reshape(array.shape)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    return value if isinstance(value, str) else str(value)


def _number_text(value: float | int | bool) -> str:
    if isinstance(value, float):
        if np.isnan(value):
            return ""
        return str(int(value)) if value.is_integer() else repr(value)
    return str(int(value))


def coerce_field(name: str, values: Any) -> np.ndarray:
    """One metadata field: float64 when every non-empty value is a number, else `str` (see module doc)."""
    array = np.asarray(values)
    if name in TEXT_FIELDS:
        return as_text(array)
    if array.dtype.kind in "biuf":
        return array.astype(np.float64)
    text = as_text(array)
    filled = text != ""
    if not filled.any():
        return text
    try:
        numbers = pd.to_numeric(pd.Series(text, dtype=object).where(filled), errors="raise")
    except (ValueError, TypeError):
        return text
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan)


def metadata_frame(ids: Sequence[str] | np.ndarray, fields: Mapping[str, Any], where: str) -> pd.DataFrame:
    """A DataFrame indexed by `ids` with every field coerced (`coerce_field`) and columns sorted by name."""
    index = pd.Index(as_text(np.asarray(ids, dtype=object)), dtype=object)
    columns = {}
    for name in sorted(fields):
        column = coerce_field(name, fields[name])
        if len(column) != len(index):
            raise DataError(
                f"{where}: metadata field '{name}' has {len(column)} values for {len(index)} ids; "
                "every metadata field needs one value per id (the file is inconsistent)"
            )
        columns[name] = column
    return pd.DataFrame(columns, index=index)


def make_obs(cids: Sequence[str] | np.ndarray, fields: Mapping[str, Any], where: str) -> pd.DataFrame:
    """`obs` from profile ids and column-metadata fields (the `id` field, if given, is dropped)."""
    check_unique(cids, "profile", where)
    return metadata_frame(cids, {k: v for k, v in fields.items() if k != "id"}, where)


def make_var(rids: Sequence[str] | np.ndarray, fields: Mapping[str, Any], where: str) -> pd.DataFrame:
    """`var` from row ids and row-metadata fields: `rid`, `entrez_id`, gene symbols as `var_names`."""
    check_unique(rids, "gene (row)", where)
    renamed: dict[str, Any] = {}
    for name, values in fields.items():
        if name in ("id", "rid"):
            continue
        target = ROW_FIELD_TO_VAR.get(name, name)
        renamed[target if target not in fields else name] = values
    renamed["rid"] = rids
    var = metadata_frame(rids, renamed, where)
    if "entrez_id" in var:
        var["entrez_id"] = _whole_numbers_as_int(var["entrez_id"])
    symbols = var.get(GENE_SYMBOL_FIELD)
    if symbols is not None and symbols.dtype == object and (symbols != "").all() and symbols.is_unique:
        var.index = pd.Index(symbols.to_numpy(), dtype=object)
    return var


def _whole_numbers_as_int(column: pd.Series) -> pd.Series:
    """int64 when every value is a finite whole number, else unchanged."""
    if column.dtype.kind != "f":
        return column
    values = column.to_numpy()
    if np.isfinite(values).all() and (values == np.round(values)).all():
        return column.astype(np.int64)
    return column


def build_anndata(x: np.ndarray, obs: pd.DataFrame, var: pd.DataFrame) -> AnnData:
    """AnnData with `X` float32 (profiles x genes); names are unset so the frames stay as built."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.shape != (len(obs), len(var)):
        raise DataError(f"matrix shape {x.shape} does not match {len(obs)} profiles x {len(var)} genes")
    obs.index.name = None
    var.index.name = None
    return AnnData(X=x, obs=obs, var=var)
