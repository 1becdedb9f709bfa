"""Write an AnnData as a GCTX file (the layout `read_gctx` reads), atomically."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from pertdit.errors import DataError

from .gctx import COL_META, MATRIX, ROW_META
from .metadata import GENE_SYMBOL_FIELD, ROW_FIELD_TO_VAR, as_text

#: Rows per HDF5 chunk of the matrix (row subsets read whole chunks).
CHUNK_ROWS = 256


def write_gctx(adata: AnnData, path: str | Path, compression: str | None = None) -> Path:
    """Write `adata` to `path` as GCTX and return the path.

    `X` -> `/0/DATA/0/matrix` (float32, profiles x genes); `obs_names` + `obs` columns ->
    `/0/META/COL` (`id` + one field each); `var["rid"]` (else `var_names`) + `var` columns ->
    `/0/META/ROW`, with `entrez_id` written as CMap's `pr_gene_id` and `var_names` as
    `pr_gene_symbol` when they differ from the row ids and no such column exists. Text is UTF-8,
    numbers keep their type (bool as 0/1); `read_gctx` gives back what `read_gct`/`read_gctx` gave.
    The file appears only once complete.
    """
    path = Path(path)
    if adata.X is None:
        raise DataError(f"cannot write {path}: the AnnData has no X matrix")
    x = adata.X.toarray() if sparse.issparse(adata.X) else np.asarray(adata.X)
    col_fields = _frame_fields(adata.obs, "obs")
    row_fields = _row_fields(adata)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as handle:
            handle.attrs["version"] = "GCTX1.0"
            chunks = (min(CHUNK_ROWS, x.shape[0]), x.shape[1]) if x.size else None
            handle.create_dataset(
                MATRIX, data=x.astype(np.float32, copy=False), chunks=chunks, compression=compression
            )
            _write_group(handle, COL_META, adata.obs_names, col_fields)
            _write_group(handle, ROW_META, row_fields.pop("id"), row_fields)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _row_fields(adata: AnnData) -> dict[str, np.ndarray]:
    """ROW fields: `id` from `var["rid"]` (else var_names), var columns under CMap's names."""
    var = adata.var
    fields = _frame_fields(var.drop(columns=["rid"], errors="ignore"), "var")
    for cmap_name, var_name in ROW_FIELD_TO_VAR.items():
        if var_name in fields and cmap_name not in fields:
            fields[cmap_name] = fields.pop(var_name)
    rids = as_text(var["rid"].to_numpy()) if "rid" in var else as_text(var.index.to_numpy())
    names = as_text(var.index.to_numpy())
    if GENE_SYMBOL_FIELD not in fields and not np.array_equal(names, rids):
        fields[GENE_SYMBOL_FIELD] = names
    fields["id"] = rids
    return fields


def _frame_fields(frame: pd.DataFrame, where: str) -> dict[str, np.ndarray]:
    """One array per column, in a type HDF5 stores (see `_column_values`)."""
    fields = {}
    for name in frame.columns:
        if not isinstance(name, str) or not name or "/" in name or name == "id":
            raise DataError(
                f"cannot write {where} column {name!r} to GCTX: field names must be non-empty strings "
                "without '/' and not 'id' (the id field holds the names); rename the column"
            )
        fields[name] = _column_values(frame[name])
    return fields


def _column_values(column: pd.Series) -> np.ndarray:
    """Numbers as int64/float64 (bool as int8, missing as NaN), everything else as `str`."""
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return as_text(column.astype(object).to_numpy())
    if pd.api.types.is_bool_dtype(dtype) and not column.isna().any():
        return column.to_numpy(dtype=np.int8)
    if pd.api.types.is_integer_dtype(dtype) and not column.isna().any():
        return column.to_numpy(dtype=np.int64)
    if pd.api.types.is_numeric_dtype(dtype):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    return as_text(column.to_numpy(dtype=object))


def _write_group(handle: h5py.File, name: str, ids: object, fields: dict[str, np.ndarray]) -> None:
    group = handle.create_group(name)
    _write_field(group, "id", as_text(np.asarray(ids, dtype=object)))
    for field, values in fields.items():
        _write_field(group, field, values)


def _write_field(group: h5py.Group, name: str, values: np.ndarray) -> None:
    if values.dtype == object:
        group.create_dataset(name, data=values.tolist(), dtype=h5py.string_dtype("utf-8"))
    else:
        group.create_dataset(name, data=values)
