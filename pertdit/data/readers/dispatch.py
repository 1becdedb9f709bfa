"""Pick the reader from a file's extension."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from anndata import AnnData

from pertdit.errors import DataError

from .gct import read_gct
from .gctx import read_gctx
from .h5ad import read_h5ad_dataset
from .metadata import require_file

READERS: dict[str, Callable[..., AnnData]] = {
    ".gct": read_gct,
    ".gctx": read_gctx,
    ".h5ad": read_h5ad_dataset,
}


def read_dataset(path: str | Path, **kwargs: Any) -> AnnData:
    """Read `path` with the reader for its extension (.gct, .gctx, .h5ad); `kwargs` go to that reader."""
    path = require_file(path, "dataset file")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(
            f"{path}: unknown dataset extension {path.suffix!r}; supported: {sorted(READERS)} "
            "(for a GEO release use read_geo_release)"
        )
    return reader(path, **kwargs)
