"""Small Hydra tasks behind `pertdit data` and `pertdit embed`."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from pertdit.data.h5ad_io import write_dataset_h5ad


def data_task(cfg: DictConfig) -> dict:
    """Preprocess the configured dataset, form the split, print a summary and write `dataset.h5ad`."""
    dm = instantiate(cfg.data, split=instantiate(cfg.split), representation=None, _recursive_=False)
    adata = dm.load()
    column = dm.split.apply(adata)
    report = adata.uns["pertdit"].get("preprocess", {})
    out = Path(cfg.paths.run_dir) / "dataset.h5ad"
    write_dataset_h5ad(adata, out)
    print(f"dataset: {adata.n_obs} profiles x {adata.n_vars} genes "
          f"({int(adata.obs['is_control'].sum())} controls, {adata.obs.loc[~adata.obs['is_control'], 'pert_id'].nunique()} compounds, "
          f"{adata.obs['cell_id'].nunique()} cell lines), transform {adata.uns['pertdit'].get('transform')}")
    for reason in ("invalid_smiles", "too_few_observations"):
        dropped = list(report.get(reason, []))
        print(f"dropped for {reason.replace('_', ' ')}: {len(dropped)} {dropped}")
    print(f"split {column}: {adata.obs[column].value_counts().to_dict()}")
    print(f"written: {out}")
    return {"n_obs": adata.n_obs}


def embed_task(cfg: DictConfig) -> dict:
    """Precompute the drug representation of every (SMILES, dose) pair of the dataset into the cache."""
    from pertdit.perturbation import embed_dataset

    dm = instantiate(cfg.data, split=instantiate(cfg.split), representation=None, _recursive_=False)
    representation = instantiate(cfg.perturbation)
    path = embed_dataset(dm.load(), representation, Path(cfg.paths.cache_dir) / "embeddings")
    print(f"embeddings ({representation.cache_key()}): {path}")
    return {"path": str(path)}
