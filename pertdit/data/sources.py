"""Load a dataset from its source files once, preprocess it, and cache the result as `.h5ad`.

GEO releases (`inst_info` given, or `geo.releases`) are streamed into the cache by `pertdit.data.geo_stream`;
every cached dataset is opened with `X` memory-mapped (`pertdit.data.h5ad_io.read_h5ad_mapped`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import anndata as ad

from pertdit.data.h5ad_io import read_h5ad_mapped, write_quietly
from pertdit.data.preprocess import PreprocessConfig, preprocess
from pertdit.errors import DataError

log = logging.getLogger(__name__)
CACHE_VERSION = 4  # 4: uns records the transform's target total (pertdit predict on basal profiles)
GEO_CACHE_VERSION = 3  # 3: uns records the prnet transform's target total, as CACHE_VERSION 4 does


def _fingerprint(path: str | Path | None) -> list | None:
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        raise DataError(f"data file not found: {p} (set paths.data_dir or the PERTDIT_DATA environment variable)")
    stat = p.stat()
    return [str(p.resolve()), stat.st_size, int(stat.st_mtime)]


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


def load_dataset(expression: str | Path | None = None, compounds: str | Path | None = None,
                 preprocess_config: PreprocessConfig | dict | None = None, cache_dir: str | Path | None = None,
                 inst_info: str | Path | None = None, pert_info: str | Path | None = None,
                 geo: Mapping[str, Any] | None = None) -> ad.AnnData:
    """The preprocessed dataset AnnData, read from `cache_dir` when the same inputs were processed before.

    A GEO release (`inst_info` given, or `geo` = the `data.geo` node with `releases`) is streamed into the
    cache (`pertdit.data.geo_stream`); the cached dataset is opened with `X` memory-mapped.
    """
    cfg = preprocess_config if isinstance(preprocess_config, PreprocessConfig) else PreprocessConfig(
        **(preprocess_config or {}))
    if geo is not None and geo.get("releases") or inst_info is not None:
        return _load_geo(expression, inst_info, pert_info, compounds, cfg, cache_dir, geo or {})
    if expression is None:
        raise DataError("no dataset given: set data.expression (a GCT, GCTX or .h5ad file) or data.geo.releases")
    key_parts = {"version": CACHE_VERSION, "files": [_fingerprint(p) for p in (expression, compounds, inst_info,
                                                                                 pert_info)],
                 "config": _config_parts(cfg)}
    key = hashlib.sha256(json.dumps(key_parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
    cached = Path(cache_dir) / "datasets" / f"{Path(expression).stem}-{key}.h5ad" if cache_dir else None
    adata = _read_cached(cached, key)
    if adata is not None:
        return adata
    adata = preprocess(read_source(expression, inst_info, pert_info), compounds, cfg, source=str(expression))
    adata.uns["pertdit"]["cache_key"] = key
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".tmp{os.getpid()}")
        try:
            write_quietly(adata, tmp)
            os.replace(tmp, cached)
        finally:
            tmp.unlink(missing_ok=True)
    return adata


def _config_parts(cfg: PreprocessConfig) -> dict:
    return {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in asdict(cfg).items()}


def _read_cached(cached: Path | None, key: str) -> ad.AnnData | None:
    """The cached dataset when `cached` exists and carries `key`, else None (an unreadable file is rebuilt)."""
    if cached is None or not cached.is_file():
        return None
    try:
        adata = read_h5ad_mapped(cached)
        if adata.uns.get("pertdit", {}).get("cache_key") == key:
            log.info("dataset from cache %s", cached)
            return adata
    except Exception as exc:  # corrupt cache: rebuild, and say so
        log.warning("dataset cache %s unreadable (%s); rebuilding", cached, exc)
    return None


def _load_geo(expression, inst_info, pert_info, compounds, cfg: PreprocessConfig, cache_dir,
              geo: Mapping[str, Any]) -> ad.AnnData:
    """Stream GEO release(s) into the dataset cache (once per inputs and options) and open the result."""
    from pertdit.data.geo_release import GeoRelease
    from pertdit.data.geo_stream import StreamOptions, preprocess_geo
    from pertdit.data.landmarks import LANDMARK_FILE

    if geo.get("releases"):
        releases = [GeoRelease.from_config(node) for node in geo["releases"]]
    else:
        releases = [GeoRelease(level3=str(expression), inst_info=str(inst_info),
                               pert_info=None if pert_info is None else str(pert_info))]
    options = StreamOptions(**{k: geo[k] for k in ("chunk_profiles", "landmarks") if geo.get(k) is not None})
    if cache_dir is None:
        raise DataError("data=geo streams the releases into the dataset cache: set paths.cache_dir "
                        "(or PERTDIT_CACHE)")
    key_parts = {"version": GEO_CACHE_VERSION, "config": _config_parts(cfg), "landmarks": options.landmarks,
                 "compounds": _fingerprint(compounds),
                 "landmark_list": hashlib.sha256(LANDMARK_FILE.read_bytes()).hexdigest(),
                 "releases": [{"name": r.label, "files": [_fingerprint(p) for p in r.files()]} for r in releases]}
    key = hashlib.sha256(json.dumps(key_parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
    cached = Path(cache_dir) / "datasets" / f"{'+'.join(r.label for r in releases)}-{key}.h5ad"
    adata = _read_cached(cached, key)
    if adata is None:
        preprocess_geo(releases, cached, compounds, config=cfg, options=options, uns={"cache_key": key})
        adata = read_h5ad_mapped(cached)
    return adata
