"""Expression transforms, recorded in `uns` so that none is ever applied twice."""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np

from pertdit.errors import DataError

log = logging.getLogger(__name__)
TRANSFORMS = ("prnet", "none")


def prnet_transform(X: np.ndarray, clip_max: float = 1e3) -> np.ndarray:
    """The authors' Level-3 transform: clip to [0, clip_max], scale rows to the median total, natural log1p."""
    clipped = np.clip(np.asarray(X, dtype=np.float64), 0.0, clip_max)
    totals = clipped.sum(axis=1, keepdims=True)
    target = float(np.median(totals[totals > 0])) if np.any(totals > 0) else 1.0
    scale = np.divide(target, totals, out=np.zeros_like(totals), where=totals > 0)
    return np.log1p(clipped * scale).astype(np.float32)


def apply_transform(adata: ad.AnnData, transform: str) -> ad.AnnData:
    """Apply `transform` to `adata.X` in place and record it in `uns['pertdit']['transform']`."""
    if transform not in TRANSFORMS:
        raise DataError(f"unknown transform {transform!r}; choose one of {TRANSFORMS}")
    meta = adata.uns.setdefault("pertdit", {})
    done = meta.get("transform")
    if done is not None and done != "none" and transform != "none":
        raise DataError(f"this AnnData was already transformed with {done!r}; refusing to apply {transform!r} "
                        "again (use transform=none)")
    if transform == "prnet":
        adata.X = prnet_transform(adata.X)
    else:
        adata.X = np.asarray(adata.X, dtype=np.float32)
    meta["transform"] = done if (done and transform == "none") else transform
    return adata
