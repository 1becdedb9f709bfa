"""Real multi-cell-line datasets built in tests from the shared L1000 files (until the harmonised collection
lands): every file is read with the project's readers, genes are aligned by Entrez id, `time` (h) is added."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from pertdit.data.preprocess import PreprocessConfig, preprocess
from pertdit.data.readers import read_gct, read_h5ad_dataset

A375 = "l1000_LJP005_A375_24H_level3_n377x978.gct"
MCF7 = "l1000_LJP005_MCF7_24H_level3_n10x978.gct"
PC3 = "l1000_LJP006_PC3_24H_level3_n10x978.gct"
LJP009 = "l1000_LJP009_A375_24H_level3_n371x978.gct"
SKBR3 = "l1000_LJP001-002_SKBR3_level3_n580x978.gct"
HT115 = "l1000_CPC006_HT115_6H_level3_n681x978_prnet.h5ad"
GENES = "l1000_landmark_genes.tsv"
COMPOUNDS = "l1000_compounds_all.tsv"


def _by_entrez(adata: ad.AnnData, genes: pd.DataFrame) -> ad.AnnData:
    """Genes in the order of the landmark table, named by Entrez id."""
    entrez = adata.var["entrez_id"].astype(str).to_numpy()
    adata = adata[:, pd.Index(entrez).get_indexer(genes["entrez_id"])].copy()
    adata.var_names = genes["entrez_id"].to_numpy()
    return adata


KEPT_OBS = ("cell_id", "pert_type", "pert_id", "pert_iname", "dose", "plate", "time")


def _gct(path: Path, genes: pd.DataFrame) -> ad.AnnData:
    adata = _by_entrez(read_gct(path), genes)
    adata.obs["dose"] = pd.to_numeric(adata.obs["pert_dose"], errors="coerce").to_numpy()
    adata.obs["plate"] = adata.obs["det_plate"].astype(str)
    adata.obs["time"] = pd.to_numeric(adata.obs["pert_time"], errors="coerce").to_numpy()
    return adata


def _ht115(data_dir: Path, genes: pd.DataFrame) -> ad.AnnData:
    """PRnet's HT115 file: symbols -> Entrez via the landmark table, plates from `rna_plate` (re-paired there)."""
    adata = read_h5ad_dataset(data_dir / HT115)
    entrez_of = dict(zip(genes["prnet_symbol"], genes["entrez_id"]))
    adata.var["entrez_id"] = [entrez_of[s] for s in adata.var_names]
    adata = _by_entrez(adata, genes)
    adata.obs["plate"] = adata.obs["rna_plate"].astype(str)
    adata.obs["time"] = adata.obs["pert_time"].astype(float)
    adata.obs = adata.obs.drop(columns=["paired_control_index"])
    return adata


@cache
def _build(data_dir: Path, names: tuple[str, ...], min_observations: int) -> ad.AnnData:
    genes = pd.read_csv(data_dir / GENES, sep="\t", dtype={"entrez_id": str})
    parts = [_ht115(data_dir, genes) if name == HT115 else _gct(data_dir / name, genes) for name in names]
    for name, part in zip(names, parts):
        part.obs = part.obs[list(KEPT_OBS)].copy()
        part.obs_names = [f"{name}:{i}" for i in part.obs_names]
    raw = ad.concat(parts, merge="first")
    time = raw.obs["time"].astype(float)
    config = PreprocessConfig(transform="none", min_observations=min_observations)
    adata = preprocess(raw, data_dir / COMPOUNDS, config)
    adata.obs["time"] = time.loc[adata.obs_names].to_numpy(dtype=float)
    assert np.isfinite(adata.obs.loc[~adata.obs["is_control"], "time"]).all()
    return adata


def real_dataset(data_dir: Path, *names: str, min_observations: int = 2) -> ad.AnnData:
    """The preprocessed dataset of the named shared files (Level-3 log2, transform none), a fresh copy."""
    return _build(Path(data_dir), tuple(names), min_observations).copy()
