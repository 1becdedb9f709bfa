"""The control (pre-perturbation) profile `pertdit predict` conditions on, and where it came from.

In order of preference:
1. the user's profile (`--control FILE`), on the model's scale or raw (`--control-scale raw`: it goes through
   the dataset's transform);
2. the mean of the training data's vehicle controls of the cell line;
3. the cell line's basal profile from the basal file (`data.basal`, Level-3 log2 scale; 164 cell lines),
   put through the transform the training data had, with the training data's parameters
   (`uns["pertdit"]`), for a cell line the model never saw.
Genes are matched by symbol, else by Entrez id (`var["entrez_id"]`), so files that spell symbols of another
era still align.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from pertdit.data.transforms import transform_like
from pertdit.errors import DataError

log = logging.getLogger(__name__)

SCALES = ("model", "raw")


@dataclass
class ControlProfile:
    """A (G,) control profile on the model's scale, where it came from, and a sentence saying so."""

    values: np.ndarray
    source: str  # "user" | "training_controls" | "basal"
    description: str


def known_cell_lines(adata: ad.AnnData) -> list[str]:
    return sorted(adata.obs["cell_id"].astype(str).unique())


def dataset_spelling(adata: ad.AnnData, cell_line: str) -> str | None:
    """The dataset's spelling of `cell_line` (case-insensitive), None when the dataset does not have it."""
    known = known_cell_lines(adata)
    if cell_line in known:
        return cell_line
    matches = [c for c in known if c.lower() == cell_line.lower()]
    return matches[0] if len(matches) == 1 else None


def cell_control(adata: ad.AnnData, cell_line: str) -> np.ndarray:
    """(G,) mean of the dataset's vehicle controls of `cell_line` (the dataset's spelling)."""
    rows = _control_rows(adata, cell_line)
    if rows.size == 0:
        raise DataError(f"cell line {cell_line!r} has no vehicle controls in the dataset; "
                        "pass --control FILE")
    return np.asarray(adata.X[rows], dtype=np.float64).mean(axis=0)


def _control_rows(adata: ad.AnnData, cell_line: str) -> np.ndarray:
    cells = adata.obs["cell_id"].astype(str).to_numpy()
    return np.flatnonzero((cells == cell_line) & adata.obs["is_control"].to_numpy(bool))


def read_profile_table(path: str | Path) -> pd.DataFrame:
    """Profiles of a CSV/TSV, h5ad or GCT file as a (profiles x genes) table, genes as column names.

    CSV/TSV: two columns (gene, value), or genes as columns with one row per profile (a first non-numeric
    column is taken as row names). h5ad and GCT: `var_names` are genes, rows are profiles; their Entrez ids
    (`var["entrez_id"]`) are kept as `attrs["entrez_id"]` for alignment.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"control file not found: {path}")
    if path.suffix in (".h5ad", ".gct", ".gctx"):
        if path.suffix == ".h5ad":
            adata = ad.read_h5ad(path)
        else:
            from pertdit.data.readers import read_gct, read_gctx

            adata = (read_gct if path.suffix == ".gct" else read_gctx)(path)
        X = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
        table = pd.DataFrame(np.asarray(X, dtype=np.float64), index=adata.obs_names.astype(str),
                             columns=adata.var_names.astype(str))
        if "cell_id" in adata.obs:
            table.index = adata.obs["cell_id"].astype(str).to_numpy()
        if "entrez_id" in adata.var:
            table.attrs["entrez_id"] = [_entrez(v) for v in adata.var["entrez_id"]]
        return table
    table = pd.read_csv(path, sep="\t" if path.suffix in (".tsv", ".txt") else ",")
    first = table.columns[0]
    if table.shape[1] == 2 and not pd.api.types.is_numeric_dtype(table[first]):
        values = pd.to_numeric(table.iloc[:, 1], errors="coerce").to_numpy()
        return pd.DataFrame([values], columns=table[first].astype(str).to_numpy())
    if not pd.api.types.is_numeric_dtype(table[first]):
        table = table.set_index(first)
    table = table.apply(pd.to_numeric, errors="coerce")
    table.columns = table.columns.astype(str)
    return table


def align_genes(table: pd.DataFrame, genes: list[str], entrez: list[str] | None,
                path: str | Path) -> np.ndarray:
    """(n, G) values of `table` in the order of the model's `genes`: by symbol, else by Entrez id (from the
    file's `attrs["entrez_id"]` or its column names); an error naming the missing genes."""
    table = table.loc[:, ~table.columns.duplicated()]
    by_symbol = [g in table.columns for g in genes]
    if all(by_symbol):
        values = table[genes].to_numpy(dtype=np.float64)
    else:
        file_entrez = table.attrs.get("entrez_id") or [_entrez(c) for c in table.columns]
        lookup = {e: i for i, e in enumerate(file_entrez) if e}
        columns = [lookup.get(e) for e in (entrez or [])] if entrez else []
        if entrez and all(c is not None for c in columns):
            values = table.to_numpy(dtype=np.float64)[:, columns]
        else:
            missing = [g for g, ok in zip(genes, by_symbol) if not ok]
            raise DataError(f"control {path} lacks {len(missing)} of the model's {len(genes)} genes: "
                            f"{', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}")
    bad = [g for g, ok in zip(genes, np.isfinite(values).all(axis=0)) if not ok]
    if bad:
        raise DataError(f"control {path} has no numeric value for {len(bad)} genes: {', '.join(bad[:20])}")
    return values


def _entrez(value) -> str:
    """An Entrez id as text ("5720"), "" when it is not one."""
    try:
        return str(int(float(value)))
    except (TypeError, ValueError):
        return ""


def dataset_entrez(adata: ad.AnnData) -> list[str] | None:
    return [_entrez(v) for v in adata.var["entrez_id"]] if "entrez_id" in adata.var else None


def read_control(path: str | Path, genes: list[str], entrez: list[str] | None = None) -> np.ndarray:
    """(G,) control profile in the order of `genes` from a CSV/TSV, h5ad or GCT file (several profiles:
    their mean)."""
    return align_genes(read_profile_table(path), genes, entrez, path).mean(axis=0)


def basal_profile(path: str | Path, cell_line: str, genes: list[str],
                  entrez: list[str] | None) -> np.ndarray | None:
    """(G,) raw basal profile of `cell_line` (case-insensitive) from a basal file (one profile per cell
    line, named by `obs["cell_id"]`); None when the file has none for it."""
    table = read_profile_table(path)
    names = {str(n).lower(): i for i, n in enumerate(table.index)}
    if cell_line.lower() not in names:
        return None
    row = table.iloc[[names[cell_line.lower()]]]
    row.attrs = table.attrs
    return align_genes(row, genes, entrez, path)[0]


def choose_control(adata: ad.AnnData, cell_line: str, control_file: str | Path | None = None,
                   control_scale: str = "model", basal_file: str | Path | None = None
                   ) -> tuple[str, ControlProfile]:
    """(cell line as named in the output, its control profile), by the preference order of the module doc."""
    if control_scale not in SCALES:
        raise DataError(f"unknown control scale {control_scale!r}; choose one of {SCALES}")
    genes, entrez = list(adata.var_names.astype(str)), dataset_entrez(adata)
    meta = adata.uns.get("pertdit", {})
    spelled = dataset_spelling(adata, cell_line)
    if control_file is not None:
        values = read_control(control_file, genes, entrez)
        if control_scale == "raw":
            values = transform_like(values[None], meta)[0].astype(np.float64)
        scale = (f"raw, put through the dataset's transform ({meta.get('transform')})"
                 if control_scale == "raw" else "on the model's scale")
        return spelled or cell_line, ControlProfile(values, "user",
                                                    f"the user's profile {control_file} ({scale})")
    if spelled is not None and _control_rows(adata, spelled).size:
        n = _control_rows(adata, spelled).size
        return spelled, ControlProfile(
            cell_control(adata, spelled), "training_controls",
            f"the mean of the {n} vehicle controls of {spelled} in the training data")
    known = known_cell_lines(adata)
    raw = basal_profile(basal_file, cell_line, genes, entrez) if basal_file is not None else None
    if raw is None:
        where = (f"nor in the basal file {basal_file}" if basal_file is not None
                 else "and no basal file is set")
        raise DataError(f"unknown cell line {cell_line!r}: not in the model's dataset ({len(known)}: "
                        f"{', '.join(known)}) {where}; give its control profile with --control FILE (or a "
                        "basal file with --basal FILE / data.basal)")
    values = transform_like(raw[None], meta)[0].astype(np.float64)
    log.info("cell line %s has no vehicle controls in the training data: using its basal profile from %s",
             cell_line, basal_file)
    return cell_line, ControlProfile(values, "basal",
                                     f"the basal profile of {cell_line} from {basal_file}, put through the "
                                     f"dataset's transform ({meta.get('transform')})")


def check_scale(control: np.ndarray, adata: ad.AnnData) -> None:
    """Warn when a control profile is on another scale than the dataset (e.g. before its transform)."""
    reference = float(np.median(np.asarray(adata.X[adata.obs["is_control"].to_numpy(bool)])))
    median = float(np.median(control))
    if reference > 0 and not 0.5 <= median / reference <= 2.0:
        log.warning("the control's median (%.3g) is far from the dataset controls' (%.3g): give it on the "
                    "model's scale (transform %s), or raw with --control-scale raw", median, reference,
                    adata.uns.get("pertdit", {}).get("transform"))
