"""Read a PRnet / ChemCPA / CPA-style L1000 `.h5ad` and name its obs columns the PertDiT way.

Mapping table (`COLUMN_CANDIDATES`; the first source column present wins, `columns=` overrides):

| PertDiT column | source columns, in order                     | becomes                                 |
|----------------|----------------------------------------------|-----------------------------------------|
| `cell_id`      | cell_id, cell_type, cell_line, cell_iname     | str                                     |
| `smiles`       | smiles, SMILES, canonical_smiles              | str (`""` when missing)                 |
| `pert_id`      | pert_id, condition, drug, Drug                | str                                     |
| `pert_iname`   | pert_iname, condition, drug, Drug; else the `pert_id` source | str                      |
| `dose`         | dose, pert_dose, dose_val                     | float64 µM (x `dose_scale`)             |
| `pert_type`    | control, is_control (0/1) -> `ctl_vehicle` / `trt_cp`; else pert_type | str             |

Source columns are kept as they are (a source named like a PertDiT column is replaced by its
normalised values). CPA/ChemCPA's `dose_val` may be divided by the largest dose: pass
`dose_scale` (or `columns={"dose": ...}`) to get µM. `X` becomes a dense float32 matrix.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse

from pertdit.errors import DataError

from .metadata import ROW_FIELD_TO_VAR, as_text, check_unique, require_file

COLUMN_CANDIDATES: dict[str, tuple[str, ...]] = {
    "cell_id": ("cell_id", "cell_type", "cell_line", "cell_iname"),
    "smiles": ("smiles", "SMILES", "canonical_smiles"),
    "pert_id": ("pert_id", "condition", "drug", "Drug"),
    "pert_iname": ("pert_iname", "condition", "drug", "Drug"),
    "dose": ("dose", "pert_dose", "dose_val"),
    "control": ("control", "is_control"),
    "pert_type": ("pert_type",),
}
CONTROL_TYPE = "ctl_vehicle"
TREATMENT_TYPE = "trt_cp"
_TRUE = {"1", "1.0", "true", "True", "TRUE"}
_FALSE = {"0", "0.0", "false", "False", "FALSE"}


def read_h5ad_dataset(
    path: str | Path, columns: Mapping[str, str] | None = None, dose_scale: float = 1.0
) -> AnnData:
    """`.h5ad` -> AnnData with obs `cell_id`, `smiles`, `pert_id`, `pert_iname`, `dose`, `pert_type`.

    `columns`: PertDiT column -> source column, taking precedence over `COLUMN_CANDIDATES`
    (e.g. `{"dose": "dose_uM", "control": "is_ctrl"}`).
    """
    path = require_file(path, "h5ad file")
    try:
        adata = anndata.read_h5ad(path)
    except (OSError, KeyError, ValueError) as err:
        raise DataError(f"{path}: cannot read as .h5ad ({err}); is it an AnnData file?") from err
    check_unique(adata.obs_names, "profile", str(path))
    sources = _resolve_sources(adata.obs, columns or {}, path)
    obs = adata.obs.copy()
    for name in ("cell_id", "smiles", "pert_id", "pert_iname"):
        obs[name] = as_text(adata.obs[sources[name]].to_numpy(dtype=object))
    obs["dose"] = _doses(adata.obs[sources["dose"]], path, sources["dose"]) * float(dose_scale)
    if "control" in sources:
        is_control = _flags(adata.obs[sources["control"]], path, sources["control"])
        obs["pert_type"] = np.where(is_control, CONTROL_TYPE, TREATMENT_TYPE).astype(object)
    else:
        obs["pert_type"] = as_text(adata.obs[sources["pert_type"]].to_numpy(dtype=object))
    x = adata.X.toarray() if sparse.issparse(adata.X) else np.asarray(adata.X)
    adata.X = np.ascontiguousarray(x, dtype=np.float32)
    adata.obs = obs
    _add_entrez(adata)
    return adata


def _resolve_sources(obs: pd.DataFrame, overrides: Mapping[str, str], path: Path) -> dict[str, str]:
    """PertDiT column -> source column present in `obs`; DataError listing every one that is missing."""
    unknown = [name for name in overrides if name not in COLUMN_CANDIDATES]
    absent = [source for source in overrides.values() if source not in obs.columns]
    if unknown or absent:
        raise DataError(
            f"{path}: columns= names unknown PertDiT column(s) {unknown} or obs column(s) {absent} "
            f"that the file lacks; PertDiT columns: {list(COLUMN_CANDIDATES)}, "
            f"obs columns: {list(obs.columns)[:20]}"
        )
    sources = dict(overrides)
    for name, candidates in COLUMN_CANDIDATES.items():
        if name not in sources:
            found = next((c for c in candidates if c in obs.columns), None)
            if found is not None:
                sources[name] = found
    if "pert_iname" not in sources and "pert_id" in sources:
        sources["pert_iname"] = sources["pert_id"]
    missing = [
        f"{name} (one of {list(COLUMN_CANDIDATES[name])})"
        for name in ("cell_id", "smiles", "pert_id", "pert_iname", "dose")
        if name not in sources
    ]
    if "control" not in sources and "pert_type" not in sources:
        missing.append("control or pert_type (control 0/1, or pert_type with 'ctl_vehicle' for controls)")
    if missing:
        raise DataError(
            f"{path}: unknown .h5ad layout, obs lacks {'; '.join(missing)}; found obs columns "
            f"{list(obs.columns)[:20]}; pass columns={{'<pertdit column>': '<obs column>'}} to map them"
        )
    return sources


def _doses(column: pd.Series, path: Path, source: str) -> np.ndarray:
    values = pd.to_numeric(column.astype(object), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = column[np.isnan(values) & column.notna().to_numpy()]
    bad = bad[~bad.astype(str).str.lower().isin(["nan", ""])]
    if len(bad):
        raise DataError(
            f"{path}: obs['{source}'] (dose) has non-numeric values, e.g. {list(bad.unique()[:5])}; "
            "doses must be numbers in µM (map another column with columns={'dose': ...})"
        )
    return values


def _flags(column: pd.Series, path: Path, source: str) -> np.ndarray:
    text = as_text(column.to_numpy(dtype=object))
    valid = np.isin(text, list(_TRUE | _FALSE))
    if not valid.all():
        raise DataError(
            f"{path}: obs['{source}'] (control flag) must be 0/1 or True/False, found "
            f"{list(pd.unique(text[~valid])[:5])}"
        )
    return np.isin(text, list(_TRUE))


def _add_entrez(adata: AnnData) -> None:
    """`var["entrez_id"]` from CMap's `pr_gene_id` when the file has it."""
    for cmap_name, var_name in ROW_FIELD_TO_VAR.items():
        if var_name not in adata.var and cmap_name in adata.var:
            values = pd.to_numeric(adata.var[cmap_name], errors="coerce")
            whole = values.notna().all() and (values == values.round()).all()
            adata.var[var_name] = values.astype(np.int64) if whole else values
