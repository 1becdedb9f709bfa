"""Load a dataset from its source files once, preprocess it, and cache the result as `.h5ad`."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import anndata as ad

from pertdit.data.preprocess import PreprocessConfig, preprocess
from pertdit.errors import DataError

log = logging.getLogger(__name__)
CACHE_VERSION = 3


def _fingerprint(path: str | Path | None) -> list | None:
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        raise DataError(f"data file not found: {p} (set paths.data_dir or the PERTDIT_DATA environment variable)")
    stat = p.stat()
    return [str(p.resolve()), stat.st_size, int(stat.st_mtime)]


def write_quietly(adata: ad.AnnData, path: str | Path) -> None:
    """`write_h5ad` without anndata's per-column 'storing ... as categorical' chatter."""
    logger = logging.getLogger("anndata")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        adata.write_h5ad(path)
    finally:
        logger.setLevel(level)


def read_source(expression: str | Path, inst_info: str | Path | None = None,
                pert_info: str | Path | None = None) -> ad.AnnData:
    """Read expression (GCT, GCTX, h5ad, the bundle, or a GEO Level-3 GCTX with its inst/pert info) as profiles
    x genes."""
    from pertdit.data.bundle import is_bundle, load_bundle
    from pertdit.data.readers import read_dataset, read_geo_release

    _fingerprint(expression)
    if is_bundle(expression):
        return load_bundle(expression)
    if inst_info is not None:
        return read_geo_release(expression, inst_info, pert_info)
    return read_dataset(expression)


def load_dataset(expression: str | Path, compounds: str | Path | None = None,
                 preprocess_config: PreprocessConfig | dict | None = None, cache_dir: str | Path | None = None,
                 inst_info: str | Path | None = None, pert_info: str | Path | None = None) -> ad.AnnData:
    """The preprocessed dataset AnnData, read from `cache_dir` when the same inputs were processed before."""
    cfg = preprocess_config if isinstance(preprocess_config, PreprocessConfig) else PreprocessConfig(
        **(preprocess_config or {}))
    key_parts = {"version": CACHE_VERSION, "files": [_fingerprint(p) for p in (expression, compounds, inst_info,
                                                                                 pert_info)],
                 "config": {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in asdict(cfg).items()}}
    key = hashlib.sha256(json.dumps(key_parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
    cached = Path(cache_dir) / "datasets" / f"{Path(expression).stem}-{key}.h5ad" if cache_dir else None
    if cached is not None and cached.is_file():
        try:
            adata = ad.read_h5ad(cached)
            if adata.uns.get("pertdit", {}).get("cache_key") == key:
                log.info("dataset from cache %s", cached)
                return adata
        except Exception as exc:  # corrupt cache: rebuild, and say so
            log.warning("dataset cache %s unreadable (%s); rebuilding", cached, exc)
    adata = preprocess(read_source(expression, inst_info, pert_info), compounds, cfg, source=str(expression))
    adata.uns["pertdit"]["cache_key"] = key
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".tmp{os.getpid()}")
        write_quietly(adata, tmp)
        os.replace(tmp, cached)
    return adata
