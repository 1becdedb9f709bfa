"""Does conditioning on time help? `perturbation.condition_on_time` true vs false, on VALIDATION rows only.

Settings (docs/perturbation.md, "Conditioning on time"):
- `collection`: the shared collection benchmark (docs/results.md): `data=bundle split=unseen
  split.test_cells=[HT115] split.drug_fraction=0.2`, seeds 0-2 (the seed redraws the held-out drugs, the
  validation rows, the initialisation and the sampling noise);
- `skbr3`: the SKBR3 plates alone (`data.sources=[LJP001-002_SKBR3]`: 10 compounds x 4 doses at 6 h and
  24 h), `split=random_fold` (fold 0, validation = fold 1, redrawn by the seed), so a validation profile's
  compound and dose are usually in training at the other time: the case where time is the missing piece.

Models: PRnet (its published fit: early stopping on val/mse from epoch 100, best checkpoint) and the quick
CPU CrossDiT (`preset=cpu_quick`: final weights). Each run trains with `test=false` (no test set is ever
scored); the trained model then predicts every validation row and the 10 measures are computed on them.

    python -m experiments.time_conditioning --out /tmp/extras_work/time_study.csv [--settings ...]
        [--models prnet crossdit] [--seeds 0 1 2] [--runs DIR]

One CSV row per (setting, model, condition_on_time, seed, metric, grouping), appended after each run, so an
interrupted study resumes where it stopped; `--summary` prints the mean ± SD table from the CSV.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from hydra import compose, initialize_config_dir

from pertdit.compare.report import mean_sd
from pertdit.config import CONFIG_DIR, register_resolvers
from pertdit.metrics import compute_measures

SETTINGS: dict[str, list[str]] = {
    "collection": ["data=bundle", "split=unseen", "split.test_cells=[HT115]", "split.drug_fraction=0.2"],
    "skbr3": ["data=bundle", "data.sources=[LJP001-002_SKBR3]", "split=random_fold"],
}
MODELS: dict[str, list[str]] = {
    "prnet": ["model=prnet"],
    "crossdit": ["model=crossdit", "preset=cpu_quick"],
}
QUIET = ["logger=[]", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "test=false"]
#: the common per-training budget of the studies and `pertdit compare` (2 CPU-minutes, OMP_NUM_THREADS=1; chosen to fit a
#: shared 2-core machine); PRnet's own early stopping ends it sooner
BUDGET = ["callbacks.compute_budget.cpu_minutes=2"]
KEYS = ["setting", "model", "condition_on_time", "seed"]


def compose_run(setting: str, model: str, on: bool, seed: int, run_dir: Path):
    """The train config of one cell of the study."""
    register_resolvers()
    overrides = [*SETTINGS[setting], *MODELS[model], *QUIET, *BUDGET,
                 f"perturbation.condition_on_time={str(on).lower()}", f"seed={seed}", f"paths.run_dir={run_dir}"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


@torch.inference_mode()
def score_validation(run_dir: Path, batch_size: int = 64) -> pd.DataFrame:
    """The 10 measures of a trained run (best checkpoint, else last) on every validation row of its split."""
    from pertdit.predict import load_run

    run = load_run(run_dir)
    dm, model = run.datamodule, run.model
    rows = dm.rows["val"]
    preds = [model.predict_batch(dm.batch_of_rows(rows[i:i + batch_size])).float().numpy()
             for i in range(0, len(rows), batch_size)]
    obs = dm.adata.obs.iloc[rows]
    control = np.asarray(dm.adata.X[obs["paired_control_index"].to_numpy()], dtype=np.float64)
    return compute_measures(np.asarray(dm.adata.X[rows], dtype=np.float64), np.concatenate(preds), control,
                            obs["cell_id"].to_numpy(), obs["drug"].to_numpy(), obs["dose"].to_numpy(float),
                            relu=model.relu_predictions)


def run_cell(setting: str, model: str, on: bool, seed: int, runs: Path) -> pd.DataFrame:
    """Train one cell (unless its run folder already holds a finished fit) and score its validation rows."""
    from pertdit.train import train

    run_dir = runs / f"{setting}_{model}_{'time' if on else 'notime'}_s{seed}"
    start = time.process_time()
    if not (run_dir / "compute.json").is_file():
        train(compose_run(setting, model, on, seed, run_dir))
    table = score_validation(run_dir)
    compute = json.loads((run_dir / "compute.json").read_text())
    return table.assign(setting=setting, model=model, condition_on_time=on, seed=seed,
                        fit_cpu_seconds=compute.get("cpu_seconds"), steps=compute.get("steps"),
                        study_cpu_seconds=time.process_time() - start)


def summary(csv: Path) -> str:
    """Mean ± SD over seeds of the validation measures, off vs on, as a markdown table."""
    table = pd.read_csv(csv)
    table = table[table["grouping"].isin(["per_sample", "drug"])]
    stats = table.groupby(["setting", "model", "metric", "grouping", "condition_on_time"])["mean"].agg(
        ["mean", "std", "count"])
    lines = ["| setting | model | measure | off (mean ± SD) | on (mean ± SD) | on - off per seed |",
             "|---|---|---|---|---|---|"]
    for (setting, model, metric, grouping), part in stats.groupby(level=[0, 1, 2, 3]):
        cells = {on: part.xs(on, level="condition_on_time").iloc[0] for on in (False, True)
                 if on in part.index.get_level_values("condition_on_time")}
        text = {on: f"{mean_sd(c['mean'], c['std'])} (n={int(c['count'])})" for on, c in cells.items()}
        rows = table[(table["setting"] == setting) & (table["model"] == model) & (table["metric"] == metric)
                     & (table["grouping"] == grouping)]
        paired = rows.pivot_table(index="seed", columns="condition_on_time", values="mean")
        deltas = (paired[True] - paired[False]).dropna() if {True, False} <= set(paired.columns) else pd.Series()
        lines.append(f"| {setting} | {model} | {metric} {grouping} | {text.get(False, '-')} | "
                     f"{text.get(True, '-')} | {', '.join(f'{d:+.3f}' for d in deltas)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/time_conditioning/time_study.csv"))
    parser.add_argument("--runs", type=Path, default=None, help="run folders (default: beside --out)")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--summary", action="store_true", help="only print the table of --out")
    args = parser.parse_args(argv)
    if args.summary:
        print(summary(args.out))
        return 0
    runs = args.runs or args.out.parent / "runs"
    done = set()
    if args.out.is_file():
        done = set(map(tuple, pd.read_csv(args.out)[KEYS].drop_duplicates().itertuples(index=False)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for setting in args.settings:
        for model in args.models:
            for seed in args.seeds:
                for on in (False, True):
                    if (setting, model, on, seed) in done:
                        continue
                    table = run_cell(setting, model, on, seed, runs)
                    table.to_csv(args.out, mode="a", header=not args.out.is_file(), index=False)
                    print(f"{setting} {model} condition_on_time={on} seed={seed}: "
                          f"{table.set_index(['metric', 'grouping'])['mean'].round(4).to_dict()}", flush=True)
    print(summary(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
