"""Organ hold-out: every cell line of one organ unseen in training; the methods of Figure 2 (and the mean_shift
reference) as bars of the 10 measures per organ, mean +- SD over seeds. Sweeps
pertdit/conf/experiment/organ_holdout.yaml: the paper's organs (lung, kidney, pancreas) at full scale; at small
scale the organs that the configured data can hold out (`pertdit data` lists them: on the shipped collection
skin, colon and breast), chosen from the data before anything trains."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments.captions import figure_caption
from experiments.figure2 import METHODS
from experiments.plan import SweepPlan, compose_job, load_data, one_job
from experiments.plots import plot_bars
from pertdit.data.organs import load_cell_organs, organ_summary

EXPERIMENTS = ["organ_holdout"]
SMALL_OVERRIDES = {"organ_holdout": ["seed=0"]}
REUSE_METHODS = False
AXIS = "split.organ"


def organs_with_enough_data(plan: SweepPlan) -> pd.DataFrame:
    """`organ_summary` of the sweep's data, with the split's thresholds (split.min_organ_cell_lines,
    split.min_organ_profiles) and cell-organ table."""
    cfg = compose_job(one_job(plan.experiment, plan.params, plan.fixed))
    return organ_summary(load_data(cfg), load_cell_organs(cfg.split.cell_organs), cfg.split.min_organ_cell_lines,
                         cfg.split.min_organ_profiles)


def adapt_small_plan(plan: SweepPlan, given: set[str] = frozenset()) -> None:
    """At small scale, sweep the organs the data can hold out (unless the user named organs)."""
    if AXIS not in plan.params or AXIS in given:
        return
    summary = organs_with_enough_data(plan)
    enough = summary[summary["holdout_ok"]]
    if enough.empty:
        plan.skipped.append(f"{AXIS}: no organ of this data has enough data for a hold-out")
        plan.params[AXIS] = []
        return
    plan.notes.append("organs with enough data: " + "; ".join(
        f"{r.organ} ({r.n_cell_lines} cell lines, {r.n_profiles} profiles)" for r in enough.itertuples()))
    plan.notes.append("not enough: " + "; ".join(f"{r.organ} ({r.why_not})"
                                                  for r in summary[~summary["holdout_ok"]].itertuples()))
    plan.params[AXIS] = list(enough["organ"])


def plot(table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """organ_holdout.{png,pdf}."""
    rows = table[table["experiment"] == "organ_holdout"]
    return plot_bars(rows, Path(out_dir) / "organ_holdout", METHODS, "Organ hold-out (mean +- SD over seeds)",
                     figure_caption(rows)) if len(rows) else []
