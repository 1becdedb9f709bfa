"""The recipe study: every variant of experiments/recipe_variants.py, trained at one CPU budget on the
collection benchmark (seeds 0, 1, 2), scored on ALL validation rows of the split (never a test row).

    OMP_NUM_THREADS=1 nice -n 10 python -m experiments.recipe_study --out /tmp/recipe_work/study \
        [--variants baseline prediction_v ...] [--seeds 0 1 2] [--cpu-minutes 5]

Each (variant, seed) cell trains once (`pertdit train` with the variant's overrides, without validation,
stopped by `callbacks.compute_budget.cpu_minutes`), keeps its final weights (`<out>/runs/<variant>/s<seed>/`),
and scores each of the variant's evaluations on every validation row: per-sample and drug-level R2 and
PCC(lnFC) of the mean of k samples, and the calibration of the samples' spread (coverage of the central 50 % /
90 % intervals). Rows go to `<out>/study.csv` as soon as they exist; a rerun skips finished rows (and reuses
trained weights), so an interrupted study loses at most the cell in progress. `--summary` prints the table of
docs/recipe.md (mean +- SD over seeds, paired differences from the baseline, the decision rule).
References on the same rows: `mean_shift`, and PRnet at its defaults under the same budget (its best
checkpoint by val/mse).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import date
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from experiments.recipe_variants import REFERENCES, VARIANTS, Evaluation, Variant, base_overrides, variant_by_name
from pertdit.callbacks import ComputeBudget
from pertdit.config import CONFIG_DIR, register_resolvers
from pertdit.metrics import compute_measures
from pertdit.metrics.calibration import calibration_table, gaussian_spread, sample_spread

#: keys an evaluation may change on a trained model (sampling only, never training)
SAMPLING_KEYS = {"sampler", "sampling_steps", "eta", "spacing", "solver_order", "max_timestep", "predict_mode",
                 "guidance_scale"}
EVAL_BATCH = 64
MEASURES = [("r2", "per_sample"), ("pcc_lnfc", "per_sample"), ("r2", "drug"), ("pcc_lnfc", "drug")]


def compose_cell(overrides: list[str], run_dir: Path):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=[*overrides, f"paths.run_dir={run_dir}"])


def command(variant: Variant, seed: int, cpu_minutes: float) -> str:
    """The `pertdit train` command of a cell (the study adds the validation scoring)."""
    return " ".join(["pertdit train", *base_overrides(cpu_minutes), *variant.overrides, f"seed={seed}"])


# -- training ---------------------------------------------------------------------------------------------
def train_cell(cfg, run_dir: Path):
    """Fit the configured model as `pertdit train` does (same seed, construction order and callbacks that touch
    training: the compute budget; PRnet also its early stopping and best checkpoint); keep the final weights
    (DiTs) or the best checkpoint (PRnet). Returns (module, data module, compute summary)."""
    from pertdit.train import _best_checkpoint_path, build_datamodule, build_model

    L.seed_everything(cfg.seed, workers=True)
    dm = build_datamodule(cfg)
    module = build_model(cfg, dm, run_dir)
    module.prediction_path = None
    weights = run_dir / "weights.pt"
    summary_path = run_dir / "compute.json"
    if getattr(module, "requires_training", True) is False:
        module.fit_statistics(dm)
        return module.eval(), dm, {}
    if weights.is_file() and summary_path.is_file():
        module.load_state_dict(torch.load(weights, weights_only=True))
        return module.eval(), dm, json.loads(summary_path.read_text())
    budget = ComputeBudget(cpu_minutes=cfg.callbacks.compute_budget.cpu_minutes)
    callbacks = [budget]
    for name in ("model_checkpoint", "early_stopping"):
        node = cfg.callbacks.get(name)
        if node is not None:
            callbacks.append(instantiate(node))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=False,
                          enable_checkpointing=any("checkpoint" in type(c).__name__.lower() for c in callbacks))
    trainer.fit(module, datamodule=dm)
    best = _best_checkpoint_path(trainer)
    if best:  # PRnet: the best validation checkpoint, as `pertdit train` tests
        module.load_state_dict(torch.load(best, weights_only=True)["state_dict"])
    summary = {**budget.summary, "trainable_parameters": sum(p.numel() for p in module.parameters()
                                                             if p.requires_grad), "best_checkpoint": bool(best)}
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.save(module.state_dict(), weights.with_suffix(".tmp"))
    os.replace(weights.with_suffix(".tmp"), weights)
    summary_path.write_text(json.dumps(summary, indent=1))
    return module.eval(), dm, summary


# -- scoring ----------------------------------------------------------------------------------------------
def apply_evaluation(module, cfg_eval) -> None:
    """Set the evaluation's sampling keys on a trained module (refusing any training key)."""
    for key, value in OmegaConf.to_container(cfg_eval.model, resolve=True).items():
        if key in module.hparams and module.hparams[key] != value:
            if key not in SAMPLING_KEYS:
                raise ValueError(f"evaluation changes {key!r}, which is not a sampling key")
            module.hparams[key] = value


@torch.no_grad()
def draw(module, batch, n_samples: int) -> np.ndarray:
    """(n_samples, B, G) predictions of a batch: diffusion samples (seeded as `predict_batch` seeds them), or
    the model's point prediction (references)."""
    if not hasattr(module, "sample_model_space"):
        return module.predict_batch(batch).float().numpy()[None]
    seed = module.hparams.sample_seed + int(batch["row"][0])
    generator = torch.Generator().manual_seed(seed)
    return torch.stack([module.sample(batch, generator=generator) for _ in range(n_samples)]).float().numpy()


def score(truth, pred, control, batch_meta, relu: bool) -> dict[str, float]:
    table = compute_measures(truth, pred, control, *batch_meta, relu=relu)
    by = table.set_index(["metric", "grouping"])["mean"]
    return {f"{metric}_{grouping}": float(by[(metric, grouping)]) for metric, grouping in MEASURES}


def evaluate_cell(module, dm, evaluation: Evaluation, relu: bool) -> list[dict]:
    """Rows (one per sample count) of one evaluation on every validation row."""
    rows = dm.rows["val"]
    k_max = max(evaluation.samples)
    start = time.process_time()
    draws, truth, control, meta, gaussians = [], [], [], [[], [], []], []
    for first in range(0, len(rows), EVAL_BATCH):
        batch = dm.batch_of_rows(rows[first:first + EVAL_BATCH])
        if hasattr(module, "sample_model_space"):
            draws.append(draw(module, batch, k_max))
        else:  # a reference: its point prediction and its Gaussian (PRnet's variance, mean_shift's residual SD)
            with torch.no_grad():
                pred, spread = module.predict_with_spread(batch)
            draws.append(pred.float().numpy()[None])
            if spread is not None:
                gaussians.append((spread.mean, spread.sd))
        truth.append(batch["x0"].numpy())
        control.append(batch["c_pre"].numpy())
        for i, key in enumerate(("cell_index", "drug_index", "dose")):
            meta[i].append(batch[key].numpy())
    samples = np.concatenate(draws, axis=1)  # (K, N, G)
    truth, control = np.concatenate(truth), np.concatenate(control)
    meta = [np.concatenate(m) for m in meta]
    cpu = time.process_time() - start
    if relu:
        samples = np.maximum(samples, 0.0)
    out = []
    for k in evaluation.samples:
        row = {"eval": evaluation.label, "samples": k, "eval_cpu_seconds": round(cpu, 1), "n_val": len(rows),
               **score(truth, samples[:k].mean(0), control, meta, relu)}
        if k >= 2:  # the spread of the k samples
            row.update(coverage(truth, sample_spread(samples[:k], truth), "samples"))
        elif gaussians:
            mean, sd = (np.concatenate(part) for part in zip(*gaussians))
            row.update(coverage(truth, gaussian_spread(mean, sd, truth), "gaussian"))
        out.append(row)
    return out


def coverage(truth, layers, source: str) -> dict[str, float]:
    table = calibration_table(truth, layers, source=source).set_index(["interval", "level"])
    result = {"spread": source}
    for (interval, level), value in table["coverage"].items():
        result[f"cover{round(level * 100)}_{interval}"] = float(value)
    return result


# -- the study --------------------------------------------------------------------------------------------
def read_rows(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def write_rows(path: Path, frame: pd.DataFrame) -> None:
    tmp = path.with_suffix(".tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def run_cell(variant: Variant, seed: int, out: Path, cpu_minutes: float, done: pd.DataFrame) -> list[dict]:
    todo = [e for e in variant.evaluations
            if done.empty or not ((done["variant"] == variant.name) & (done["seed"] == seed)
                                  & (done["eval"] == e.label)).any()]
    if not todo:
        return []
    run_dir = out / "runs" / variant.name / f"s{seed}"
    overrides = [*base_overrides(cpu_minutes), *variant.overrides, f"seed={seed}"]
    cfg = compose_cell(overrides, run_dir)
    print(f"== {variant.name} seed {seed}: training ({cpu_minutes:g} CPU-minutes)", flush=True)
    module, dm, compute = train_cell(cfg, run_dir)
    relu = bool(module.relu_predictions)
    rows = []
    for evaluation in todo:
        cfg_eval = compose_cell([*overrides, *evaluation.sampler], run_dir)
        apply_evaluation(module, cfg_eval)
        for row in evaluate_cell(module, dm, evaluation, relu):
            rows.append({"variant": variant.name, "factor": variant.factor, "seed": seed, **row,
                         "steps": compute.get("steps"), "epochs": compute.get("epochs"),
                         "cpu_seconds": compute.get("cpu_seconds"), "wall_seconds": compute.get("wall_seconds"),
                         "stopped_by_budget": compute.get("stopped_by_budget"),
                         "parameters": compute.get("trainable_parameters"),
                         "command": " ".join(["pertdit train", *overrides, *evaluation.sampler]),
                         "date": date.today().isoformat()})
        print(f"   {evaluation.label}: " + ", ".join(f"k={r['samples']} PCC {r['pcc_lnfc_per_sample']:.4f} R2 "
                                                     f"{r['r2_per_sample']:.4f}" for r in rows[-len(evaluation.samples):]),
              flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    every = [v.name for v in (*VARIANTS, *REFERENCES)]
    parser.add_argument("--variants", nargs="+", default=every, help=f"default: all ({', '.join(every)})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cpu-minutes", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=Path("outputs/recipe_study"))
    parser.add_argument("--summary", action="store_true", help="print the summary of <out>/study.csv and exit")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "study.csv"
    if args.summary:
        from experiments.recipe_table import print_summary

        print_summary(read_rows(path))
        return
    for seed in args.seeds:  # seed-major: an interrupted study still holds paired (variant, baseline) seeds
        for name in args.variants:
            variant = variant_by_name(name)
            done = read_rows(path)
            rows = run_cell(variant, seed, args.out, args.cpu_minutes, done)
            if rows:
                write_rows(path, pd.concat([done, pd.DataFrame(rows)], ignore_index=True))


if __name__ == "__main__":
    main()
