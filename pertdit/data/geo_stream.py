"""Preprocess whole GEO L1000 releases (GSE92742, GSE70138, or both) in bounded memory.

The matrix of a release (1.3 M profiles x 12,328 genes, ~65 GB as float32) is never held in memory:

1. **Metadata first.** The info tables and the GCTX ids are read and checked (`OpenRelease`); the profiles
   to keep are decided from metadata alone: the project's `preprocess` (perturbagen types: `trt_cp` and
   vehicle controls; SMILES, too-few-observations filters, control pairing, group keys, the report) runs on
   a metadata-only AnnData (no genes), so this path and the in-memory one share every rule.
2. **One pass over the matrix.** The kept columns are read in sorted row blocks of `chunk_profiles`
   profiles, only the 978 landmark genes are kept, each block is checked (NaN/inf name the profile),
   clipped to [0, 1e3] (the `prnet` transform) and written into the dataset `.h5ad`; each profile's total
   is kept (8 bytes a profile).
3. **Second pass over the (small) output.** `normalize_total` needs the median total over ALL kept
   profiles, known only after step 2, so the landmark matrix is rescaled and log1p-transformed in place,
   block by block (the same arithmetic as `pertdit.data.transforms.prnet_transform`).

The output appears only when complete (`DenseH5adWriter`): an error or an interrupt leaves no file.
Peak memory: the metadata plus a few blocks; see docs/full_l1000.md for measurements.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pertdit.data.geo_release import GeoRelease, OpenRelease
from pertdit.data.h5ad_io import DenseH5adWriter
from pertdit.data.landmarks import common_gene_order
from pertdit.data.preprocess import PreprocessConfig, preprocess
from pertdit.data.transforms import TRANSFORMS, clip_profiles, median_total, profile_totals, scale_log1p
from pertdit.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamOptions:
    """How the releases are read (`data.geo`): `chunk_profiles` profiles per block (memory ~ chunk x 12,328
    x 4 bytes for the read, the result does not depend on it), `landmarks` (auto | gene_info | bundled)."""

    chunk_profiles: int = 2048
    landmarks: str = "auto"


def preprocess_geo(releases: Sequence[GeoRelease], out_path: str | Path, compounds: str | Path | None = None,
                   config: PreprocessConfig | None = None, options: StreamOptions | None = None,
                   uns: dict | None = None) -> Path:
    """Stream `releases` into the dataset `.h5ad` at `out_path` (the data contract of docs/ARCHITECTURE.md,
    `X` float32 contiguous, readable memory-mapped) and return its path. `compounds`: an optional pert_id ->
    SMILES table (else each release's pert_info SMILES); `uns` is added to `uns["pertdit"]`."""
    cfg = config or PreprocessConfig()
    opts = options or StreamOptions()
    if cfg.transform not in TRANSFORMS:
        raise DataError(f"unknown transform {cfg.transform!r}; choose one of {TRANSFORMS}")
    if opts.chunk_profiles < 1:
        raise DataError(f"data.geo.chunk_profiles must be >= 1, got {opts.chunk_profiles}")
    opened: list[OpenRelease] = []
    try:
        for release in releases:
            opened.append(OpenRelease(release, opts.landmarks))
        if not opened:
            raise DataError("data.geo.releases is empty: name at least one GEO release")
        selections = common_gene_order([o.landmarks for o in opened], [o.release.label for o in opened])
        for o, selection in zip(opened, selections):
            o.landmarks = selection
        gene_slice = _gene_subset(opened[0].var(), cfg.genes)
        var = opened[0].var().iloc[gene_slice].copy()
        dataset, origin = _filtered_metadata(opened, cfg, compounds)
        dataset.uns["pertdit"].update(uns or {})
        dataset.uns["pertdit"]["transform"] = cfg.transform
        dataset.uns["pertdit"]["geo"] = {
            "releases": [o.release.label for o in opened], "landmarks": opened[0].landmarks.origin,
            "files": [str(p) for o in opened for p in o.release.files()]}
        with DenseH5adWriter(out_path, dataset.obs, var, dataset.uns) as writer:
            totals = _copy_landmarks(opened, origin, gene_slice, writer.X, cfg.transform, opts.chunk_profiles)
            if cfg.transform == "prnet":
                target = _normalise_in_place(writer.X, totals, opts.chunk_profiles)
                # as the in-memory path records it (`apply_transform`): new raw profiles go on this scale
                writer.set_uns("pertdit/transform_target_sum", target)
            return writer.commit()
    finally:
        for o in opened:
            o.close()


def _gene_subset(var: pd.DataFrame, genes: Sequence[str] | None) -> np.ndarray:
    """Positions of `preprocess.genes` among the landmarks (all of them when None)."""
    if genes is None:
        return np.arange(len(var))
    positions = var.index.get_indexer(list(genes))
    missing = [g for g, p in zip(genes, positions) if p < 0]
    if missing:
        raise DataError(f"data.preprocess.genes: {len(missing)} gene(s) are not among the release's landmarks, "
                        f"e.g. {missing[:10]}")
    return positions


def _filtered_metadata(opened: list[OpenRelease], cfg: PreprocessConfig,
                       compounds=None) -> tuple[ad.AnnData, pd.DataFrame]:
    """The kept profiles as a metadata-only dataset AnnData (preprocess's obs, pairing, report: every profile of
    every release goes through the same filters as in memory) and, for each of its rows, the release
    (`release`) and matrix column (`position`) it comes from."""
    frames, origins = [], []
    for index, o in enumerate(opened):
        positions = np.arange(len(o.gctx.col_ids))
        frame = o.obs(positions)
        frame["source"] = o.release.label  # the schema's source: counts, filters (data.sources) per release
        frames.append(frame)
        origins.append(pd.DataFrame({"release": index, "position": positions}, index=frame.index))
    obs = pd.concat(frames) if len(frames) > 1 else frames[0]
    origin = pd.concat(origins) if len(origins) > 1 else origins[0]
    if not obs.index.is_unique:
        repeated = obs.index[obs.index.duplicated()].unique()
        raise DataError(f"the releases share {len(repeated)} profile id(s), e.g. {list(repeated[:5])}; "
                        "each profile may appear in one release only")
    labels = " + ".join(o.release.label for o in opened)
    meta = ad.AnnData(X=np.zeros((len(obs), 0), dtype=np.float32), obs=obs)
    kept = preprocess(meta, compounds, replace(cfg, transform="none", genes=None), source=labels)
    origin = origin.loc[kept.obs_names]
    log.info("%s: %d of %d profiles kept", labels, kept.n_obs, len(obs))
    return kept, origin


def _copy_landmarks(opened: list[OpenRelease], origin: pd.DataFrame, gene_slice: np.ndarray, X,
                    transform: str, chunk: int) -> np.ndarray | None:
    """Pass 1: read the kept columns' landmark values block by block into `X` (clipped for `prnet`);
    returns each profile's total after clipping (`prnet`) or None."""
    totals = np.zeros(len(origin), dtype=np.float64) if transform == "prnet" else None
    release_of = origin["release"].to_numpy()
    positions = origin["position"].to_numpy()
    for index, o in enumerate(opened):
        rows = np.flatnonzero(release_of == index)
        if not len(rows):
            continue
        if np.any(np.diff(rows) != 1) or np.any(np.diff(positions[rows]) <= 0):
            raise AssertionError("kept rows of a release must be one block in matrix order")
        genes = o.landmarks.positions[gene_slice]
        steps = range(0, len(rows), chunk)
        for start in tqdm(steps, desc=f"reading {o.release.label}", unit="block", disable=len(steps) < 4):
            block_rows = rows[start:start + chunk]
            source = positions[block_rows]
            values = o.gctx.read(source, genes)
            _check_finite(values, o, source)
            first, stop = int(block_rows[0]), int(block_rows[-1]) + 1
            if totals is None:
                X[first:stop] = values
                continue
            clipped = clip_profiles(values)
            totals[first:stop] = profile_totals(clipped)
            X[first:stop] = clipped.astype(np.float32)
    return totals


def _check_finite(values: np.ndarray, o: OpenRelease, positions: np.ndarray) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        ids = list(o.gctx.col_ids[positions[rows[:5]]])
        raise DataError(f"{o.release.level3}: {int(bad.sum())} NaN/infinite landmark values in {len(rows)} "
                        f"profile(s) of this block, e.g. {ids}; remove or impute those profiles")


def _normalise_in_place(X, totals: np.ndarray, chunk: int) -> float:
    """Pass 2: X <- log1p(X x median total / total), block by block (the `prnet` transform's last steps);
    returns the target total (the median)."""
    target = median_total(totals)
    steps = range(0, len(totals), chunk)
    for start in tqdm(steps, desc="normalising", unit="block", disable=len(steps) < 4):
        stop = min(start + chunk, len(totals))
        X[start:stop] = scale_log1p(X[start:stop], totals[start:stop], target)
    return float(target)
