"""`pertdit demo` / `make demo`: the collection benchmark's split on real data, trivial baselines, a quick
CPU-sized CrossDiT and PRnet, each trained once and scored on the drug-unseen and cell-line-unseen test sets.

Data and split (docs/experiments.md, "make demo"): the shipped L1000 collection (`data=bundle`: 45 cell lines),
`split=unseen` with HT115 held out and 20 % of the drugs (by SMILES), `split.test_set=all`: one training per
model scored on drug_unseen (held-out drugs in seen cell lines), cell_line_unseen (HT115, seen drugs) and
both_unseen. Every model runs as `pertdit train model=<model> preset=cpu_quick <the split>
callbacks.compute_budget.cpu_minutes=2` would (one folder per model under --out).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir

from pertdit.config import CONFIG_DIR, register_resolvers
from pertdit.metrics import format_table

# Every model at the quick CPU recipe, a config users can name (pertdit/conf/preset/cpu_quick.yaml): DiTs at
# d_model 32, one layer, sampled with the quick sampler chosen on validation rows (docs/diffusion.md); PRnet and
# ChemCPA at their defaults (early stopping on the validation MSE).
QUICK_MODEL = ["preset=cpu_quick"]
CONSOLE = ["trainer.enable_progress_bar=false"]
#: the collection benchmark (docs/experiments.md): HT115 and 20 % of the drugs held out, all three test sets
BENCHMARK_SPLIT = ["data=bundle", "split=unseen", "split.test_cells=[HT115]", "split.drug_fraction=0.2",
                   "split.test_set=all"]
#: the test sets the demo prints (both_unseen is written too: metrics_both_unseen.csv)
SHOWN_TEST_SETS = ["drug_unseen", "cell_line_unseen"]
#: the common training budget of the project's comparisons (CPU-minutes of the training process)
CPU_MINUTES = 2.0
#: the measures of the printed summary (every measure is in each run's metrics_<set>.csv)
SUMMARY_MEASURES = [("r2", "per_sample"), ("r2", "cov_drug"), ("r2", "drug"), ("pcc_lnfc", "per_sample"),
                    ("pcc_lnfc", "cov_drug"), ("pcc_lnfc", "drug")]


def demo_overrides(model: str, seed: int = 0, cpu_minutes: float = CPU_MINUTES) -> list[str]:
    """The overrides of a `pertdit demo` run of `model`: the benchmark split, the cpu_quick preset, the CPU
    budget, no progress bar."""
    return [f"model={model}", *BENCHMARK_SPLIT, f"seed={seed}", *QUICK_MODEL,
            f"callbacks.compute_budget.cpu_minutes={cpu_minutes}", "logger=[]", *CONSOLE]


def compose_run(overrides: list[str], run_dir: Path):
    """The train config of `overrides`, writing into `run_dir`."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=[*overrides, f"paths.run_dir={run_dir}"])


def run_config(overrides: list[str], run_dir: Path) -> pd.DataFrame:
    """Compose the train config with `overrides`, train/test it into `run_dir`, return its metrics table."""
    from pertdit.train import train

    train(compose_run(overrides, run_dir))
    return pd.read_csv(run_dir / "metrics.csv")


def run_test_sets(overrides: list[str], run_dir: Path) -> dict[str, pd.DataFrame]:
    """Train/test a `split.test_set=all` run into `run_dir`; its metrics table per test set."""
    from pertdit.train import train

    cfg = compose_run(overrides, run_dir)
    train(cfg)
    return {name: pd.read_csv(run_dir / f"metrics_{name}.csv") for name in ("drug_unseen", "cell_line_unseen",
                                                                            "both_unseen")}


def compute_line(run_dir: Path) -> str:
    """What a fit used, from compute.json: CPU seconds, optimiser steps, epochs, why it stopped."""
    path = run_dir / "compute.json"
    if not path.is_file():
        return "no training (statistics of the training rows)"
    c = json.loads(path.read_text())
    if not c.get("steps"):
        return "no training (statistics of the training rows)"
    return (f"{c['cpu_seconds']:.0f} CPU-s, {c['steps']} optimiser steps, {c['epochs']} epochs, "
            f"stopped by {c.get('stopped_by', '?')}, {c['trainable_parameters']:,} parameters")


def summary_table(combined: pd.DataFrame, test_set: str, models: list[str]) -> pd.DataFrame:
    """Rows: the summary measures; columns: each model's mean, then the replicate ceiling of the test set."""
    rows = combined[combined["test_set"] == test_set]
    wide = rows.pivot_table(index=["metric", "grouping"], columns="model", values="mean", sort=False)
    wide = wide.reindex([m for m in SUMMARY_MEASURES if m in wide.index])[models]
    ceiling = rows.drop_duplicates(["metric", "grouping"]).set_index(["metric", "grouping"])
    if "ceiling_mean" in ceiling.columns:
        wide["replicate ceiling"] = ceiling["ceiling_mean"].reindex(wide.index)
    return wide


def run_demo(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pertdit demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["control", "mean_shift", "crossdit", "prnet"],
                        help="model configs; each runs with preset=cpu_quick (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="redraws held-out drugs, validation rows, init")
    parser.add_argument("--cpu-minutes", type=float, default=CPU_MINUTES,
                        help="CPU budget of each training (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"))
    args = parser.parse_args(argv)
    tables, fits = [], {}
    for model in args.models:
        run_dir = args.out / model
        by_set = run_test_sets(demo_overrides(model, args.seed, args.cpu_minutes), run_dir)
        fits[model] = compute_line(run_dir)
        for test_set, table in by_set.items():
            tables.append(table.assign(model=model, test_set=test_set))
            if test_set in SHOWN_TEST_SETS:
                print(f"\n== {model}, {test_set} ==\n{format_table(table)}")
    combined = pd.concat(tables, ignore_index=True)
    tmp = args.out / "metrics_all.csv.tmp"
    combined.to_csv(tmp, index=False)
    tmp.replace(args.out / "metrics_all.csv")
    print("\ntraining (each model once, then scored on every test set):")
    for model, line in fits.items():
        print(f"  {model}: {line}")
    for test_set in SHOWN_TEST_SETS:
        rows = combined[(combined["test_set"] == test_set) & (combined["model"] == args.models[0])]
        n = int(rows.loc[(rows.metric == "r2") & (rows.grouping == "per_sample"), "n_groups"].iloc[0])
        print(f"\nmean of each measure, {test_set} ({n} test profiles; data=bundle, HT115 + 20 % of the drugs "
              f"held out, seed {args.seed}):\n{summary_table(combined, test_set, args.models).round(4).to_string()}")
    print(f"\nall measures, all three test sets: {args.out / 'metrics_all.csv'}")
    return 0
