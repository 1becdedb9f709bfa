"""Raw L1000 AnnData -> the dataset AnnData of the data contract (docs/ARCHITECTURE.md, docs/data.md).

Steps: harmonise the metadata (`pertdit.data.schema`), keep the selected sources, drop profiles with a
reason each (`pertdit.data.filters`; every profile is accounted for per source), pair controls
(`pertdit.data.pairing`), write the group keys and apply the transform (recorded in `uns`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from pertdit.data.compounds import canonical_smiles, load_compound_table
from pertdit.data.filters import filter_profiles, profile_accounting
from pertdit.data.pairing import PairingConfig, assign_controls
from pertdit.data.schema import harmonise_obs
from pertdit.data.transforms import apply_transform
from pertdit.errors import DataError

log = logging.getLogger(__name__)

SMILES_OBS_COLUMNS = ("smiles", "canonical_smiles", "SMILES")
COMPOUND_NAMES = ("harmonised", "file")
DATASET_COLUMNS = ("pert_type", "pert_id", "cell_id", "pert_iname", "plate", "dose", "time", "source",
                   "control_kind", "smiles")


def _plain(value):
    """OmegaConf containers -> tuples / dicts (so the config hashes and compares as plain data)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, (list, tuple)) or (hasattr(value, "__iter__") and not isinstance(value, (str, bytes))):
        return tuple(_plain(v) for v in value)
    return value


@dataclass
class PreprocessConfig:
    """Options of `preprocess` (one Hydra node: `data.preprocess`; `sources`/`times` also `data.*`).

    `min_observations`: a compound's profiles (over every source kept) needed to keep it;
    `min_observations_per_source` overrides it for the profiles of a source (one-well-per-compound
    screens need 1). `control_kinds`: which controls count as vehicle (None: every `control_pert_types`
    profile). `compound_names`: `harmonised` (the bundle's one name per compound) or `file` (each file's
    own name). `sources`: the sources to keep (None: all); `times`: hours to keep (None: all).
    `gene_order`: a bundle source whose gene order and symbols to use (None: the bundle's landmark order).
    """

    transform: str = "prnet"
    min_observations: int = 5
    min_observations_per_source: dict = field(default_factory=dict)
    keep_pert_types: Sequence[str] = ("trt_cp",)
    control_pert_types: Sequence[str] = ("ctl_vehicle",)
    control_kinds: Sequence[str] | None = None
    compound_names: str = "harmonised"
    sources: Sequence[str] | None = None
    times: Sequence[float] | None = None
    pairing: PairingConfig | dict = field(default_factory=PairingConfig)
    gene_order: str | None = None
    seed: int = 0
    genes: Sequence[str] | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("keep_pert_types", "control_pert_types", "control_kinds", "sources", "times", "genes"):
            value = getattr(self, name)
            value = _plain(value)
            setattr(self, name, None if value is None else (value,) if isinstance(value, str) else tuple(value))
        self.times = None if self.times is None else tuple(float(t) for t in self.times)
        self.min_observations_per_source = {str(k): int(v) for k, v in
                                            dict(self.min_observations_per_source or {}).items()}
        if not isinstance(self.pairing, PairingConfig):
            pairing = _plain(self.pairing or {})
            keep_own = pairing.get("keep_own", True)
            self.pairing = PairingConfig(levels=tuple(pairing.get("levels", PairingConfig.levels)),
                                         keep_own=keep_own if isinstance(keep_own, bool) else tuple(keep_own))
        if self.compound_names not in COMPOUND_NAMES:
            raise DataError(f"data.preprocess.compound_names={self.compound_names!r}: choose one of {COMPOUND_NAMES}")


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


def source_label(source: str) -> str:
    """Short name of an input file: its collection name when it is one of the bundle's files, else its stem."""
    from pertdit.data.bundle.catalog import source_name_of_file

    path = Path(str(source))
    return source_name_of_file(path.name) or path.stem or str(source)


def profile_obs(adata: ad.AnnData, compounds: pd.DataFrame | None, cfg: PreprocessConfig,
                source: str) -> pd.DataFrame:
    """Harmonised obs plus `smiles_raw` (from the compound table by `pert_id`, else the file's SMILES)."""
    obs = harmonise_obs(adata.obs, source_label(source), where=source)
    if cfg.compound_names == "file" and "pert_iname_file" in adata.obs:
        obs["pert_iname"] = adata.obs["pert_iname_file"].astype(str).to_numpy()
    if compounds is not None:
        obs["smiles_raw"] = obs["pert_id"].map(compounds["smiles"]).fillna("").to_numpy()
    else:
        column = next((c for c in SMILES_OBS_COLUMNS if c in adata.obs.columns), None)
        obs["smiles_raw"] = adata.obs[column].astype(str).to_numpy() if column else ""
    return obs


def _opt_in_hint(names: Sequence[str]) -> str:
    """How to get a collection source that the shipped bundle leaves out (empty when none is named)."""
    from pertdit.data.bundle.catalog import SOURCES

    opt_in = [s.name for s in SOURCES if not s.shipped and s.name in names]
    if not opt_in:
        return ""
    return (f". {opt_in} are left out of the shipped bundle (licence, see docs/data.md): build one with "
            f"`python -m pertdit.data.bundle build --include {' '.join(opt_in)} --out DIR` and set "
            "data.expression=DIR/l1000_bundle.h5ad")


def _select_sources(adata: ad.AnnData, obs: pd.DataFrame, cfg: PreprocessConfig) -> tuple[ad.AnnData, pd.DataFrame]:
    available = list(pd.unique(obs["source"]))
    named = {"data.sources": list(cfg.sources or ()),
             "data.preprocess.min_observations_per_source": list(cfg.min_observations_per_source),
             "data.preprocess.pairing.keep_own": ([] if isinstance(cfg.pairing.keep_own, bool)
                                                  else list(cfg.pairing.keep_own))}
    for key, names in named.items():
        unknown = [n for n in names if n not in available]
        if unknown:
            raise DataError(f"{key} names source(s) {unknown} that the data does not have; sources: "
                            f"{available}{_opt_in_hint(unknown)}")
    if cfg.sources is None:
        return adata, obs
    keep = obs["source"].isin(list(cfg.sources)).to_numpy()
    return adata[np.flatnonzero(keep)], obs.loc[keep]


def preprocess(adata: ad.AnnData, compounds: str | Path | pd.DataFrame | None = None,
               config: PreprocessConfig | None = None, source: str = "input") -> ad.AnnData:
    """Filter, annotate, transform and pair an L1000 AnnData (profiles x genes).

    Keeps `keep_pert_types` and vehicle controls, maps compounds to SMILES, drops profiles for the reasons
    of `pertdit.data.filters` (every one counted per source in `uns['pertdit']['preprocess']['profiles']`,
    compounds named), pairs controls, writes the group keys and applies the transform.
    """
    cfg = config or PreprocessConfig()
    if isinstance(compounds, (str, Path)):
        compounds = load_compound_table(compounds)
    check_finite(adata, source)
    if cfg.gene_order is not None:
        from pertdit.data.bundle.genes import in_file_gene_order

        adata = in_file_gene_order(adata, cfg.gene_order)
    if cfg.genes is not None:
        adata = align_genes(adata, cfg.genes, source)
    adata, obs = _select_sources(adata, profile_obs(adata, compounds, cfg, source), cfg)
    canonical = {s: canonical_smiles(s) or "" for s in pd.unique(obs["smiles_raw"])}  # each structure once
    smiles = obs["smiles_raw"].map(canonical)
    minimum = {s: cfg.min_observations_per_source.get(s, cfg.min_observations) for s in pd.unique(obs["source"])}
    result = filter_profiles(obs, smiles, cfg.keep_pert_types, cfg.control_pert_types, cfg.control_kinds,
                             cfg.times, minimum)
    report: dict = {"source": source, "n_input": int(adata.n_obs), **result.details,
                    "profiles": profile_accounting(obs["source"].to_numpy(), result),
                    "min_observations": minimum}
    for reason in ("invalid_smiles", "too_few_observations", "dose_not_positive"):
        if report[reason]:
            log.warning("dropped %d %s for %s: %s", len(report[reason]),
                        "profile(s)" if reason == "dose_not_positive" else "compound(s)", reason.replace("_", " "),
                        ", ".join(map(str, report[reason]))[:500])
    keep = result.keep
    if not (keep & ~result.is_control).any():
        raise DataError(f"{source}: no treated profile left after filtering ({report['profiles']['total']})")

    out = ad.AnnData(X=np.asarray(adata.X[np.flatnonzero(keep)], dtype=np.float32), var=adata.var.copy(),
                     uns={"pertdit": dict(adata.uns.get("pertdit", {}))})
    kept = obs.loc[keep].copy()
    kept["smiles"] = np.where(result.is_control[keep], "", smiles[keep])
    kept["is_control"] = result.is_control[keep]
    kept["drug"] = np.where(kept["is_control"], "control",
                            np.where(kept["pert_iname"].astype(str).str.len() > 0, kept["pert_iname"], kept["pert_id"]))
    pairing = assign_controls(kept, seed=cfg.seed, config=cfg.pairing)
    kept = kept.loc[:, [*DATASET_COLUMNS, "is_control", "drug"]]
    kept["paired_control_index"] = pairing.control_index
    kept["pairing"] = pairing.labels
    add_group_keys(kept)
    out.obs = kept
    apply_transform(out, cfg.transform)
    report["pairing"] = {str(k): int(v) for k, v in kept["pairing"].value_counts().sort_index().items()}
    report["own_pairing_replaced"] = pairing.own_replaced
    if pairing.own_replaced:
        log.warning("%d profile(s) lost their file's own control (filtered out) and were re-paired: %s",
                    len(pairing.own_replaced), ", ".join(pairing.own_replaced)[:300])
    report["n_output"] = int(out.n_obs)
    report["n_controls"] = int(kept["is_control"].sum())
    report["n_compounds"] = int(kept.loc[~kept["is_control"], "pert_id"].nunique())
    out.uns["pertdit"]["preprocess"] = h5ad_safe(report)
    return out


def add_group_keys(obs: pd.DataFrame) -> None:
    """Write the grouping keys `cov_drug_dose`, `cov_drug`, `drug_dose` (and keep `drug`) in place.

    `cov_drug_dose_time` (cell, drug, dose, time) is written too, for replicate groups; the five measure
    groupings do not use it.
    """
    dose = obs["dose"].map(lambda d: f"{d:g}")
    obs["cov_drug_dose"] = obs["cell_id"].astype(str) + "_" + obs["drug"].astype(str) + "_" + dose
    obs["cov_drug"] = obs["cell_id"].astype(str) + "_" + obs["drug"].astype(str)
    obs["drug_dose"] = obs["drug"].astype(str) + "_" + dose
    if "time" in obs:
        time = obs["time"].map(lambda t: f"{t:g}h")
        obs["cov_drug_dose_time"] = obs["cov_drug_dose"] + "_" + time


def h5ad_safe(value):
    """Nested report with only types h5ad can store (dicts, str, numbers, arrays of str)."""
    if isinstance(value, Mapping):
        return {str(k): h5ad_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(value)
        if items and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                         for v in items):
            return np.asarray(items, dtype=np.float64)
        return np.asarray([str(v) for v in items], dtype=object) if items else np.asarray([], dtype=str)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return str(value) if value is not None else ""
