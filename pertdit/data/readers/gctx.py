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
    path = require_file(path, "GCTX file")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise DataError(
            f"{path}: not a readable HDF5 (GCTX) file ({err}); for GCT text files use read_gct"
        ) from err
    with handle:
        col_group = _group(handle, COL_META, path)
        row_group = _group(handle, ROW_META, path)
        matrix = handle.get(MATRIX)
        if not isinstance(matrix, h5py.Dataset) or matrix.ndim != 2:
            raise DataError(f"{path}: no 2-D dataset /{MATRIX}; this file does not follow the GCTX layout")
        col_ids = _ids(col_group, path)
        row_ids = _ids(row_group, path)
        expected = (len(col_ids), len(row_ids))
        if matrix.shape != expected:
            hint = " (it looks transposed)" if matrix.shape == expected[::-1] else ""
            raise DataError(
                f"{path}: /{MATRIX} has shape {matrix.shape} but the metadata describe "
                f"{expected[0]} profiles (/{COL_META}/id) x {expected[1]} genes (/{ROW_META}/id){hint}; "
                "the file is inconsistent"
            )
        check_unique(col_ids, "profile", str(path))
        check_unique(row_ids, "gene (row)", str(path))
        profiles = _positions(col_ids, cid, "cid", path)
        genes = _positions(row_ids, rid, "rid", path)
        x = read_rows(matrix, profiles, genes)
        obs_fields = _fields(col_group, profiles, len(col_ids), path)
        var_fields = _fields(row_group, genes, len(row_ids), path)
    cids = col_ids if profiles is None else col_ids[profiles]
    rids = row_ids if genes is None else row_ids[genes]
    where = str(path)
    return build_anndata(x, make_obs(cids, obs_fields, where), make_var(rids, var_fields, where))


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


def _fields(group: h5py.Group, positions: np.ndarray | None, n: int, path: Path) -> dict[str, np.ndarray]:
    """Every 1-D metadata field of `group` except `id`, at `positions`."""
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
