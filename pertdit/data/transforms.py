"""Expression transforms, recorded in `uns` so that none is ever applied twice.

The `prnet` transform (the authors' Level-3 transform) is split into per-profile steps so that the streaming
GEO path (`pertdit.data.geo_stream`) applies exactly the same arithmetic chunk by chunk: `clip_profiles`,
`profile_totals`, `median_total` (over all kept profiles: the one step that needs a first pass) and
`scale_log1p`.
"""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np

from pertdit.errors import DataError

log = logging.getLogger(__name__)
TRANSFORMS = ("prnet", "none")
CLIP_MAX = 1e3


def clip_profiles(X: np.ndarray, clip_max: float = CLIP_MAX) -> np.ndarray:
    """(N, G) float64 values clipped to [0, clip_max]."""
    return np.clip(np.asarray(X, dtype=np.float64), 0.0, clip_max)


def profile_totals(clipped: np.ndarray) -> np.ndarray:
    """(N,) float64 total of each clipped profile."""
    return np.asarray(clipped, dtype=np.float64).sum(axis=1)


def median_total(totals: np.ndarray) -> float:
    """The target total of `normalize_total`: the median of the positive totals (1.0 when there is none)."""
    totals = np.asarray(totals, dtype=np.float64)
    positive = totals[totals > 0]
    return float(np.median(positive)) if positive.size else 1.0


def scale_log1p(clipped: np.ndarray, totals: np.ndarray, target: float) -> np.ndarray:
    """(N, G) float32 log1p(clipped x target / total), rows with a zero total -> 0."""
    clipped = np.asarray(clipped, dtype=np.float64)
    totals = np.asarray(totals, dtype=np.float64).reshape(-1, 1)
    scale = np.divide(target, totals, out=np.zeros_like(totals), where=totals > 0)
    return np.log1p(clipped * scale).astype(np.float32)


def prnet_target_sum(X: np.ndarray, clip_max: float = CLIP_MAX) -> float:
    """The total every row is scaled to by `prnet_transform`: the median row total after clipping."""
    return median_total(profile_totals(clip_profiles(X, clip_max)))


def prnet_transform(X: np.ndarray, clip_max: float = CLIP_MAX, target_sum: float | None = None) -> np.ndarray:
    """The authors' Level-3 transform: clip to [0, clip_max], scale rows to the median total (or to
    `target_sum`, the training data's, for new profiles), natural log1p."""
    clipped = clip_profiles(X, clip_max)
    totals = profile_totals(clipped)
    return scale_log1p(clipped, totals, median_total(totals) if target_sum is None else float(target_sum))


def transform_like(X: np.ndarray, meta: dict) -> np.ndarray:
    """New raw profiles (n, G) through the transform a dataset had (`meta` = its `uns["pertdit"]`), with the
    dataset's own parameters, so they are on the scale of its profiles."""
    transform = meta.get("transform", "none")
    if transform in (None, "none"):
        return np.asarray(X, dtype=np.float32)
    if transform == "prnet":
        if "transform_target_sum" not in meta:
            raise DataError("the dataset does not record its transform's target total (uns['pertdit']"
                            "['transform_target_sum']), so a raw profile cannot be put on its scale: a cache "
                            "entry made before it was recorded (delete it under paths.cache_dir/datasets to "
                            "rebuild it), or give --control on the model's scale instead")
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
