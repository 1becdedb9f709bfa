"""Build the harmonised L1000 bundle from the raw collection: one compressed `.h5ad`, the basal profiles,
the provenance and the licence texts, written to a folder (atomically: temp files, then renames).

`python -m pertdit.data.bundle build [--src DIR] [--out DIR] [--include LJP009_A375_24H]`
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from tqdm import tqdm

from pertdit.data.compounds import load_compound_table
from pertdit.data.preprocess import h5ad_safe
from pertdit.data.readers import read_dataset
from pertdit.errors import DataError

from .catalog import ATTRIBUTION, SOURCES, SUPPORT, SourceFile, default_sources, source_by_name
from .genes import align_to_landmarks, landmark_var, load_landmarks
from .harmonise import harmonise_source
from .provenance import write_licences, write_provenance

log = logging.getLogger(__name__)
BUNDLE_FILE = "l1000_bundle.h5ad"
BASAL_FILE = "l1000_basal.h5ad"
BUNDLE_VERSION = 1
#: gzip level of the matrices (measured: float32 Level-3 values compress to ~66% at any level >= 4).
COMPRESSION = {"compression": "gzip", "compression_opts": 9}
OBS_COLUMNS = ("cell_id", "pert_id", "pert_iname", "pert_iname_file", "pert_type", "control_kind", "dose",
               "time", "plate", "well", "source", "smiles", "source_control")


def _support(name: str) -> SourceFile:
    return next(s for s in SUPPORT if s.name == name)


def select_sources(include: Iterable[str] = (), exclude: Iterable[str] = ()) -> list[SourceFile]:
    """The shipped sources plus `include` (opt-in ones such as LJP009_A375_24H), minus `exclude`."""
    names = set(default_sources()) | {source_by_name(n).name for n in include}
    names -= {source_by_name(n).name for n in exclude}
    return [s for s in SOURCES if s.name in names]


def build_expression(src: Path, sources: Sequence[SourceFile]) -> ad.AnnData:
    """Every source read, harmonised and stacked: AnnData (profiles x 978 landmarks, raw Level-3 float32)."""
    landmarks = load_landmarks(src / _support("landmark_genes").file)
    compounds = load_compound_table(src / _support("compounds").file)
    blocks, records = [], {}
    for source in tqdm(sources, desc="bundle sources", unit="file", disable=None):
        if source.caveat:
            log.warning("including %s: %s", source.name, source.caveat)
        raw = read_dataset(src / source.file)
        block = harmonise_source(raw, source, landmarks, compounds)
        blocks.append(block)
        records[source.name] = block.record
    obs = pd.concat([b.obs.loc[:, list(OBS_COLUMNS)] for b in blocks])
    if obs.index.has_duplicates:
        repeated = list(obs.index[obs.index.duplicated()][:5])
        raise DataError(f"profile ids repeat across sources, e.g. {repeated}; the bundle needs unique ids")
    X = np.concatenate([b.X for b in blocks]).astype(np.float32)
    adata = ad.AnnData(X=X, obs=obs, var=landmark_var(landmarks))
    adata.uns["bundle"] = h5ad_safe({
        "version": BUNDLE_VERSION,
        "attribution": ATTRIBUTION,
        "sources": records,
        "tables": {s.name: s.provenance() for s in SUPPORT},
        "obs_schema": list(OBS_COLUMNS),
        "values": "raw Level-3 log2 expression as stored in the source files (float32); not transformed",
    })
    return adata


def build_basal(src: Path) -> ad.AnnData:
    """The basal (consensus control) profiles of 164 cell lines + their mean, genes in landmark order."""
    landmarks = load_landmarks(src / _support("landmark_genes").file)
    source = _support("basal")
    raw = read_dataset(src / source.file)
    X, alignment = align_to_landmarks(raw, landmarks, source.file)
    obs = pd.DataFrame({"cell_id": raw.obs["cell_id"].astype(str).to_numpy(),
                        "profile": raw.obs["profile"].astype(str).to_numpy()},
                       index=pd.Index(raw.obs_names.astype(str), dtype=object))
    basal = ad.AnnData(X=X, obs=obs, var=landmark_var(landmarks))
    basal.uns["bundle"] = h5ad_safe({"attribution": ATTRIBUTION, "source": source.provenance(),
                                     "genes_matched_by": alignment.by, "genes_unmapped": alignment.unmapped})
    return basal


def write_h5ad_atomic(adata: ad.AnnData, path: Path) -> None:
    """Compressed `.h5ad` written to a temp file and renamed, so an interrupted build leaves no half file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    logger = logging.getLogger("anndata")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        adata.write_h5ad(tmp, **COMPRESSION)
        os.replace(tmp, path)
    finally:
        logger.setLevel(level)
        tmp.unlink(missing_ok=True)


def build_bundle(src: str | Path, out: str | Path, include: Iterable[str] = (),
                 exclude: Iterable[str] = ()) -> dict[str, Path]:
    """Write the bundle of `src` (the raw collection) into `out`; returns the written paths by role."""
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise DataError(f"raw collection not found: {src} (give --src, or set PERTDIT_DATA to ../shared/data)")
    sources = select_sources(include, exclude)
    out.mkdir(parents=True, exist_ok=True)
    expression = build_expression(src, sources)
    paths = {"expression": out / BUNDLE_FILE, "basal": out / BASAL_FILE}
    write_h5ad_atomic(expression, paths["expression"])
    write_h5ad_atomic(build_basal(src), paths["basal"])
    paths["licences"] = write_licences(src, out, sources)
    paths["provenance"] = write_provenance(out, expression, sources)
    return paths
