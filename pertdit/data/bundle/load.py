"""Read the harmonised bundle (the copy shipped inside the package, or one built elsewhere)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anndata as ad
import h5py
import numpy as np

from pertdit.errors import DataError

from .build import BASAL_FILE, BUNDLE_FILE

#: The copy shipped inside the package (`pertdit/datasets/l1000_bundle/`).
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "datasets" / "l1000_bundle"


def bundle_path(folder: str | Path | None = None) -> Path:
    """Path of the bundle's expression `.h5ad` (in `folder`, default the shipped copy)."""
    return Path(folder or SHIPPED_DIR) / BUNDLE_FILE


def is_bundle(path: str | Path) -> bool:
    """True when `path` is an `.h5ad` written by the bundle build (it carries `uns/bundle`)."""
    path = Path(path)
    if path.suffix.lower() != ".h5ad" or not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as handle:
            return "uns" in handle and "bundle" in handle["uns"]
    except OSError:
        return False


def _read(path: Path, what: str) -> ad.AnnData:
    if not path.is_file():
        raise DataError(f"{what} not found: {path}; rebuild it with `python -m pertdit.data.bundle build` "
                        "(needs the raw collection, ../shared/data or PERTDIT_DATA)")
    return ad.read_h5ad(path)


def load_bundle(path: str | Path | None = None, sources: Sequence[str] | None = None) -> ad.AnnData:
    """The bundle (raw Level-3 values, harmonised obs), optionally only the profiles of `sources`."""
    path = Path(path) if path is not None else bundle_path()
    adata = _read(path, "L1000 bundle")
    if sources is None:
        return adata
    available = list(adata.uns["bundle"]["sources"])
    unknown = [s for s in sources if s not in available]
    if unknown:
        raise DataError(f"source(s) {unknown} not in the bundle {path}; it holds {available}. A source left out "
                        "of the shipped copy (LJP009_A375_24H, research-use licence) needs a bundle built with "
                        "`python -m pertdit.data.bundle build --include LJP009_A375_24H --out DIR` and "
                        "data.expression=DIR/l1000_bundle.h5ad")
    keep = adata.obs["source"].astype(str).isin(list(sources)).to_numpy()
    subset = adata[np.flatnonzero(keep)].copy()
    return subset


def load_basal(path: str | Path | None = None) -> ad.AnnData:
    """Basal (consensus control) profiles: 164 cell lines + `averaged`, obs `cell_id`, `profile`."""
    return _read(Path(path) if path is not None else SHIPPED_DIR / BASAL_FILE, "basal profiles")
