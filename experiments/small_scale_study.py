"""Small scale on VALIDATION rows of the collection benchmark: does every method beat mean_shift?

Two uses, neither scores a test row:

1. `--score-runs SWEEP_DIR ...` trains nothing: every finished job below the sweep folders (e.g. Figure 2a's
   `OUT/sweeps/figure2a`) is rebuilt from its run folder (`pertdit.predict.load_run`: its final weights, best
   checkpoint, or a baseline's training statistics) and scored on its split's validation rows (seen drugs in
   seen cell lines) with the 10 measures, into `<out>/validation_runs.csv`. This is the check of
   docs/experiments.md ("Small scale: a fair comparison").

       python -m experiments.small_scale_study --score-runs outputs/reproduce/figure2-small/sweeps/figure2a \
           --out outputs/small_scale_study

2. Without it, each DiT method is trained as a small-scale Figure 2a job trains it for several numbers of
   optimiser steps (`scale.max_steps.dit`) and split seeds, without testing, and scored the same way, with
   `mean_shift` and PRnet (its defaults; best checkpoint by val/mse, so its validation score is optimistic) as
   reference lines:

       python -m experiments.small_scale_study --methods crossdit catcrossdit --steps 400 800 --seeds 0 1 2 \
           --out outputs/small_scale_study

Resumable: the CSV gets one row per run as it finishes, and a re-run skips those; trained runs are kept under
`<out>/runs/` (a run with its final checkpoint is scored, not retrained).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from experiments.plan import compose_job
from experiments.text_encoder import small_scale_encoder
from pertdit.checkpoints import best_checkpoint, load_checkpoint
from pertdit.metrics import compute_measures

#: what every job of the study shares with a small-scale Figure 2a job (the split's drug_unseen test set is
#: named only because a job needs one; it is never scored)
BASE = ["experiment=figure2a", "split.test_set=drug_unseen", "logger=[]", "trainer.enable_progress_bar=false",
        "test=false"]
REFERENCES = ("mean_shift", "prnet")
KEYS = ["method", "steps", "seed"]


#: a trivial baseline on the same data and split as a small-scale Figure 2a job (it has no method config)
TRIVIAL = ["data=bundle", "split=unseen", "split.test_cells=[HT115]", "split.test_set=drug_unseen", "logger=[]",
           "test=false"]


def job_overrides(method: str, steps: int | None, seed: int, encoder: str | None) -> list[str]:
    """Overrides of one study job: a figure method (a DiT with `steps`) or a reference model."""
    if method == "mean_shift":
        return [*TRIVIAL, "model=mean_shift", f"seed={seed}"]
    chosen = [f"method={method}", *([f"scale.max_steps.dit={steps}"] if steps is not None else [])]
    return [*BASE, *chosen, f"seed={seed}", *([encoder] if encoder else [])]


@torch.no_grad()
def predict_rows(model, dm, rows: np.ndarray, batch_rows: int = 64) -> np.ndarray:
    """Predictions (N, G) of `model` for dataset `rows`, in batches, as its test step makes them."""
    model.eval()
    preds = [model.predict_batch(dm.batch_of_rows(rows[start:start + batch_rows])).float().cpu().numpy()
             for start in range(0, len(rows), batch_rows)]
    return np.concatenate(preds)


def score_rows(model, dm, rows: np.ndarray) -> pd.DataFrame:
    """The 10 measures of `model` on dataset `rows` (pertdit.metrics.compute_measures, the model's ReLU)."""
    batch = dm.batch_of_rows(rows, conditions=False)
    pred = predict_rows(model, dm, rows)
    return compute_measures(batch["x0"].numpy(), pred, batch["c_pre"].numpy(), batch["cell_index"].numpy(),
                            batch["drug_index"].numpy(), batch["dose"].numpy(), relu=model.relu_predictions)


def run_job(overrides: list[str], run_dir: Path) -> dict:
    """Train the job into `run_dir` (unless its final or best checkpoint is there), score its validation rows;
    returns the row of the study table."""
    from pertdit.train import build_datamodule, build_model, train

    cfg = compose_job([*overrides, f"paths.run_dir={run_dir}"])
    trainable = "kind" not in cfg.model  # control / mean_shift fit statistics, nothing to train
    last = run_dir / "checkpoints" / "last.ckpt"
    if trainable and not (run_dir / "compute.json").is_file():
        train(cfg)
    dm = build_datamodule(cfg)
    model = build_model(cfg, dm, run_dir)
    checkpoint = "statistics of the training rows"
    if trainable:
        chosen = best_checkpoint(run_dir) if cfg.callbacks.get("model_checkpoint") else None
        chosen = chosen or last
        model.load_state_dict(load_checkpoint(chosen)["state_dict"])
        checkpoint = chosen.name
    else:
        model.fit_statistics(dm)
    rows = dm.rows["val"]
    started = time.process_time()
    table = score_rows(model, dm, rows).set_index(["metric", "grouping"])["mean"]
    compute = json.loads((run_dir / "compute.json").read_text()) if (run_dir / "compute.json").is_file() else {}
    representation = dm.adata.uns["pertdit"]["representation"]
    return {
        "label": str(cfg.method.name) if cfg.get("method") else str(cfg.model.kind),
        "representation": representation.get("name", ""),
        "encoder": representation.get("encoder_path", representation.get("encoder_id", "")),
        "describer": representation.get("describer", ""),
        "checkpoint": checkpoint,
        "trained_steps": compute.get("steps"),
        "epochs": compute.get("epochs"),
        "cpu_seconds": compute.get("cpu_seconds"),
        "scoring_cpu_seconds": round(time.process_time() - started, 1),
        "n_val": len(rows),
        **{f"val_{m}_{g}": float(table[(m, g)]) for m in ("r2", "pcc_lnfc") for g in ("per_sample", "drug")},
    }


def score_finished_run(run_dir: Path) -> dict:
    """The study row of an already trained run folder (e.g. a figure job): its final (or best) weights, or a
    baseline's training statistics, scored on its split's validation rows. Trains nothing."""
    from pertdit.predict import load_run

    run = load_run(run_dir)
    rows = run.datamodule.rows["val"]
    started = time.process_time()
    table = score_rows(run.model, run.datamodule, rows).set_index(["metric", "grouping"])["mean"]
    compute = json.loads((run_dir / "compute.json").read_text()) if (run_dir / "compute.json").is_file() else {}
    representation = run.datamodule.adata.uns["pertdit"]["representation"]
    method = OmegaConf.select(run.cfg, "method.name", default=None) or str(run.cfg.model.get("kind", "?"))
    return {
        "method": method, "steps": None, "seed": int(run.cfg.seed), "label": method,
        "representation": representation.get("name", ""),
        "encoder": representation.get("encoder_path", representation.get("encoder_id", "")),
        "describer": representation.get("describer", ""),
        "checkpoint": run.checkpoint.name if run.checkpoint else "statistics of the training rows",
        "trained_steps": compute.get("steps") or None, "epochs": compute.get("epochs") or None,
        "cpu_seconds": compute.get("cpu_seconds") if compute.get("steps") else None,
        "scoring_cpu_seconds": round(time.process_time() - started, 1), "n_val": len(rows),
        **{f"val_{m}_{g}": float(table[(m, g)]) for m in ("r2", "pcc_lnfc") for g in ("per_sample", "drug")},
        "run_dir": str(run_dir),
    }


def score_sweeps(sweep_dirs: list[Path], table_path: Path) -> pd.DataFrame:
    """Validation rows of every finished job below `sweep_dirs` (resumable: a run already in the table is
    skipped); written to `table_path`."""
    from experiments.collect import find_jobs

    table = pd.read_csv(table_path) if table_path.is_file() else pd.DataFrame(columns=[*KEYS, "run_dir"])
    done = set(table["run_dir"].astype(str)) if "run_dir" in table else set()
    for sweep_dir in sweep_dirs:
        for job in find_jobs(sweep_dir)[0]:
            if str(job) in done:
                continue
            row = score_finished_run(job)
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
            table = pd.DataFrame([*table.to_dict("records"), row])
            tmp = table_path.with_suffix(".csv.tmp")
            table.to_csv(tmp, index=False)
            tmp.replace(table_path)
    return table


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and SD over seeds of the validation measures, per method and steps."""
    measures = [c for c in table.columns if c.startswith("val_")]
    grouped = table.groupby(["label", "steps"], dropna=False, sort=False)
    out = grouped[measures].agg(["mean", "std"])
    out.columns = [f"{m}_{s}" for m, s in out.columns]
    out["seeds"] = grouped["seed"].count()
    out["cpu_seconds"] = grouped["cpu_seconds"].mean()
    return out.reset_index()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.small_scale_study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["crossdit", "catcrossdit"],
                        help="DiT methods (pertdit/conf/method) to train for each --steps")
    parser.add_argument("--steps", nargs="+", type=int, default=[400, 800])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--references", nargs="*", default=list(REFERENCES), choices=REFERENCES)
    parser.add_argument("--out", type=Path, default=Path("outputs/small_scale_study"))
    parser.add_argument("--score-runs", nargs="+", type=Path, metavar="SWEEP_DIR",
                        help="train nothing: score the validation rows of the finished jobs below these sweep "
                             "folders (e.g. outputs/figures/sweeps/figure2a), into <out>/validation_runs.csv")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.score_runs:
        table = score_sweeps(args.score_runs, args.out / "validation_runs.csv")
        with pd.option_context("display.width", 250, "display.max_columns", 30):
            print(summary(table).round(4).to_string(index=False))
        return 0
    table_path = args.out / "validation.csv"
    table = pd.read_csv(table_path) if table_path.is_file() else pd.DataFrame(columns=KEYS)
    done = {(str(r.method), None if pd.isna(r.steps) else int(r.steps), int(r.seed)) for r in table.itertuples()}
    encoder = small_scale_encoder()
    jobs = [(m, None, s) for m in args.references for s in args.seeds]
    jobs += [(m, n, s) for n in args.steps for s in args.seeds for m in args.methods]
    for method, steps, seed in jobs:
        if (method, steps, seed) in done:
            continue
        name = f"{method}_seed{seed}" + (f"_steps{steps}" if steps is not None else "")
        print(f"== {name}", flush=True)
        row = {"method": method, "steps": steps, "seed": seed,
               **run_job(job_overrides(method, steps, seed, encoder), args.out / "runs" / name)}
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
        table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
        tmp = table_path.with_suffix(".csv.tmp")
        table.to_csv(tmp, index=False)
        tmp.replace(table_path)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(summary(table).round(4).to_string(index=False))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
