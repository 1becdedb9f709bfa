"""Raw L1000 AnnData -> the dataset AnnData of the data contract (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from pertdit.data.compounds import canonical_smiles, load_compound_table
from pertdit.data.pairing import pair_controls
from pertdit.data.transforms import apply_transform
from pertdit.errors import DataError

log = logging.getLogger(__name__)

REQUIRED_OBS = ("pert_type", "pert_id", "cell_id")
DOSE_COLUMNS = ("dose", "pert_dose")
PLATE_COLUMNS = ("plate", "det_plate", "rna_plate")
SMILES_OBS_COLUMNS = ("smiles", "canonical_smiles")


@dataclass
class PreprocessConfig:
    """Options of `preprocess` (one Hydra node: `data.preprocess`)."""

    transform: str = "prnet"
    min_observations: int = 5
    keep_pert_types: Sequence[str] = ("trt_cp",)
    control_pert_types: Sequence[str] = ("ctl_vehicle",)
    seed: int = 0
    genes: Sequence[str] | None = None
    extra: dict = field(default_factory=dict)


def _first_column(obs: pd.DataFrame, names: Sequence[str]) -> str | None:
    return next((c for c in names if c in obs.columns), None)


def check_finite(adata: ad.AnnData, source: str = "input") -> None:
    """Raise DataError naming the profiles with NaN or infinite values."""
    X = np.asarray(adata.X)
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        names = list(adata.obs_names[rows[:5]])
        raise DataError(f"{source}: {int(bad.sum())} NaN/infinite values in {len(rows)} profile(s), e.g. {names}; "
                        "remove or impute those profiles before preprocessing")


def align_genes(adata: ad.AnnData, genes: Sequence[str], source: str = "input") -> ad.AnnData:
    """Reorder genes to `genes`; DataError naming the missing ones when they are not all present."""
    genes = list(genes)
    missing = [g for g in genes if g not in adata.var_names]
    if missing:
        raise DataError(f"{source}: {len(missing)} of {len(genes)} expected genes are missing, e.g. {missing[:10]}; "
                        "the data must measure the same genes as the model (landmark genes by symbol)")
    return adata[:, genes].copy()


def _obs_table(adata: ad.AnnData, compounds: pd.DataFrame | None) -> pd.DataFrame:
    obs = adata.obs
    missing = [c for c in REQUIRED_OBS if c not in obs.columns]
    dose_col = _first_column(obs, DOSE_COLUMNS)
    if missing or dose_col is None:
        raise DataError(f"profile metadata lacks {missing + ([] if dose_col else ['pert_dose'])}; "
                        f"it has {list(obs.columns)[:20]}")
    out = pd.DataFrame(index=obs.index.astype(str))
    for col in REQUIRED_OBS:
        out[col] = obs[col].astype(str).to_numpy()
    out["pert_iname"] = obs["pert_iname"].astype(str).replace({"nan": ""}).to_numpy() if "pert_iname" in obs else ""
    plate_col = _first_column(obs, PLATE_COLUMNS)
    out["plate"] = obs[plate_col].astype(str).to_numpy() if plate_col else "plate0"
    out["dose"] = pd.to_numeric(obs[dose_col], errors="coerce").to_numpy(dtype=float)
    if compounds is not None:
        out["smiles_raw"] = out["pert_id"].map(compounds["smiles"]).fillna("").to_numpy()
    else:
        smiles_col = _first_column(obs, SMILES_OBS_COLUMNS)
        out["smiles_raw"] = obs[smiles_col].astype(str).to_numpy() if smiles_col else ""
    return out


def preprocess(adata: ad.AnnData, compounds: str | Path | pd.DataFrame | None = None,
               config: PreprocessConfig | None = None, source: str = "input") -> ad.AnnData:
    """Filter, annotate, transform and pair an L1000 AnnData (profiles x genes).

    Keeps `keep_pert_types` and vehicle controls, maps compounds to SMILES, drops invalid/missing SMILES and
    compounds with fewer than `min_observations` profiles (both reported by name in `uns['pertdit']`),
    applies the transform, pairs controls and writes the group keys.
    """
    cfg = config or PreprocessConfig()
    if isinstance(compounds, (str, Path)):
        compounds = load_compound_table(compounds)
    check_finite(adata, source)
    if cfg.genes is not None:
        adata = align_genes(adata, cfg.genes, source)
    obs = _obs_table(adata, compounds)
    is_control = obs["pert_type"].isin(list(cfg.control_pert_types)).to_numpy()
    is_treated = obs["pert_type"].isin(list(cfg.keep_pert_types)).to_numpy()
    report: dict = {"source": source, "n_input": int(adata.n_obs),
                    "dropped_pert_types": obs.loc[~(is_control | is_treated), "pert_type"].value_counts().to_dict()}

    canonical = {s: canonical_smiles(s) or "" for s in pd.unique(obs["smiles_raw"])}  # once per SMILES
    smiles = obs["smiles_raw"].map(canonical)
    bad_smiles = is_treated & (smiles == "").to_numpy()
    report["invalid_smiles"] = sorted(
        f"{pid} ({name})" if name and name != pid else pid
        for pid, name in obs.loc[bad_smiles, ["pert_id", "pert_iname"]].drop_duplicates().itertuples(index=False))
    keep_treated = is_treated & ~bad_smiles

    counts = obs.loc[keep_treated, "pert_id"].value_counts()
    rare = counts[counts < cfg.min_observations]
    report["too_few_observations"] = {str(k): int(v) for k, v in rare.items()}
    keep_treated &= ~obs["pert_id"].isin(rare.index).to_numpy()
    bad_dose = keep_treated & ~(obs["dose"].to_numpy() > 0)
    if bad_dose.any():
        raise DataError(f"{source}: {int(bad_dose.sum())} treated profiles have no positive dose, "
                        f"e.g. {list(obs.index[bad_dose][:5])}")
    for reason in ("invalid_smiles", "too_few_observations"):
        if report[reason]:
            log.warning("dropped %d compound(s) for %s: %s", len(report[reason]), reason.replace("_", " "),
                        ", ".join(map(str, report[reason]))[:500])

    keep = keep_treated | is_control
    if not keep_treated.any():
        raise DataError(f"{source}: no treated profile left after filtering ({report})")
    out = ad.AnnData(X=np.asarray(adata.X[keep], dtype=np.float32), var=adata.var.copy(),
                     uns={"pertdit": dict(adata.uns.get("pertdit", {}))})
    obs = obs.loc[keep].copy()
    obs["smiles"] = np.where(is_control[keep], "", smiles[keep])
    obs["is_control"] = is_control[keep]
    obs.loc[obs["is_control"], "dose"] = 0.0
    obs["drug"] = np.where(obs["is_control"], "control",
                           np.where(obs["pert_iname"].astype(str).str.len() > 0, obs["pert_iname"], obs["pert_id"]))
    obs = obs.drop(columns="smiles_raw")
    obs["paired_control_index"] = pair_controls(obs, seed=cfg.seed)
    add_group_keys(obs)
    out.obs = obs
    apply_transform(out, cfg.transform)
    report["n_output"] = int(out.n_obs)
    report["n_controls"] = int(out.obs["is_control"].sum())
    report["n_compounds"] = int(out.obs.loc[~out.obs["is_control"], "pert_id"].nunique())
    out.uns["pertdit"]["preprocess"] = _h5ad_safe(report)
    return out


def add_group_keys(obs: pd.DataFrame) -> None:
    """Write the grouping keys `cov_drug_dose`, `cov_drug`, `drug_dose` (and keep `drug`) in place."""
    dose = obs["dose"].map(lambda d: f"{d:g}")
    obs["cov_drug_dose"] = obs["cell_id"].astype(str) + "_" + obs["drug"].astype(str) + "_" + dose
    obs["cov_drug"] = obs["cell_id"].astype(str) + "_" + obs["drug"].astype(str)
    obs["drug_dose"] = obs["drug"].astype(str) + "_" + dose


def _h5ad_safe(report: dict) -> dict:
    """Nested report with only types h5ad can store (lists of str, ints, dicts)."""
    safe: dict = {}
    for key, value in report.items():
        if isinstance(value, dict):
            safe[key] = {str(k): int(v) if isinstance(v, (int, np.integer)) else str(v) for k, v in value.items()}
        elif isinstance(value, list):
            safe[key] = np.asarray([str(v) for v in value], dtype=object) if value else np.asarray([], dtype=str)
        else:
            safe[key] = value
    return safe
