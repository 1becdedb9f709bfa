"""One GEO L1000 release opened for streaming: its files checked against each other before any value is read.

A release is a Level-3 GCTX (`level3`), its `inst_info` table and optionally `pert_info`, `gene_info` and
`cell_info`. `OpenRelease` reads the tables and the GCTX ids (never the matrix), checks that the matrix, the
tables and their counts agree and selects the landmark genes; every problem is a `DataError` naming the file
and what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from pertdit.data.landmarks import Landmarks, select_landmarks
from pertdit.data.readers.gctx import GctxFile, metadata_fields
from pertdit.data.readers.geo import (
    CELL_COLUMNS,
    GENE_COLUMNS,
    INST_COLUMNS,
    PERT_COLUMNS,
    geo_obs_fields,
    geo_var_fields,
    inst_positions,
    read_info_table,
)
from pertdit.data.readers.metadata import make_obs, make_var
from pertdit.errors import DataError

FILE_KEYS = ("level3", "inst_info", "pert_info", "gene_info", "cell_info")


@dataclass(frozen=True)
class GeoRelease:
    """The files of one GEO release (paths; `pert_info`, `gene_info`, `cell_info` optional) and its name."""

    level3: str
    inst_info: str
    pert_info: str | None = None
    gene_info: str | None = None
    cell_info: str | None = None
    name: str | None = None

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | DictConfig) -> GeoRelease:
        """From a `data.geo.releases` entry; DataError naming unknown or missing keys."""
        values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
        unknown = sorted(set(values) - {*FILE_KEYS, "name"})
        missing = [k for k in ("level3", "inst_info") if not values.get(k)]
        if unknown or missing:
            raise DataError(f"data.geo.releases entry {values}: unknown key(s) {unknown}, missing {missing}; "
                            f"an entry has {list(FILE_KEYS)} (level3 and inst_info required) and a name")
        return cls(**{k: (str(v) if v is not None else None) for k, v in values.items()})

    @property
    def label(self) -> str:
        """The release's name, else its Level-3 file name up to `_Level3` (e.g. `GSE92742_Broad_LINCS`)."""
        return self.name or Path(self.level3).name.split("_Level3")[0].removesuffix(".gctx")

    def files(self) -> list[Path]:
        """The paths given (in FILE_KEYS order)."""
        return [Path(getattr(self, key)) for key in FILE_KEYS if getattr(self, key)]


class OpenRelease:
    """A release with its tables read, its GCTX open (ids only) and checked, and its landmarks selected."""

    def __init__(self, release: GeoRelease, landmarks: str = "auto") -> None:
        self.release = release
        for path in release.files():
            if not path.is_file():
                raise DataError(f"{release.label}: file not found: {path} (download the GEO release files, or "
                                "set paths.data_dir / PERTDIT_DATA to the folder that holds them)")
        self.inst = read_info_table(release.inst_info, "inst_info table", INST_COLUMNS, categorical=True)
        self.tables = {
            "pert": _optional_table(release.pert_info, "pert_info table", PERT_COLUMNS),
            "cell": _optional_table(release.cell_info, "cell_info table", CELL_COLUMNS),
        }
        self.genes = _optional_table(release.gene_info, "gene_info table", GENE_COLUMNS)
        self.gctx = GctxFile(release.level3)
        try:
            self._check_counts()
            self.inst_rows = inst_positions(self.inst, self.gctx.col_ids, release.inst_info, release.level3)
            self.landmarks: Landmarks = select_landmarks(self.gctx.row_ids, self.genes, landmarks,
                                                         where=f"{release.level3}")
        except BaseException:
            self.gctx.close()
            raise

    def _check_counts(self) -> None:
        n_matrix, n_table = len(self.gctx.col_ids), len(self.inst)
        if n_table != n_matrix:
            extra = self.inst.index.difference(pd.Index(self.gctx.col_ids))
            detail = f", e.g. {list(extra[:5])} are not in the matrix" if len(extra) else ""
            raise DataError(
                f"{self.release.inst_info}: describes {n_table} profiles but {self.release.level3} holds {n_matrix}"
                f"{detail}; use the inst_info and Level-3 files of the same release (or subset both alike)"
            )
        if self.genes is not None:
            missing = pd.Index([str(r) for r in self.gctx.row_ids]).difference(self.genes.index)
            if len(missing):
                raise DataError(
                    f"{self.release.gene_info}: {len(missing)} of the {len(self.gctx.row_ids)} genes (rows) of "
                    f"{self.release.level3} have no row, e.g. Entrez ids {list(missing[:5])}; use the gene_info "
                    "file of the same release"
                )

    def pert_types(self) -> np.ndarray:
        """(n_profiles,) pert_type of each matrix column (object array of str)."""
        return self.inst["pert_type"].to_numpy(dtype=object)[self.inst_rows]

    def obs(self, positions: np.ndarray) -> pd.DataFrame:
        """obs (the `read_geo_release` columns) of the matrix columns at `positions`."""
        base = metadata_fields(self.gctx.col_group, positions, len(self.gctx.col_ids), self.gctx.path)
        fields = geo_obs_fields(self.inst, self.inst_rows[positions], self.tables, base)
        return make_obs(self.gctx.col_ids[positions], fields, f"{self.release.level3} + {self.release.inst_info}")

    def var(self) -> pd.DataFrame:
        """var of the selected landmark genes (symbols as names, `entrez_id`, `rid`, gene_info's columns)."""
        positions = self.landmarks.positions
        rids = self.gctx.row_ids[positions]
        base = metadata_fields(self.gctx.row_group, positions, len(self.gctx.row_ids), self.gctx.path)
        var = make_var(rids, geo_var_fields(rids, self.genes, base), str(self.release.level3))
        if list(var.index) == [str(r) for r in rids]:  # no symbols in the files: the landmark list's
            var.index = pd.Index(self.landmarks.symbols, dtype=object)
        return var

    def close(self) -> None:
        self.gctx.close()


def _optional_table(path: str | None, what: str, required: tuple[str, ...]) -> pd.DataFrame | None:
    return None if path is None else read_info_table(path, what, required)
