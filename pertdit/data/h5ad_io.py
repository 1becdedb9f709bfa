""".h5ad files too large to build in memory: written row block by row block, read with `X` memory-mapped.

`DenseH5adWriter` creates a valid `.h5ad` (obs, var, uns written by anndata) whose `X` is an uncompressed,
contiguous float32 HDF5 dataset filled in row blocks, in a temporary file renamed into place only when
`commit()` is called: an interrupted or failed write leaves nothing behind. `read_h5ad_mapped` opens such a
file (or any `.h5ad` with a contiguous dense `X`) with `X` as a copy-on-write `numpy.memmap`: nothing is read
until a row is used, and changes in the process never reach the file.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pandas as pd
from anndata.io import read_elem, write_elem

log = logging.getLogger(__name__)

#: attributes anndata writes on a dense array element
ARRAY_ATTRS = {"encoding-type": "array", "encoding-version": "0.2.0"}


def write_quietly(adata: ad.AnnData, path: str | Path) -> None:
    """`write_h5ad` without anndata's per-column 'storing ... as categorical' chatter."""
    logger = logging.getLogger("anndata")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        adata.write_h5ad(path)
    finally:
        logger.setLevel(level)


class DenseH5adWriter:
    """Write `obs`, `var`, `uns` and an (n_obs, n_vars) float32 `X` filled block by block; atomic.

    ```
    with DenseH5adWriter(path, obs, var, uns) as writer:
        writer.X[a:b] = block          # an h5py dataset: write (and read back) row blocks
        writer.commit()                # rename into place; without it the file is removed
    ```
    """

    def __init__(self, path: str | Path, obs: pd.DataFrame, var: pd.DataFrame,
                 uns: Mapping[str, Any] | None = None, dtype: np.dtype | type = np.float32) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
        self._handle: h5py.File | None = None
        try:
            write_quietly(ad.AnnData(obs=obs, var=var, uns=dict(uns or {})), self.tmp)
            self._handle = h5py.File(self.tmp, "r+")
            self.X = self._handle.create_dataset("X", shape=(len(obs), len(var)), dtype=dtype)
            self.X.attrs.update(ARRAY_ATTRS)
        except BaseException:
            self.abort()
            raise

    def add_layer(self, name: str) -> h5py.Dataset:
        """An (n_obs, n_vars) dataset `layers[name]` of X's dtype, to fill block by block like `X`."""
        layers = self._handle.require_group("layers")
        if "encoding-type" not in layers.attrs:
            layers.attrs.update({"encoding-type": "dict", "encoding-version": "0.1.0"})
        dataset = layers.create_dataset(name, shape=self.X.shape, dtype=self.X.dtype)
        dataset.attrs.update(ARRAY_ATTRS)
        return dataset

    def set_uns(self, path: str, value: Any) -> None:
        """Write `value` at `uns/<path>` (e.g. "pertdit/transform_target_sum"), replacing what is there: for
        values known only after the profiles were written. The parent dict must exist (given in `uns`)."""
        parent_path, _, name = f"uns/{path.strip('/')}".rpartition("/")
        parent = self._handle[parent_path]
        if name in parent:
            del parent[name]
        write_elem(parent, name, value)

    def commit(self) -> Path:
        """Close the file and move it to `path` (replacing an older file of that name)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file (nothing is left)."""
        if self._handle is not None:
            try:
                self._handle.close()
            finally:
                self._handle = None
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> DenseH5adWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.tmp.exists():
            self.abort()


def mapped_offset(dataset: h5py.Dataset) -> int | None:
    """Byte offset of a dataset's values in its file when they can be memory-mapped (one contiguous,
    uncompressed, allocated block of a little-endian numeric type), else None."""
    if dataset.chunks is not None or dataset.compression is not None or dataset.dtype.kind not in "fiu":
        return None
    if dataset.dtype.byteorder == ">":
        return None
    return dataset.id.get_offset()


def read_h5ad_mapped(path: str | Path) -> ad.AnnData:
    """An `.h5ad` with `X` as a copy-on-write memory map when `X` is a contiguous dense array (what
    `DenseH5adWriter` and anndata's own dense writer produce); otherwise the file is read as usual."""
    path = Path(path)
    with h5py.File(path, "r") as handle:
        x = handle.get("X")
        offset = mapped_offset(x) if isinstance(x, h5py.Dataset) else None
        if offset is None:
            return ad.read_h5ad(path)
        shape, dtype = x.shape, x.dtype
        parts = {key: read_elem(handle[key]) for key in handle if key != "X"}
    X = np.memmap(path, dtype=dtype, mode="c", offset=offset, shape=shape) if np.prod(shape) else np.zeros(
        shape, dtype=dtype)
    return ad.AnnData(X=X, **{key: value for key, value in parts.items() if key in _ANNDATA_PARTS})


_ANNDATA_PARTS = ("obs", "var", "uns", "obsm", "varm", "layers", "obsp", "varp")


def row_blocks(X: np.ndarray, block_rows: int = 8192):
    """Yield (start, block) of consecutive rows of `X`; a file-backed `numpy.memmap` is read with plain file
    reads (the rows are not mapped into this process, so its resident memory stays one block)."""
    filename = getattr(X, "filename", None) if isinstance(X, np.memmap) else None
    if filename is None or not X.flags.c_contiguous:
        for start in range(0, X.shape[0], block_rows):
            yield start, np.asarray(X[start:start + block_rows])
        return
    row_bytes = X.dtype.itemsize * int(np.prod(X.shape[1:], dtype=np.int64))
    with open(filename, "rb") as handle:
        for start in range(0, X.shape[0], block_rows):
            n = min(block_rows, X.shape[0] - start)
            handle.seek(X.offset + start * row_bytes)
            block = np.fromfile(handle, dtype=X.dtype, count=n * row_bytes // X.dtype.itemsize)
            yield start, block.reshape((n, *X.shape[1:]))


def write_dataset_h5ad(adata: ad.AnnData, path: str | Path, block_rows: int = 8192) -> Path:
    """Write a dataset AnnData (obs, var, uns, dense `X`) block by block, atomically; `X` may be a memory
    map far larger than memory. Other parts (layers, obsm) are not written: a dataset has none."""
    with DenseH5adWriter(path, adata.obs, adata.var, adata.uns, dtype=adata.X.dtype) as writer:
        for start, block in row_blocks(adata.X, block_rows):
            writer.X[start:start + len(block)] = block
        return writer.commit()
