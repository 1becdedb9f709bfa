"""Small Hydra tasks behind `pertdit data` and `pertdit embed`."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from pertdit.data.organs import format_organ_summary, load_cell_organs, organ_summary


def data_task(cfg: DictConfig) -> dict:
    """Preprocess the configured dataset, form the split, print what was kept and why every other profile was
    dropped (per source), and write `dataset.h5ad`."""
    from pertdit.data.filters import format_accounting

    dm = instantiate(cfg.data, split=instantiate(cfg.split), representation=None, _recursive_=False)
    adata = dm.load()
    column = dm.split.apply(adata)
    report = adata.uns["pertdit"].get("preprocess", {})
    out = Path(cfg.paths.run_dir) / "dataset.h5ad"
    out.parent.mkdir(parents=True, exist_ok=True)
    adata.write_h5ad(out)
    obs = adata.obs
    treated = ~obs["is_control"].to_numpy(bool)
    print(f"dataset: {adata.n_obs} profiles x {adata.n_vars} genes "
          f"({int((~treated).sum())} controls, {obs.loc[treated, 'pert_id'].nunique()} compounds, "
          f"{obs['cell_id'].nunique()} cell lines), transform {adata.uns['pertdit'].get('transform')}")
    if "profiles" in report:
        print("profiles read, kept and dropped (by reason), per source:")
        print(format_accounting(report["profiles"]))
    for reason in ("dropped_pert_types", "dropped_control_kinds"):
        if len(report.get(reason, {})):
            print(f"{reason.replace('_', ' ')}: {dict(report[reason])}")
    for reason in ("invalid_smiles", "too_few_observations", "dose_not_positive"):
        dropped = list(report.get(reason, []))
        print(f"dropped for {reason.replace('_', ' ')}: {len(dropped)} {dropped}")
    if "pairing" in report:
        print(f"control pairing: {dict(report['pairing'])}")
    if "time" in obs:
        kept = obs.loc[treated].groupby(["source", "time"], observed=True).agg(
            treated=("pert_id", "size"), compounds=("pert_id", "nunique"), cell_lines=("cell_id", "nunique"))
        print("treated profiles per source and time (h):")
        print(kept.to_string())
    print(f"split {column}: {adata.obs[column].value_counts().to_dict()}")
    print(organ_report(adata, dm.split))
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


def organ_report(adata, split) -> str:
    """Which organs of the dataset have enough treated profiles for an organ hold-out (split=organ)."""
    summary = organ_summary(adata, load_cell_organs(split.cell_organs), split.min_organ_cell_lines,
                            split.min_organ_profiles)
    return (f"organs (for split=organ; at least {split.min_organ_cell_lines} cell line(s) and "
            f"{split.min_organ_profiles} treated profiles):\n{format_organ_summary(summary)}")
