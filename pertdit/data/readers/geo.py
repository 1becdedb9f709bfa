"""Read a GEO L1000 release (GSE92742 / GSE70138): Level-3 GCTX + `*_inst_info.txt` (+ pert/cell/gene info).

In the GEO files the GCTX holds only ids (`inst_id` per profile, Entrez id per gene); the metadata live
in tab-separated tables. They are merged into `obs` / `var` under the plate files' names, so a GEO
release and a plate GCT give the same columns (e.g. `rna_plate` also as `det_plate`).

`read_geo_release` reads (a subset of) a release into memory; `pertdit.data.geo_stream` streams a whole
release through the same table reading and merging (`read_info_table`, `geo_obs_fields`, `geo_var_fields`).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from anndata import AnnData

from pertdit.errors import DataError

from .gctx import read_gctx
from .metadata import as_text, build_anndata, check_unique, make_obs, make_var, require_file

#: GEO obs name <-> plate-file obs name; each is added from the other when missing.
OBS_ALIASES = (("rna_plate", "det_plate"), ("rna_well", "det_well"))

#: Required columns of each table (key column first).
INST_COLUMNS = ("inst_id", "cell_id", "pert_id", "pert_type")
PERT_COLUMNS = ("pert_id", "canonical_smiles")
CELL_COLUMNS = ("cell_id",)
GENE_COLUMNS = ("pr_gene_id",)


def read_geo_release(
    level3_gctx: str | Path,
    inst_info: str | Path,
    pert_info: str | Path | None = None,
    cell_info: str | Path | None = None,
    cid: Iterable[str] | None = None,
    *,
    rid: Iterable[str] | None = None,
    gene_info: str | Path | None = None,
) -> AnnData:
    """GEO Level-3 GCTX + info tables -> AnnData (profiles x genes) with the plate files' conventions.

    `inst_info` (by `inst_id`) fills `obs`; `pert_info` adds its columns by `pert_id` (notably
    `canonical_smiles`), `cell_info` by `cell_id`; a table's column already in `obs` is not replaced
    (inst_info's own columns do replace the GCTX's). Perturbagens or cell lines absent from a table get
    `""` / NaN. `gene_info` adds gene symbols by `pr_gene_id` == row id; without it `var["entrez_id"]`
    comes from the row ids (GEO rows are Entrez ids). `cid` / `rid` read only those profiles / genes.
    """
    inst = read_info_table(inst_info, "inst_info table", INST_COLUMNS)
    tables = {
        "pert": None if pert_info is None else read_info_table(pert_info, "pert_info table", PERT_COLUMNS),
        "cell": None if cell_info is None else read_info_table(cell_info, "cell_info table", CELL_COLUMNS),
    }
    genes = None if gene_info is None else read_info_table(gene_info, "gene_info table", GENE_COLUMNS)
    adata = read_gctx(level3_gctx, cid=cid, rid=rid)
    positions = inst_positions(inst, adata.obs_names, inst_info, level3_gctx)
    base = {name: adata.obs[name].to_numpy() for name in adata.obs.columns}
    obs_fields = geo_obs_fields(inst, positions, tables, base)
    rids = adata.var["rid"].to_numpy()
    var_fields = geo_var_fields(rids, genes, {n: adata.var[n].to_numpy() for n in adata.var.columns if n != "rid"})
    where = f"{level3_gctx} + {inst_info}"
    return build_anndata(
        adata.X, make_obs(adata.obs_names, obs_fields, where), make_var(rids, var_fields, where)
    )


def inst_positions(inst: pd.DataFrame, ids: Iterable[str], inst_info: str | Path, gctx: str | Path) -> np.ndarray:
    """Row of `inst` (indexed by inst_id) for each profile id; DataError naming the ids it lacks."""
    ids = pd.Index(as_text(np.asarray(list(ids) if not isinstance(ids, (np.ndarray, pd.Index)) else ids,
                                      dtype=object)))
    positions = inst.index.get_indexer(ids)
    missing = ids[positions < 0]
    if len(missing):
        raise DataError(
            f"{inst_info}: {len(missing)} profile(s) of {gctx} have no row, e.g. {list(missing[:5])}; "
            "use the inst_info file of the same GEO release (or pass cid= to read only described profiles)"
        )
    return positions


def geo_obs_fields(
    inst: pd.DataFrame,
    positions: np.ndarray,
    tables: Mapping[str, pd.DataFrame | None],
    base: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """obs fields of the profiles at `positions` of `inst`: the GCTX's own fields (`base`), replaced by
    inst_info's columns, the plate-name aliases, then pert_info's columns by `pert_id` and cell_info's by
    `cell_id` (never replacing a field already there)."""
    fields: dict[str, Any] = dict(base or {})
    for name in inst.columns:
        fields[name] = inst[name].to_numpy(dtype=object)[positions]
    for geo_name, plate_name in OBS_ALIASES:
        if geo_name in fields and plate_name not in fields:
            fields[plate_name] = fields[geo_name]
        elif plate_name in fields and geo_name not in fields:
            fields[geo_name] = fields[plate_name]
    if tables.get("pert") is not None:
        _add_by_key(fields, fields["pert_id"], tables["pert"])
    if tables.get("cell") is not None:
        _add_by_key(fields, fields["cell_id"], tables["cell"])
    return fields


def geo_var_fields(rids: np.ndarray, genes: pd.DataFrame | None, base: Mapping[str, Any]) -> dict[str, Any]:
    """var fields of the genes `rids` (GEO row ids = Entrez ids): gene_info's columns by `pr_gene_id`."""
    fields: dict[str, Any] = dict(base)
    if genes is not None:
        _add_by_key(fields, rids, genes)
        if "entrez_id" not in fields:
            fields["pr_gene_id"] = rids
    if "entrez_id" not in fields and "pr_gene_id" not in fields and all(str(r).isdigit() for r in rids):
        fields["entrez_id"] = rids
    return fields


def read_info_table(
    path: str | Path, what: str, required: tuple[str, ...], categorical: bool = False
) -> pd.DataFrame:
    """Tab-separated table as text, indexed by its key (`required[0]`, unique).

    `categorical`: every other column as a pandas category (for inst_info tables of a million rows).
    DataError naming the file for an unreadable table, missing columns, a repeated key or short lines
    (a truncated file).
    """
    path = require_file(path, what)
    key = required[0]
    dtype: Any = str
    if categorical:
        header = pd.read_csv(path, sep="\t", nrows=0, quoting=csv.QUOTE_NONE).columns
        dtype = {name: (str if name == key else "category") for name in header}
    try:
        table = pd.read_csv(
            path, sep="\t", dtype=dtype, keep_default_na=False, na_filter=False, quoting=csv.QUOTE_NONE
        )
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{path}: cannot read the {what} as a tab-separated table ({err})") from err
    missing = [name for name in required if name not in table.columns]
    if missing:
        raise DataError(
            f"{path}: the {what} lacks column(s) {missing} (found {list(table.columns)[:12]}); "
            "expected the GEO GSE92742/GSE70138 layout"
        )
    _check_last_line(path, what, len(table.columns))
    check_unique(table[key], key, str(path))
    return table.set_index(key)


def _check_last_line(path: Path, what: str, n_fields: int) -> None:
    """DataError when the last line of a table has fewer fields than its header (a file cut short; pandas
    would read the missing fields as empty)."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - (1 << 16)))
        tail = handle.read().rstrip(b"\r\n")
    last = tail.rsplit(b"\n", 1)[-1]
    found = last.count(b"\t") + 1
    if size and found < n_fields:
        raise DataError(
            f"{path}: the last line of the {what} has {found} of the header's {n_fields} fields; the file is "
            "truncated (download or copy it again)"
        )


def _add_by_key(fields: dict[str, Any], keys: Any, table: pd.DataFrame) -> None:
    """Add `table`'s columns not yet in `fields`, looked up by `keys`; keys not in the table -> ""."""
    positions = table.index.get_indexer(as_text(keys))
    found = positions >= 0
    for name in table.columns:
        if name in fields:
            continue
        values = table[name].to_numpy(dtype=object)
        picked = values[positions.clip(min=0)] if len(values) else np.empty(len(positions), dtype=object)
        fields[name] = np.where(found, picked, "")
