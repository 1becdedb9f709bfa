"""Read a GCTX file (CMap's HDF5 matrix format) as AnnData, whole or by profile/gene subset.

Layout: `/0/DATA/0/matrix` (n_profiles, n_genes), `/0/META/COL/<field>` (one value per profile, `id`
required), `/0/META/ROW/<field>` (one value per gene, `id` required).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from anndata import AnnData

from pertdit.errors import DataError

from .hdf5_rows import read_rows
from .metadata import as_text, build_anndata, check_unique, make_obs, make_var, require_file

MATRIX = "0/DATA/0/matrix"
COL_META = "0/META/COL"
ROW_META = "0/META/ROW"


def read_gctx(
    path: str | Path, cid: Iterable[str] | None = None, rid: Iterable[str] | None = None
) -> AnnData:
    """GCTX file -> AnnData (profiles x genes, `X` float32); same obs/var conventions as `read_gct`.

    `cid` / `rid`: profile / row ids to read (in that order); only those are read from disk.
    """
    with GctxFile(path) as gctx:
        profiles = _positions(gctx.col_ids, cid, "cid", gctx.path)
        genes = _positions(gctx.row_ids, rid, "rid", gctx.path)
        x = gctx.read(profiles, genes)
        obs_fields = metadata_fields(gctx.col_group, profiles, len(gctx.col_ids), gctx.path)
        var_fields = metadata_fields(gctx.row_group, genes, len(gctx.row_ids), gctx.path)
    cids = gctx.col_ids if profiles is None else gctx.col_ids[profiles]
    rids = gctx.row_ids if genes is None else gctx.row_ids[genes]
    where = str(gctx.path)
    return build_anndata(x, make_obs(cids, obs_fields, where), make_var(rids, var_fields, where))


class GctxFile:
    """An open, checked GCTX file: profile ids `col_ids`, gene ids `row_ids` (both unique, matching the
    matrix shape) and row-block reads of the (profiles, genes) matrix. Use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = require_file(path, "GCTX file")
        try:
            self.handle = h5py.File(self.path, "r")
        except OSError as err:
            hint = ("the file is truncated: download or copy it again" if "truncated" in str(err)
                    else "for GCT text files use read_gct")
            raise DataError(f"{self.path}: not a readable HDF5 (GCTX) file ({err}); {hint}") from err
        try:
            self._check()
        except BaseException:
            self.handle.close()
            raise

    def _check(self) -> None:
        self.col_group = _group(self.handle, COL_META, self.path)
        self.row_group = _group(self.handle, ROW_META, self.path)
        matrix = self.handle.get(MATRIX)
        if not isinstance(matrix, h5py.Dataset) or matrix.ndim != 2:
            raise DataError(f"{self.path}: no 2-D dataset /{MATRIX}; this file does not follow the GCTX layout")
        self.matrix = matrix
        self.col_ids = _ids(self.col_group, self.path)
        self.row_ids = _ids(self.row_group, self.path)
        expected = (len(self.col_ids), len(self.row_ids))
        if matrix.shape != expected:
            hint = " (it looks transposed)" if matrix.shape == expected[::-1] else ""
            raise DataError(
                f"{self.path}: /{MATRIX} has shape {matrix.shape} but the metadata describe "
                f"{expected[0]} profiles (/{COL_META}/id) x {expected[1]} genes (/{ROW_META}/id){hint}; "
                "the file is inconsistent"
            )
        check_unique(self.col_ids, "profile", str(self.path))
        check_unique(self.row_ids, "gene (row)", str(self.path))

    def read(self, rows: np.ndarray | None, cols: np.ndarray | None = None) -> np.ndarray:
        """matrix[rows][:, cols] (None = all) as read by sorted block reads; DataError naming the file and the
        profiles when HDF5 cannot read them (a truncated or damaged file)."""
        try:
            return read_rows(self.matrix, rows, cols)
        except OSError as err:
            where = "" if rows is None or not len(rows) else (
                f" (profiles {self.col_ids[int(np.min(rows))]} .. {self.col_ids[int(np.max(rows))]})")
            raise DataError(
                f"{self.path}: cannot read the matrix{where}: {err}; the file is truncated or damaged, "
                "download or copy it again"
            ) from err

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> GctxFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _group(handle: h5py.File, name: str, path: Path) -> h5py.Group:
    group = handle.get(name)
    if not isinstance(group, h5py.Group):
        raise DataError(
            f"{path}: no group /{name}; a GCTX file needs /{COL_META} and /{ROW_META} with an 'id' field "
            "each (write one with pertdit.data.readers.write_gctx)"
        )
    return group


def _ids(group: h5py.Group, path: Path) -> np.ndarray:
    ids = group.get("id")
    if not isinstance(ids, h5py.Dataset) or ids.ndim != 1:
        raise DataError(
            f"{path}: /{group.name.strip('/')} has no 1-D 'id' field; every GCTX metadata group needs the "
            "ids of its profiles (COL) or genes (ROW)"
        )
    return as_text(ids[()])


def _positions(ids: np.ndarray, wanted: Iterable[str] | None, what: str, path: Path) -> np.ndarray | None:
    """Positions of the `wanted` ids in `ids` (None = all); DataError naming the ones not in the file."""
    if wanted is None:
        return None
    wanted = as_text(np.array([wanted] if isinstance(wanted, str) else list(wanted), dtype=object))
    check_unique(wanted, f"requested ({what}=)", str(path))
    positions = pd.Index(ids).get_indexer(wanted)
    missing = wanted[positions < 0]
    if len(missing):
        raise DataError(
            f"{path}: {len(missing)} of the {len(wanted)} requested {what} are not in the file, "
            f"e.g. {list(missing[:5])}; check the ids (and that this is the right file)"
        )
    return positions.astype(np.int64)


def metadata_fields(
    group: h5py.Group, positions: np.ndarray | None, n: int, path: Path
) -> dict[str, np.ndarray]:
    """Every 1-D metadata field of `group` except `id`, at `positions` (None = all)."""
    fields = {}
    for name, item in group.items():
        if name == "id" or not isinstance(item, h5py.Dataset):
            continue
        if item.ndim != 1 or item.shape[0] != n:
            raise DataError(
                f"{path}: metadata field {item.name} has shape {item.shape}, expected ({n},) "
                "(one value per id); the file is inconsistent"
            )
        fields[name] = read_rows(item, positions)
    return fields
