"""Expression transforms, recorded in `uns` so that none is ever applied twice."""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np

from pertdit.errors import DataError

log = logging.getLogger(__name__)
TRANSFORMS = ("prnet", "none")


def prnet_target_sum(X: np.ndarray, clip_max: float = 1e3) -> float:
    """The total every row is scaled to by `prnet_transform`: the median row total after clipping."""
    totals = np.clip(np.asarray(X, dtype=np.float64), 0.0, clip_max).sum(axis=1)
    return float(np.median(totals[totals > 0])) if np.any(totals > 0) else 1.0


def prnet_transform(X: np.ndarray, clip_max: float = 1e3, target_sum: float | None = None) -> np.ndarray:
    """The authors' Level-3 transform: clip to [0, clip_max], scale rows to the median total (or to
    `target_sum`, the training data's, for new profiles), natural log1p."""
    clipped = np.clip(np.asarray(X, dtype=np.float64), 0.0, clip_max)
    totals = clipped.sum(axis=1, keepdims=True)
    target = prnet_target_sum(X, clip_max) if target_sum is None else float(target_sum)
    scale = np.divide(target, totals, out=np.zeros_like(totals), where=totals > 0)
    return np.log1p(clipped * scale).astype(np.float32)


def transform_like(X: np.ndarray, meta: dict) -> np.ndarray:
    """New raw profiles (n, G) through the transform a dataset had (`meta` = its `uns["pertdit"]`), with the
    dataset's own parameters, so they are on the scale of its profiles."""
    transform = meta.get("transform", "none")
    if transform in (None, "none"):
        return np.asarray(X, dtype=np.float32)
    if transform == "prnet":
        if "transform_target_sum" not in meta:
            raise DataError("the dataset does not record its transform's target total (made before it was "
                            "recorded): delete its cache entry under paths.cache_dir/datasets and run again")
        return prnet_transform(X, target_sum=float(meta["transform_target_sum"]))
    raise DataError(f"unknown transform {transform!r} recorded in the dataset; choose one of {TRANSFORMS}")


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
        meta["transform_target_sum"] = prnet_target_sum(adata.X)  # so new profiles can be put on this scale
        adata.X = prnet_transform(adata.X, target_sum=meta["transform_target_sum"])
    else:
        adata.X = np.asarray(adata.X, dtype=np.float32)
    meta["transform"] = done if (done and transform == "none") else transform
    return adata
