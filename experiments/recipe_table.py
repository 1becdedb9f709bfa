"""The tables of docs/recipe.md from the study's CSV (experiments/recipe_study.py --summary).

Decision rule, fixed before any result was read: the primary score is the per-sample PCC(lnFC) of the mean of
8 samples on all validation rows (references: their point prediction). A variant is kept when its paired
difference from the baseline (same seed) is positive in every seed run, or its mean difference exceeds the SD
of the baseline's scores over seeds; and its per-sample R2 is not lower than the baseline's by more than the
baseline's seed SD. A variant with fewer than 3 seeds is reported, never kept.
Alternatives of one choice (flow matching and v prediction both set what the network predicts, so they do
not combine): when several are kept, the larger mean paired difference wins; a difference smaller than the
baseline's seed SD is a tie, broken by the smaller departure from the baseline (fewer changed keys). This tie
rule was added at 17:56 UTC on 2026-11-30, after flow matching had 3 seeds and v prediction 2, before the
third v seed was read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pertdit.compare.report import mean_sd

SCORES = [("pcc_lnfc_per_sample", "PCC(lnFC) per sample"), ("r2_per_sample", "R2 per sample"),
          ("pcc_lnfc_drug", "PCC(lnFC) drug"), ("r2_drug", "R2 drug")]
PRIMARY, GUARD = "pcc_lnfc_per_sample", "r2_per_sample"
BASELINE = ("baseline", "quick", 8)


def _mean_sd(values: pd.Series) -> str:
    """Mean ± SD over seeds (`pertdit.compare.report.mean_sd`); "-" when nothing was measured."""
    values = values.dropna()
    if values.empty:
        return "-"
    return mean_sd(values.mean(), values.std(ddof=1) if len(values) > 1 else float("nan"))


def _per_seed(values: pd.Series) -> str:
    return " / ".join(f"{v:.3f}" for v in values)


def scores_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (variant, evaluation, samples): per-seed and mean ± SD of each score, budget used."""
    rows = []
    for (variant, evaluation, k), part in df.groupby(["variant", "eval", "samples"], sort=False):
        part = part.sort_values("seed")
        row = {"variant": variant, "factor": part["factor"].iloc[0], "evaluation": evaluation, "samples": k,
               "seeds": _per_seed(part["seed"].astype(float)).replace(".000", "")}
        for column, label in SCORES:
            row[f"{label} per seed"] = _per_seed(part[column])
            row[label] = _mean_sd(part[column])
        row["steps"] = _per_seed(part["steps"].astype(float)).replace(".000", "") if part["steps"].notna().all() else "-"
        row["CPU s (train)"] = f"{part['cpu_seconds'].mean():.0f}" if part["cpu_seconds"].notna().any() else "-"
        row["CPU s (eval)"] = f"{part['eval_cpu_seconds'].mean():.0f}"
        rows.append(row)
    return pd.DataFrame(rows)


def decisions(df: pd.DataFrame) -> pd.DataFrame:
    """The decision rule of the module doc for every variant's primary evaluation (its first, k = 8)."""
    base = df[(df["variant"] == BASELINE[0]) & (df["eval"] == BASELINE[1]) & (df["samples"] == BASELINE[2])]
    base = base.set_index("seed")
    base_sd = base[PRIMARY].std(ddof=1) if len(base) > 1 else np.nan
    guard_sd = base[GUARD].std(ddof=1) if len(base) > 1 else np.nan
    rows = []
    for variant, part in df[(df["variant"] != BASELINE[0]) & (df["factor"] != "reference")].groupby(
            "variant", sort=False):
        first_eval = part["eval"].iloc[0]
        part = part[(part["eval"] == first_eval) & (part["samples"] == 8)].set_index("seed")
        seeds = sorted(set(part.index) & set(base.index))
        diff = part.loc[seeds, PRIMARY] - base.loc[seeds, PRIMARY]
        guard = part.loc[seeds, GUARD] - base.loc[seeds, GUARD]
        complete = len(seeds) >= 3
        helps = bool(complete and ((diff > 0).all() or diff.mean() > base_sd))
        safe = bool(complete and guard.mean() >= -guard_sd)
        rows.append({"variant": variant, "seeds": len(seeds), "ΔPCC per seed": " / ".join(f"{v:+.3f}" for v in diff),
                     "ΔPCC mean": f"{diff.mean():+.3f}" if len(diff) else "-",
                     "baseline seed SD": f"{base_sd:.3f}", "ΔR2 mean": f"{guard.mean():+.3f}" if len(guard) else "-",
                     "kept": "yes" if helps and safe else ("not decided (< 3 seeds)" if not complete else "no")})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """A markdown table of a frame (no extra dependency)."""
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def print_summary(df: pd.DataFrame) -> None:
    if df.empty:
        print("no rows yet")
        return
    print(markdown(scores_table(df)))
    print()
    print(markdown(decisions(df)))
    calib = [c for c in df.columns if c.startswith("cover")]
    if calib:
        table = df[df[calib].notna().any(axis=1)].groupby(["variant", "eval", "samples", "spread"], sort=False)[
            calib].agg(lambda v: _mean_sd(v))
        print()
        print(markdown(table.reset_index()))
