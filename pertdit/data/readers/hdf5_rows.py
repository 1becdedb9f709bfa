"""Read selected rows of a large HDF5 dataset as a few sorted, contiguous block reads."""

from __future__ import annotations

from collections.abc import Iterator

import h5py
import numpy as np

#: Most values held in memory by one block read (64 MiB of float32).
MAX_BLOCK_VALUES = 1 << 24
#: Rows skipped inside a block rather than starting a new read (at least one HDF5 chunk).
MIN_MERGE_GAP = 8


def read_rows(dataset: h5py.Dataset, rows: np.ndarray | None, cols: np.ndarray | None = None) -> np.ndarray:
    """`dataset[rows][:, cols]` of a 1-D or 2-D dataset; `rows` are unique, in any order (None = all).

    The rows are read in increasing order, merged into blocks where close, and returned in the
    order of `rows`. `cols` (2-D only) picks columns of each block: (len(rows), len(cols)).
    """
    if rows is None:
        data = dataset[()]
        return data if cols is None else data[:, cols]
    rows = np.asarray(rows, dtype=np.int64)
    width = int(np.prod(dataset.shape[1:], dtype=np.int64)) if dataset.ndim > 1 else 1
    shape = (len(rows),) + (dataset.shape[1:] if cols is None else (len(cols),))
    out = np.empty(shape, dtype=dataset.dtype)
    if len(rows) == 0:
        return out
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    chunk_rows = dataset.chunks[0] if dataset.chunks else 1
    max_gap = max(chunk_rows, MIN_MERGE_GAP)
    max_rows = max(1, MAX_BLOCK_VALUES // max(width, 1))
    for lo, hi in _blocks(sorted_rows, max_gap, max_rows):
        start, stop = int(sorted_rows[lo]), int(sorted_rows[hi - 1]) + 1
        block = dataset[start:stop]
        if cols is not None:
            block = block[:, cols]
        out[order[lo:hi]] = block[sorted_rows[lo:hi] - start]
    return out


def _blocks(sorted_rows: np.ndarray, max_gap: int, max_rows: int) -> Iterator[tuple[int, int]]:
    """(lo, hi) ranges of `sorted_rows` with gaps <= max_gap spanning fewer than max_rows rows."""
    breaks = np.flatnonzero(np.diff(sorted_rows) > max_gap) + 1
    bounds = np.concatenate(([0], breaks, [len(sorted_rows)]))
    for run_lo, run_hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        lo = run_lo
        while lo < run_hi:
            limit = sorted_rows[lo] + max_rows
            hi = int(np.searchsorted(sorted_rows[lo:run_hi], limit, side="left")) + lo
            yield lo, hi
            lo = hi
