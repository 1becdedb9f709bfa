"""The numbers of a comparison: every run's measures in one tidy table, their mean and SD over seeds with the
replicate ceiling, what each model did with its budget, and how the models stand against the reference
baseline and against issue 13's target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pertdit.metrics import GROUPINGS, METRICS

#: the measures the headline tables show: (metric, grouping)
HEADLINE = [("pcc_lnfc", "per_sample"), ("pcc_lnfc", "drug"), ("r2", "per_sample"), ("r2", "drug")]
#: test sets in the order of the paper (others after, in the order met)
TEST_SET_ORDER = ["drug_unseen", "cell_line_unseen", "both_unseen"]
RUN_COLUMNS = ["model", "label", "learned", "seed", "test_set", "metric", "grouping", "mean", "n_groups",
               "n_nan", "ceiling_mean", "model_same_rows_mean", "ceiling_profiles", "unreplicated_profiles",
               "run_dir"]


def ordered(values, order: list[str]) -> list[str]:
    """`values` (unique, in the order met) with those in `order` first, in that order."""
    seen = list(dict.fromkeys(values))
    return [v for v in order if v in seen] + [v for v in seen if v not in order]


def run_table(records: list[dict[str, Any]], out: Path) -> pd.DataFrame:
    """One row per (run, test set, measure): the run's metrics_<set>.csv with the run's identity."""
    rows = []
    for record in records:
        run_dir = Path(out) / "runs" / f"{record['model']}_seed{record['seed']}"
        for test_set, name in record["metrics"].items():
            table = pd.read_csv(run_dir / name)
            for column in RUN_COLUMNS:
                if column not in table:
                    table[column] = np.nan
            rows.append(table.assign(model=record["model"], label=record["label"], learned=record["learned"],
                                     seed=record["seed"], test_set=test_set, run_dir=str(run_dir)))
    if not rows:
        return pd.DataFrame(columns=RUN_COLUMNS)
    return pd.concat(rows, ignore_index=True)[RUN_COLUMNS]


def _sd(values: pd.Series) -> float:
    """Sample SD (ddof 1) over seeds; NaN for one seed."""
    return float(values.std(ddof=1)) if values.notna().sum() > 1 else float("nan")


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (test set, model, measure): mean and SD over seeds of the model's score, of the model on the ceiling's
    rows, and of the replicate ceiling, with the number of seeds and of test profiles."""
    keys = ["test_set", "model", "label", "metric", "grouping"]
    groups = runs.groupby(keys, sort=False)
    table = groups.agg(mean=("mean", "mean"), sd=("mean", _sd), seeds=("seed", "nunique"),
                       n_groups=("n_groups", "mean"),
                       same_rows_mean=("model_same_rows_mean", "mean"), same_rows_sd=("model_same_rows_mean", _sd),
                       ceiling_mean=("ceiling_mean", "mean"), ceiling_sd=("ceiling_mean", _sd),
                       ceiling_profiles=("ceiling_profiles", "mean")).reset_index()
    table["test_set"] = pd.Categorical(table["test_set"], ordered(table["test_set"], TEST_SET_ORDER))
    table["grouping"] = pd.Categorical(table["grouping"], [g for g in GROUPINGS])
    table["metric"] = pd.Categorical(table["metric"], list(METRICS))
    models = list(dict.fromkeys(runs["model"]))
    table["model"] = pd.Categorical(table["model"], models)
    table = table.sort_values(["test_set", "model", "metric", "grouping"]).reset_index(drop=True)
    for column in ("test_set", "model", "metric", "grouping"):
        table[column] = table[column].astype(str)
    return table


def ceiling_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The replicate ceiling per (test set, measure), mean and SD over seeds. The ceiling depends on the test
    rows only, so every model of a seed has the same one; taken from each seed's first model."""
    first = runs.drop_duplicates(["test_set", "seed", "metric", "grouping"])
    table = first.groupby(["test_set", "metric", "grouping"], sort=False).agg(
        mean=("ceiling_mean", "mean"), sd=("ceiling_mean", _sd), seeds=("seed", "nunique"),
        profiles=("n_groups", "mean"), ceiling_profiles=("ceiling_profiles", "mean")).reset_index()
    return table


def budget_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Per model: what its fit used (mean and SD over seeds of CPU and wall seconds, optimiser steps, epochs),
    its trainable parameters, why the fits stopped, and the CPU and wall seconds of the whole run (fit + test)."""
    rows = []
    for record in records:
        compute = record.get("compute") or {}
        rows.append({"model": record["model"], "label": record["label"], "seed": record["seed"],
                     "budget_cpu_seconds": compute.get("cpu_budget_seconds"),
                     "fit_cpu_seconds": compute.get("cpu_seconds", 0.0),
                     "fit_wall_seconds": compute.get("wall_seconds", 0.0), "steps": compute.get("steps", 0),
                     "epochs": compute.get("epochs", 0),
                     "trainable_parameters": compute.get("trainable_parameters", 0),
                     "stopped_by": compute.get("stopped_by", "no training") if compute else "no training",
                     "run_cpu_seconds": record["run_cpu_seconds"], "run_wall_seconds": record["run_wall_seconds"]})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    numeric = ["fit_cpu_seconds", "fit_wall_seconds", "steps", "epochs", "run_cpu_seconds", "run_wall_seconds"]
    out = []
    for model, part in frame.groupby("model", sort=False):
        row = {"model": model, "label": part["label"].iloc[0], "seeds": len(part),
               "budget_cpu_seconds": part["budget_cpu_seconds"].iloc[0],
               "trainable_parameters": int(part["trainable_parameters"].max())}
        for column in numeric:
            values = part[column].astype(float)
            row[column], row[f"{column}_sd"] = float(values.mean()), _sd(values)
        counts = part["stopped_by"].value_counts()
        row["stopped_by"] = ", ".join(f"{reason} x{count}" for reason, count in counts.items())
        out.append(row)
    return pd.DataFrame(out)


def score(summary: pd.DataFrame, model: str, test_set: str, metric: str, grouping: str) -> float:
    """The mean over seeds of one model's measure on one test set (NaN when absent)."""
    row = summary[(summary["model"] == model) & (summary["test_set"] == test_set) & (summary["metric"] == metric)
                  & (summary["grouping"] == grouping)]
    return float(row["mean"].iloc[0]) if len(row) else float("nan")


def versus_reference(summary: pd.DataFrame, learned: list[str], reference: str,
                     measures: list[tuple[str, str]] = HEADLINE) -> pd.DataFrame:
    """Per (learned model, test set, measure): its mean and the reference's, and whether it is above."""
    rows = []
    for test_set in ordered(summary["test_set"], TEST_SET_ORDER):
        for model in learned:
            for metric, grouping in measures:
                mine, theirs = (score(summary, m, test_set, metric, grouping) for m in (model, reference))
                rows.append({"test_set": test_set, "model": model, "metric": metric, "grouping": grouping,
                             "model_mean": mine, "reference_mean": theirs,
                             "beats_reference": bool(mine > theirs) if np.isfinite([mine, theirs]).all() else None})
    return pd.DataFrame(rows)


def target_table(summary: pd.DataFrame, dits: list[str], against: list[str]) -> pd.DataFrame:
    """Issue 13's target per (DiT, competitor): on every test set, per-sample and drug-level PCC(lnFC) above the
    competitor's and per-sample and drug-level R2 not below it. One row per (DiT, competitor, test set) with the
    four comparisons, and `met` when all four hold."""
    rows = []
    for dit in dits:
        for other in against:
            for test_set in ordered(summary["test_set"], TEST_SET_ORDER):
                row: dict[str, Any] = {"dit": dit, "against": other, "test_set": test_set}
                checks = []
                for metric, grouping in HEADLINE:
                    mine, theirs = (score(summary, m, test_set, metric, grouping) for m in (dit, other))
                    row[f"{metric}/{grouping}"] = mine - theirs
                    checks.append(mine > theirs if metric == "pcc_lnfc" else mine >= theirs)
                row["met"] = bool(all(checks))
                rows.append(row)
    return pd.DataFrame(rows)
