"""DEG case study (the paper's figure 4A): top up/down DEGs per drug, PCC(lnFC) on them, paired comparison.

1. `top_degs(adata)`: for the drugs with the most samples, scanpy's `rank_genes_groups` of each drug against
   the vehicle controls on the already-log data (`use_raw=False`, no normalisation, no log1p); the top
   `n_up` genes with a positive score and the top `n_down` with a negative one, as a long table.
2. `deg_pcc(pred, degs)`: per drug, pearson(true lnFC, predicted lnFC) over that drug's DEGs, where
   lnFC = mean over the drug's samples of (profile - paired control) (a PRED.h5ad: X, layers truth/control).
3. `compare_methods(a, b)`: paired t-test (scipy `ttest_rel`) of two methods' per-drug PCCs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse, stats

from pertdit.errors import DataError
from pertdit.metrics.measures import group_means, pearson_rows

log = logging.getLogger(__name__)

DEG_COLUMNS: tuple[str, ...] = ("drug", "direction", "rank", "gene", "score", "lnfc", "pval_adj", "n_samples")


def _dense(matrix) -> np.ndarray:
    return np.asarray(matrix.toarray() if sparse.issparse(matrix) else matrix, dtype=np.float64)


def top_degs(adata: ad.AnnData, groupby: str = "drug", n_up: int = 25, n_down: int = 25,
             n_drugs: int | None = 10, reference: str = "control", layer: str | None = None,
             method: str = "t-test", min_samples: int = 2) -> pd.DataFrame:
    """Top up/down DEGs of the `n_drugs` groups of `obs[groupby]` with the most samples, each vs `reference`.

    `adata` holds log-scale profiles in X (or `layer`), reference rows labelled `reference` (the dataset's
    vehicle controls are `drug == "control"`). Groups with fewer than `min_samples` rows are left out; ties in
    size are broken by name. Returns one row per DEG with columns `DEG_COLUMNS`: direction `up` / `down`,
    rank 1 = strongest, scanpy's score and adjusted p-value (Benjamini-Hochberg), and lnFC = mean(group) -
    mean(reference). An up gene has score > 0 and lnFC > 0, a down gene both < 0.
    """
    import scanpy as sc

    if groupby not in adata.obs:
        raise DataError(f"obs has no column {groupby!r} (columns: {list(adata.obs.columns)})")
    labels = adata.obs[groupby].astype(str).to_numpy()
    if not (labels == reference).any():
        raise DataError(f"no reference rows: obs[{groupby!r}] has no {reference!r} (the vehicle controls)")
    sizes = pd.Series(labels[labels != reference]).value_counts()
    sizes = sizes[sizes >= min_samples]
    groups = sorted(sizes.index, key=lambda g: (-sizes[g], g))[:n_drugs]
    if not groups:
        raise DataError(f"no group of obs[{groupby!r}] has >= {min_samples} samples besides {reference!r}")
    keep = np.isin(labels, [*groups, reference])
    values = adata.layers[layer] if layer is not None else adata.X
    light = ad.AnnData(X=_dense(values[keep] if sparse.issparse(values) else np.asarray(values)[keep]),
                       obs=pd.DataFrame({groupby: pd.Categorical(labels[keep])},
                                        index=adata.obs_names[keep].astype(str)),
                       var=pd.DataFrame(index=adata.var_names.astype(str)))
    light.uns["log1p"] = {"base": None}  # natural-log data: tells scanpy not to assume anything else
    sc.tl.rank_genes_groups(light, groupby, groups=groups, reference=reference, method=method, use_raw=False,
                            n_genes=light.n_vars, corr_method="benjamini-hochberg")
    result = light.uns["rank_genes_groups"]
    group_labels = light.obs[groupby].to_numpy()
    reference_mean = light.X[group_labels == reference].mean(axis=0)
    tables = []
    for group in groups:
        names = np.asarray(result["names"][group]).astype(str)
        scores = np.asarray(result["scores"][group], dtype=np.float64)
        shift = light.X[group_labels == group].mean(axis=0) - reference_mean
        lnfc = shift[light.var_names.get_indexer(names)]
        up = np.flatnonzero((scores > 0) & (lnfc > 0))[:n_up]  # names come sorted by score, highest first
        down = np.flatnonzero((scores < 0) & (lnfc < 0))[::-1][:n_down]
        for direction, picked in (("up", up), ("down", down)):
            tables.append(pd.DataFrame({
                "drug": group, "direction": direction, "rank": np.arange(1, len(picked) + 1),
                "gene": names[picked], "score": scores[picked], "lnfc": lnfc[picked],
                "pval_adj": np.asarray(result["pvals_adj"][group], dtype=np.float64)[picked],
                "n_samples": int(sizes[group]),
            }))
    return pd.concat(tables, ignore_index=True)[list(DEG_COLUMNS)]


def truth_with_controls(pred: ad.AnnData, groupby: str = "drug", reference: str = "control") -> ad.AnnData:
    """The true profiles of a PRED AnnData plus its distinct paired controls labelled `reference`: the input
    `top_degs` needs to find DEGs of the test drugs."""
    truth = _dense(pred.layers["truth"])
    controls = np.unique(_dense(pred.layers["control"]), axis=0)
    labels = [*pred.obs[groupby].astype(str), *([reference] * len(controls))]
    obs = pd.DataFrame({groupby: labels}, index=[*pred.obs_names.astype(str),
                                                  *(f"{reference}_{i}" for i in range(len(controls)))])
    var = pd.DataFrame(index=pred.var_names.astype(str))
    return ad.AnnData(X=np.vstack([truth, controls]), obs=obs, var=var)


def drug_lnfc(pred: ad.AnnData, source: str = "pred", groupby: str = "drug",
              relu: bool | None = None) -> pd.DataFrame:
    """(groups x genes) mean over each group's samples of (profile - paired control) of a PRED AnnData.

    source `pred` (X; ReLU first when `relu`, default: as recorded in `uns["pertdit"]["relu_predictions"]`)
    or `truth` (`layers["truth"]`); the control is `layers["control"]`.
    """
    if source not in ("pred", "truth"):
        raise ValueError(f"source must be 'pred' or 'truth', got {source!r}")
    for layer in ("truth", "control") if source == "truth" else ("control",):
        if layer not in pred.layers:
            raise DataError(f"prediction AnnData has no layers[{layer!r}] "
                            f"(layers: {list(pred.layers.keys())})")
    values = _dense(pred.layers["truth"] if source == "truth" else pred.X)
    if source == "pred":
        if relu is None:
            relu = bool(pred.uns.get("pertdit", {}).get("relu_predictions", False))
        if relu:
            values = np.maximum(values, 0.0)
    labels = pred.obs[groupby].astype(str).to_numpy()
    names, codes = np.unique(labels, return_inverse=True)
    means = group_means(codes, values - _dense(pred.layers["control"]))
    return pd.DataFrame(means, index=pd.Index(names, name=groupby), columns=pred.var_names.astype(str))


def deg_pcc(pred: ad.AnnData, degs: pd.DataFrame, groupby: str = "drug",
            relu: bool | None = None) -> pd.DataFrame:
    """Per drug of `degs`: pearson(true lnFC, predicted lnFC) over its DEGs (both directions).

    Returns columns drug, pcc (NaN where either lnFC is constant), n_genes, n_samples; drugs of `degs`
    without samples in `pred` are left out (and logged).
    """
    truth = drug_lnfc(pred, "truth", groupby)
    predicted = drug_lnfc(pred, "pred", groupby, relu=relu)
    counts = pred.obs[groupby].astype(str).value_counts()
    drugs = list(dict.fromkeys(degs["drug"].astype(str)))
    missing = [d for d in drugs if d not in truth.index]
    if missing:
        log.info("deg_pcc: %d drug(s) with DEGs have no predictions: %s", len(missing), missing)
    rows = []
    for drug in (d for d in drugs if d in truth.index):
        genes = degs.loc[degs["drug"].astype(str) == drug, "gene"].astype(str).to_numpy()
        t = truth.loc[drug, genes].to_numpy()[None]
        p = predicted.loc[drug, genes].to_numpy()[None]
        rows.append({"drug": drug, "pcc": float(pearson_rows(t, p)[0]), "n_genes": len(genes),
                     "n_samples": int(counts[drug])})
    return pd.DataFrame(rows, columns=["drug", "pcc", "n_genes", "n_samples"])


@dataclass(frozen=True)
class PairedTest:
    """A paired t-test of method a vs b over n matched drugs."""

    statistic: float
    pvalue: float
    n: int
    mean_a: float
    mean_b: float

    @property
    def mean_difference(self) -> float:
        return self.mean_a - self.mean_b


def compare_methods(a: pd.DataFrame | Sequence[float], b: pd.DataFrame | Sequence[float], column: str = "pcc",
                    on: str = "drug") -> PairedTest:
    """Paired t-test (scipy `ttest_rel`) of two methods' per-drug values.

    Tables (from `deg_pcc`) are matched on `on`; plain sequences are matched by position. Pairs with a NaN
    on either side are dropped.
    """
    if isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame):
        merged = a[[on, column]].merge(b[[on, column]], on=on, suffixes=("_a", "_b"))
        x, y = merged[f"{column}_a"].to_numpy(float), merged[f"{column}_b"].to_numpy(float)
    else:
        x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        if x.shape != y.shape:
            raise ValueError(f"paired values need one length, got {x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        raise DataError(f"a paired t-test needs >= 2 matched drugs with values, got {int(ok.sum())}")
    result = stats.ttest_rel(x[ok], y[ok])
    return PairedTest(statistic=float(result.statistic), pvalue=float(result.pvalue), n=int(ok.sum()),
                      mean_a=float(x[ok].mean()), mean_b=float(y[ok].mean()))
