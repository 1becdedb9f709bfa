"""Calibration of predicted spreads: how often the truth falls inside the central 50 % / 90 % intervals.

A model that samples (the diffusion models: K samples per profile) or predicts a Gaussian (PRnet: mean and
variance; the `mean_shift` reference: the training residual SD per gene) gives, per profile and gene,
- `spread_sd`: the SD (samples: ddof = 1);
- `interval_<p>_lower` / `interval_<p>_upper`: the central p % interval. From samples: a Gaussian fit with
  the Student-t predictive correction, mean -/+ t_{K-1}((1 + p) / 2) sd sqrt(1 + 1/K), which holds a new draw
  from the samples' distribution with probability p when that distribution is Gaussian, for any K >= 2
  (K = 8 samples give too crude empirical quantiles). From a Gaussian: mean -/+ z((1 + p) / 2) sd;
- `pit`: the probability integral transform of the truth. From samples the randomised rank
  (number of samples below the truth + U(0, ties + 1)) / (K + 1), which is exactly Uniform(0, 1) when the
  truth is exchangeable with the samples (calibration), whatever their distribution; from a Gaussian
  Phi((truth - mean) / sd).
Two coverages follow, each with nominal level p: `gaussian` (truth inside the interval) and `pit` (PIT inside
[(1 - p) / 2, (1 + p) / 2], the rank-based, distribution-free one). Calibrated: coverage ~ p; below p: the
spread is too narrow (over-confident); above: too wide. docs/calibration.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

LEVELS: tuple[float, ...] = (0.5, 0.9)
INTERVALS = ("gaussian", "pit")


def level_name(level: float) -> str:
    """'50' for 0.5: the suffix of the interval layers."""
    return f"{round(100 * level):d}"


def spread_layer_names(levels: tuple[float, ...] = LEVELS) -> list[str]:
    """The PRED.h5ad layers of a spread: spread_sd, interval_<p>_lower/_upper per level, pit."""
    names = ["spread_sd"]
    for level in levels:
        names += [f"interval_{level_name(level)}_lower", f"interval_{level_name(level)}_upper"]
    return names + ["pit"]


def randomised_pit(samples: np.ndarray, truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, G) randomised rank of `truth` (N, G) among `samples` (K, N, G), in (0, 1)."""
    below = (samples < truth[None]).sum(0)
    ties = (samples == truth[None]).sum(0)
    return (below + rng.uniform(size=truth.shape) * (ties + 1)) / (samples.shape[0] + 1)


def sample_spread(samples: np.ndarray, truth: np.ndarray | None = None, levels: tuple[float, ...] = LEVELS,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """The spread layers (each (N, G) float32) of K >= 2 samples (K, N, G); `pit` only when `truth` is given."""
    samples = np.asarray(samples, dtype=np.float64)
    k = samples.shape[0]
    if k < 2:
        raise ValueError(f"a spread needs at least 2 samples per profile, got {k}")
    mean, sd = samples.mean(0), samples.std(0, ddof=1)
    layers = {"spread_sd": sd}
    for level in levels:
        half = stats.t.ppf((1 + level) / 2, df=k - 1) * sd * np.sqrt(1 + 1 / k)
        layers[f"interval_{level_name(level)}_lower"] = mean - half
        layers[f"interval_{level_name(level)}_upper"] = mean + half
    if truth is not None:
        layers["pit"] = randomised_pit(samples, np.asarray(truth, dtype=np.float64), np.random.default_rng(seed))
    return {name: value.astype(np.float32) for name, value in layers.items()}


def gaussian_spread(mean: np.ndarray, sd: np.ndarray, truth: np.ndarray | None = None,
                    levels: tuple[float, ...] = LEVELS) -> dict[str, np.ndarray]:
    """The spread layers of a Gaussian N(mean, sd^2) per entry (N, G); `sd` may broadcast (e.g. (G,))."""
    mean = np.asarray(mean, dtype=np.float64)
    sd = np.broadcast_to(np.asarray(sd, dtype=np.float64), mean.shape)
    layers = {"spread_sd": sd}
    for level in levels:
        half = stats.norm.ppf((1 + level) / 2) * sd
        layers[f"interval_{level_name(level)}_lower"] = mean - half
        layers[f"interval_{level_name(level)}_upper"] = mean + half
    if truth is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            layers["pit"] = stats.norm.cdf((np.asarray(truth, dtype=np.float64) - mean) / sd)
    return {name: np.asarray(value, dtype=np.float32) for name, value in layers.items()}


def inside(truth: np.ndarray, layers: dict[str, np.ndarray], interval: str, level: float) -> np.ndarray:
    """(N, G) bool: the truth inside the central `level` interval of kind `interval` (gaussian | pit)."""
    if interval == "gaussian":
        name = level_name(level)
        return (truth >= layers[f"interval_{name}_lower"]) & (truth <= layers[f"interval_{name}_upper"])
    if interval == "pit":
        pit = layers["pit"]
        return (pit >= (1 - level) / 2) & (pit <= (1 + level) / 2)
    raise ValueError(f"unknown interval kind {interval!r}; valid: {', '.join(INTERVALS)}")


def gene_coverage(truth: np.ndarray, layers: dict[str, np.ndarray], genes: list[str] | np.ndarray,
                  levels: tuple[float, ...] = LEVELS) -> pd.DataFrame:
    """Per gene: the fraction of profiles whose truth is inside each interval (columns gene, interval, level,
    nominal, coverage, n_profiles)."""
    truth = np.asarray(truth, dtype=np.float32)
    rows = []
    for interval in _available(layers):
        for level in levels:
            coverage = inside(truth, layers, interval, level).mean(0)
            rows.append(pd.DataFrame({"gene": np.asarray(genes).astype(str), "interval": interval, "level": level,
                                      "nominal": level, "coverage": coverage, "n_profiles": truth.shape[0]}))
    return pd.concat(rows, ignore_index=True)


def calibration_table(truth: np.ndarray, layers: dict[str, np.ndarray], levels: tuple[float, ...] = LEVELS,
                      source: str = "") -> pd.DataFrame:
    """One row per (interval kind, level): overall coverage, the spread of the per-gene coverages (10th,
    50th, 90th percentiles), the share of genes outside the 99 % binomial band around the nominal level, and
    the mean interval width (gaussian) and mean SD."""
    truth = np.asarray(truth, dtype=np.float32)
    n, g = truth.shape
    rows = []
    for interval in _available(layers):
        for level in levels:
            hit = inside(truth, layers, interval, level)
            per_gene = hit.mean(0)
            band = stats.norm.ppf(0.995) * np.sqrt(level * (1 - level) / n)
            name = level_name(level)
            width = (layers[f"interval_{name}_upper"] - layers[f"interval_{name}_lower"]).mean() \
                if interval == "gaussian" else np.nan
            rows.append({"interval": interval, "level": level, "nominal": level, "coverage": float(hit.mean()),
                         "gene_coverage_q10": float(np.quantile(per_gene, 0.1)),
                         "gene_coverage_median": float(np.median(per_gene)),
                         "gene_coverage_q90": float(np.quantile(per_gene, 0.9)),
                         "genes_outside_band": float((np.abs(per_gene - level) > band).mean()),
                         "mean_width": float(width), "mean_sd": float(layers["spread_sd"].mean()),
                         "n_profiles": n, "n_genes": g, "spread": source})
    return pd.DataFrame(rows)


def _available(layers: dict[str, np.ndarray]) -> list[str]:
    """The interval kinds the layers allow: gaussian always, pit when the layers hold it."""
    return ["gaussian", "pit"] if "pit" in layers else ["gaussian"]


@dataclass(frozen=True)
class PredictiveSpread:
    """What a model says about its uncertainty for a batch: K >= 2 `samples` (K, B, G) (diffusion), or a
    Gaussian `mean` and `sd` (B, G) per entry (PRnet's predicted variance; mean_shift's training residual SD).
    `layers(truth)` turns it into the spread layers of `sample_spread` / `gaussian_spread`."""

    samples: np.ndarray | None = None
    mean: np.ndarray | None = None
    sd: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.samples is None) == (self.mean is None or self.sd is None):
            raise ValueError("a PredictiveSpread holds either samples or a Gaussian mean and sd")

    @property
    def kind(self) -> str:
        """'samples' or 'gaussian': how the intervals were built (calibration.csv's `spread` column)."""
        return "samples" if self.samples is not None else "gaussian"

    def layers(self, truth: np.ndarray | None = None, seed: int = 0) -> dict[str, np.ndarray]:
        if self.samples is not None:
            return sample_spread(self.samples, truth, seed=seed)
        return gaussian_spread(self.mean, self.sd, truth)


def concat_layers(parts: list[dict[str, np.ndarray]], order: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Stack per-batch spread layers along profiles, then reorder the rows by `order` (an index array)."""
    if not parts:
        return {}
    stacked = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    return stacked if order is None else {name: value[order] for name, value in stacked.items()}


def prediction_calibration(adata, levels: tuple[float, ...] = LEVELS) -> pd.DataFrame | None:
    """The `calibration_table` of a PRED AnnData from its spread layers (None when it has none)."""
    names = [n for n in spread_layer_names(levels) if n != "pit"]
    if not all(name in adata.layers for name in names):
        return None
    layers = {name: np.asarray(adata.layers[name]) for name in [*names, "pit"] if name in adata.layers}
    source = str(adata.uns.get("pertdit", {}).get("spread", ""))
    return calibration_table(np.asarray(adata.layers["truth"]), layers, levels, source=source)


def write_calibration_csv(table: pd.DataFrame, path) -> "Path":
    """Write calibration.csv atomically (a temporary file, then renamed); returns the path."""
    import os
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    table.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def format_calibration(table: pd.DataFrame) -> str:
    """A few lines: per interval kind and level, the overall coverage against the nominal one and the spread of
    the per-gene coverages."""
    lines = [f"{'interval':<9} {'nominal':>7} {'coverage':>8} {'genes q10-q90':>14} {'mean sd':>8}"]
    for row in table.itertuples():
        lines.append(f"{row.interval:<9} {row.nominal:>7.2f} {row.coverage:>8.3f} "
                     f"{row.gene_coverage_q10:>6.3f}-{row.gene_coverage_q90:<7.3f} {row.mean_sd:>8.4f}")
    return "\n".join(lines)
