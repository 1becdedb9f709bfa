"""Read a GEO L1000 release (GSE92742 / GSE70138): Level-3 GCTX + `*_inst_info.txt` (+ pert/cell/gene info).

In the GEO files the GCTX holds only ids (`inst_id` per profile, Entrez id per gene); the metadata live
in tab-separated tables. They are merged into `obs` / `var` under the plate files' names, so a GEO
release and a plate GCT give the same columns (e.g. `rna_plate` also as `det_plate`).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
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
    inst = _read_table(inst_info, "inst_info table", INST_COLUMNS)
    perts = None if pert_info is None else _read_table(pert_info, "pert_info table", PERT_COLUMNS)
    cells = None if cell_info is None else _read_table(cell_info, "cell_info table", CELL_COLUMNS)
    genes = None if gene_info is None else _read_table(gene_info, "gene_info table", GENE_COLUMNS)
    adata = read_gctx(level3_gctx, cid=cid, rid=rid)
    obs_fields: dict[str, Any] = {name: adata.obs[name].to_numpy() for name in adata.obs.columns}
    positions = inst.index.get_indexer(adata.obs_names)
    missing = adata.obs_names[positions < 0]
    if len(missing):
        raise DataError(
            f"{inst_info}: {len(missing)} profile(s) of {level3_gctx} have no row, e.g. {list(missing[:5])}; "
            "use the inst_info file of the same GEO release (or pass cid= to read only described profiles)"
        )
    for name in inst.columns:
        obs_fields[name] = inst[name].to_numpy(dtype=object)[positions]
    for geo_name, plate_name in OBS_ALIASES:
        if geo_name in obs_fields and plate_name not in obs_fields:
            obs_fields[plate_name] = obs_fields[geo_name]
        elif plate_name in obs_fields and geo_name not in obs_fields:
            obs_fields[geo_name] = obs_fields[plate_name]
    if perts is not None:
        _add_by_key(obs_fields, obs_fields["pert_id"], perts)
    if cells is not None:
        _add_by_key(obs_fields, obs_fields["cell_id"], cells)

    rids = adata.var["rid"].to_numpy()
    var_fields: dict[str, Any] = {
        name: adata.var[name].to_numpy() for name in adata.var.columns if name != "rid"
    }
    if genes is not None:
        _add_by_key(var_fields, rids, genes)
        if "entrez_id" not in var_fields:
            var_fields["pr_gene_id"] = rids
    if "entrez_id" not in var_fields and "pr_gene_id" not in var_fields and all(r.isdigit() for r in rids):
        var_fields["entrez_id"] = rids
    where = f"{level3_gctx} + {inst_info}"
    return build_anndata(
        adata.X, make_obs(adata.obs_names, obs_fields, where), make_var(rids, var_fields, where)
    )


def _read_table(path: str | Path, what: str, required: tuple[str, ...]) -> pd.DataFrame:
    """Tab-separated table as text, indexed by its key (`required[0]`, unique)."""
    path = require_file(path, what)
    try:
        table = pd.read_csv(
            path, sep="\t", dtype=str, keep_default_na=False, na_filter=False, quoting=csv.QUOTE_NONE
        )
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{path}: cannot read the {what} as a tab-separated table ({err})") from err
    missing = [name for name in required if name not in table.columns]
    if missing:
        raise DataError(
            f"{path}: the {what} lacks column(s) {missing} (found {list(table.columns)[:12]}); "
            "expected the GEO GSE92742/GSE70138 layout"
        )
    key = required[0]
    check_unique(table[key], key, str(path))
    return table.set_index(key)


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
