"""The written results of a comparison: CSV tables and one Markdown report (headline measures per test set
with the replicate ceiling, the budget table, the models against the reference and against the target, all
10 measures), each file written to a temporary name and renamed."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from pertdit.compare.summary import HEADLINE, TEST_SET_ORDER, ordered
from pertdit.metrics import GROUPINGS, METRICS

METRIC_NAMES = {"pcc_lnfc": "PCC(lnFC)", "r2": "R2"}
GROUPING_NAMES = {"per_sample": "per sample", "drug": "drug", "cov_drug": "cell x drug",
                  "drug_dose": "drug x dose", "cov_drug_dose": "cell x drug x dose"}


def measure_name(metric: str, grouping: str) -> str:
    return f"{METRIC_NAMES[metric]} {GROUPING_NAMES[grouping]}"


def mean_sd(mean: float, sd: float, digits: int = 3) -> str:
    """`0.612 ± 0.021`; the mean alone when the SD is undefined (one seed); `NaN` when undefined."""
    if mean is None or not math.isfinite(mean):
        return "NaN"
    if sd is None or not math.isfinite(sd):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(["\n".join(lines), *("| " + " | ".join(row) + " |" for row in rows)])


def write_atomic(path: Path, text: str) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def _cell(summary: pd.DataFrame, model: str, test_set: str, metric: str, grouping: str,
          column: str = "mean") -> tuple[float, float]:
    row = summary[(summary["model"] == model) & (summary["test_set"] == test_set)
                  & (summary["metric"] == metric) & (summary["grouping"] == grouping)]
    if not len(row):
        return float("nan"), float("nan")
    sd_column = "sd" if column == "mean" else column.replace("_mean", "_sd")
    return float(row[column].iloc[0]), float(row[sd_column].iloc[0])


def measures_table(summary: pd.DataFrame, ceiling: pd.DataFrame, test_set: str, models: list[str],
                   labels: dict[str, str], measures: list[tuple[str, str]], column: str = "mean") -> str:
    """Markdown: one row per model (`column`: its score, or `same_rows_mean` on the ceiling's rows), one column
    per measure (mean ± SD over seeds, the best model's in bold), and the replicate ceiling as the last row."""
    best = {}
    for metric, grouping in measures:
        values = [_cell(summary, m, test_set, metric, grouping, column)[0] for m in models]
        finite = [v for v in values if math.isfinite(v)]
        best[(metric, grouping)] = max(finite) if finite else None
    seeds = {m: int(summary.loc[(summary["model"] == m) & (summary["test_set"] == test_set), "seeds"].max())
             for m in models}
    rows = []
    for model in models:  # a model with fewer seeds than the others says how many it has
        row = [labels[model] + (f" ({seeds[model]} seed{'s' * (seeds[model] > 1)})"
                                if seeds[model] < max(seeds.values()) else "")]
        for metric, grouping in measures:
            mean, sd = _cell(summary, model, test_set, metric, grouping, column)
            text = mean_sd(mean, sd)
            row.append(f"**{text}**" if best[(metric, grouping)] is not None and mean == best[(metric, grouping)]
                       else text)
        rows.append(row)
    ceiling_row = ["*replicate ceiling*"]
    for metric, grouping in measures:
        part = ceiling[(ceiling["test_set"] == test_set) & (ceiling["metric"] == metric)
                       & (ceiling["grouping"] == grouping)]
        ceiling_row.append(f"*{mean_sd(float(part['mean'].iloc[0]), float(part['sd'].iloc[0]))}*" if len(part)
                           else "NaN")
    rows.append(ceiling_row)
    return markdown_table(["model", *(measure_name(m, g) for m, g in measures)], rows)


def test_set_heading(ceiling: pd.DataFrame, test_set: str) -> str:
    part = ceiling[ceiling["test_set"] == test_set]
    profiles = part[part["grouping"] == "per_sample"]
    if not len(profiles):
        return f"### {test_set}"
    total, replicated = float(profiles["profiles"].iloc[0]), float(profiles["ceiling_profiles"].iloc[0])
    return (f"### {test_set} ({total:.0f} test profiles, {replicated:.0f} of them with a replicate in the test "
            "set; mean over seeds)")


def budget_markdown(budget: pd.DataFrame) -> str:
    rows = []
    for row in budget.itertuples():
        limit = row.budget_cpu_seconds
        rows.append([row.label, f"{row.seeds}", "-" if limit is None or not math.isfinite(limit) else f"{limit:.0f}",
                     mean_sd(row.fit_cpu_seconds, row.fit_cpu_seconds_sd, 0),
                     mean_sd(row.fit_wall_seconds, row.fit_wall_seconds_sd, 0),
                     mean_sd(row.steps, row.steps_sd, 0), mean_sd(row.epochs, row.epochs_sd, 0),
                     f"{row.trainable_parameters:,}", row.stopped_by,
                     mean_sd(row.run_cpu_seconds, row.run_cpu_seconds_sd, 0),
                     mean_sd(row.run_wall_seconds, row.run_wall_seconds_sd, 0)])
    return markdown_table(["model", "seeds", "budget (CPU s)", "fit CPU s", "fit wall s", "optimiser steps", "epochs",
                           "trainable parameters", "stopped by (seeds)", "run CPU s (fit + test)",
                           "run wall s"], rows)


def reference_lines(versus: pd.DataFrame, labels: dict[str, str], reference: str) -> list[str]:
    """One line per (learned model, test set) that does not beat the reference on every headline measure."""
    lines = []
    for (test_set, model), part in versus.groupby(["test_set", "model"], sort=False):
        behind = part[part["beats_reference"] == False]  # noqa: E712 - None (undefined) is not "behind"
        if len(behind):
            measures = ", ".join(f"{measure_name(r.metric, r.grouping)} {r.model_mean:.3f} vs {r.reference_mean:.3f}"
                                 for r in behind.itertuples())
            lines.append(f"- {test_set}: {labels[model]} does not beat {reference} on {measures}")
    return lines or [f"- every learned model beats {reference} on every headline measure of every test set"]


def target_markdown(target: pd.DataFrame, labels: dict[str, str]) -> str:
    header = ["DiT", "against", "test set", *(f"Δ {measure_name(m, g)}" for m, g in HEADLINE), "target met"]
    rows = [[labels[r["dit"]], labels[r["against"]], r["test_set"],
             *(f"{r[f'{m}/{g}']:+.3f}" for m, g in HEADLINE), "yes" if r["met"] else "no"]
            for _, r in target.iterrows()]
    return markdown_table(header, rows)


def target_verdict(target: pd.DataFrame, labels: dict[str, str]) -> list[str]:
    lines = []
    for (dit, other), part in target.groupby(["dit", "against"], sort=False):
        met = part[part["met"]]["test_set"].tolist()
        verdict = "met on every test set" if len(met) == len(part) else (
            f"met on {met}" if met else "not met on any test set")
        lines.append(f"- {labels[dit]} against {labels[other]}: {verdict}")
    return lines


def write_report(out: Path, header: list[str], runs: pd.DataFrame, summary: pd.DataFrame,
                 ceiling: pd.DataFrame, budget: pd.DataFrame, versus: pd.DataFrame | None,
                 target: pd.DataFrame | None, reference: str, figures: list[Path]) -> Path:
    """Write runs.csv, summary.csv, budget.csv and results.md into `out`; return the Markdown's path."""
    out = Path(out)
    write_csv(runs, out / "runs.csv")
    write_csv(summary, out / "summary.csv")
    write_csv(budget, out / "budget.csv")
    models = list(dict.fromkeys(runs["model"]))
    labels = dict(zip(runs["model"], runs["label"]))
    test_sets = ordered(runs["test_set"], TEST_SET_ORDER)
    parts = [*header, "", "## Headline measures (mean ± SD over seeds; bold: the best model)", ""]
    for test_set in test_sets:
        parts += [test_set_heading(ceiling, test_set), "",
                  measures_table(summary, ceiling, test_set, models, labels, HEADLINE), ""]
    parts += ["## On the replicate ceiling's rows (test profiles with a replicate; the ceiling is replicate "
              "agreement, not an upper bound: docs/metrics.md)", ""]
    for test_set in test_sets:
        parts += [f"### {test_set}", "", measures_table(summary, ceiling, test_set, models, labels, HEADLINE,
                                                         column="same_rows_mean"), ""]
    parts += ["## Budget: what each model did with it (mean ± SD over seeds)", "", budget_markdown(budget), ""]
    if versus is not None and len(versus):
        parts += [f"## Against {reference} (headline measures, means over seeds)", "",
                  *reference_lines(versus, labels, reference), ""]
    if target is not None and len(target):
        parts += ["## Issue 13's target: the DiT ahead of PRnet on per-sample and drug-level PCC(lnFC) on every "
                  "test set without losing R2 (differences of means over seeds, DiT minus competitor)", "",
                  target_markdown(target, labels), "", *target_verdict(target, labels), ""]
    every = [(m, g) for m in METRICS for g in GROUPINGS]
    parts += ["## All 10 measures (mean ± SD over seeds)", ""]
    for test_set in test_sets:
        parts += [f"### {test_set}", "", measures_table(summary, ceiling, test_set, models, labels, every), ""]
    if figures:
        parts += ["## Figures", "", *(f"![{p.stem}]({p.name})" for p in figures if p.suffix == ".png"), ""]
    return write_atomic(out / "results.md", "\n".join(parts))
