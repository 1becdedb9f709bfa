"""Small Hydra tasks behind `pertdit data` and `pertdit embed`."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from pertdit.data.h5ad_io import write_dataset_h5ad
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
    write_dataset_h5ad(adata, out)
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
    """Precompute the drug representation of every (SMILES, dose) pair of the dataset into the cache.

    `embed.download_only=true` (`pertdit embed --download-only`): only fetch the representation's pre-trained
    weights into the Hugging Face cache (on a machine that reaches the Hub) and stop. `embed.verify=true`
    (`--verify`): also checksum an existing cache entry (rebuilt if it changed).
    """
    from pertdit.perturbation import embed_dataset

    options = cfg.get("embed") or {}
    representation = instantiate(cfg.perturbation)  # resolves (and, online, downloads) pre-trained weights
    if options.get("download_only"):
        weights = {name: str(getattr(representation, attribute)) for name, attribute in
                   (("encoder", "encoder_path"),) if hasattr(representation, attribute)}
        describer = getattr(representation, "describer", None)
        if getattr(describer, "path", None) is not None:
            weights["captioner"] = str(describer.path)
        for name, path in weights.items():
            print(f"{name}: {path}")
        if not weights:
            print(f"{representation.name}: no pre-trained weights to download")
        substitution = getattr(representation, "substitution", None)
        if substitution:
            print(f"warning: {substitution['requested']} could not be had: {substitution['reason']}")
        return {"weights": weights}
    dm = instantiate(cfg.data, split=instantiate(cfg.split), representation=None, _recursive_=False)
    path = embed_dataset(dm.load(), representation, Path(cfg.paths.cache_dir) / "embeddings",
                         verify=bool(options.get("verify", False)))
    print(f"embeddings ({representation.cache_key()}): {path}")
    return {"path": str(path)}


def organ_report(adata, split) -> str:
    """Which organs of the dataset have enough treated profiles for an organ hold-out (split=organ)."""
    summary = organ_summary(adata, load_cell_organs(split.cell_organs), split.min_organ_cell_lines,
                            split.min_organ_profiles)
    return (f"organs (for split=organ; at least {split.min_organ_cell_lines} cell line(s) and "
            f"{split.min_organ_profiles} treated profiles):\n{format_organ_summary(summary)}")
