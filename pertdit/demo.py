"""`pertdit demo` / `make demo`: trivial baselines and a quick CPU-sized CrossDiT on the bundled plate.

Each model runs as `pertdit train model=<model> preset=cpu_quick` would (one folder per model under --out).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir

from pertdit.config import CONFIG_DIR, register_resolvers
from pertdit.metrics import format_table

# Every model at the quick CPU recipe, a config users can name (pertdit/conf/preset/cpu_quick.yaml): DiTs at
# d_model 32, one layer, ~400 optimiser steps, sampled with the quick sampler chosen on validation rows
# (docs/diffusion.md); PRnet and ChemCPA at their defaults.
QUICK_MODEL = ["preset=cpu_quick"]
CONSOLE = ["trainer.enable_progress_bar=false"]


def demo_overrides(model: str) -> list[str]:
    """The overrides of a `pertdit demo` run of `model`: the cpu_quick preset, no progress bar."""
    return [*QUICK_MODEL, *CONSOLE]


def run_config(overrides: list[str], run_dir: Path) -> pd.DataFrame:
    """Compose the train config with `overrides`, train/test it into `run_dir`, return its metrics table."""
    from pertdit.train import train

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"paths.run_dir={run_dir}"])
    train(cfg)
    return pd.read_csv(run_dir / "metrics.csv")


def run_demo(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pertdit demo", description=__doc__)
    parser.add_argument("--split", default="drug_unseen", help="split config (default: drug_unseen)")
    parser.add_argument("--models", nargs="+", default=["control", "mean_shift", "crossdit"],
                        help="model configs; each runs with preset=cpu_quick")
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"))
    args = parser.parse_args(argv)
    tables = []
    for model in args.models:
        table = run_config([f"model={model}", f"split={args.split}", "logger=[]", *demo_overrides(model)],
                           args.out / model)
        tables.append(table.assign(model=model))
        print(f"\n== {model} (split {args.split}) ==\n{format_table(table)}")
    combined = pd.concat(tables, ignore_index=True)
    combined.to_csv(args.out / "metrics_all.csv", index=False)
    wide = combined.pivot_table(index=["metric", "grouping"], columns="model", values="mean", sort=False)
    print(f"\nmean of each measure, split {args.split}:\n{wide[args.models].round(4).to_string()}")
    print(f"\nwritten: {args.out / 'metrics_all.csv'}")
    return 0
