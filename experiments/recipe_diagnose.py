"""Diagnose a collapsed run of the recipe study (docs/recipe.md): per-row R2 of the mean of 8 samples and the largest
predicted value, for the baseline and v prediction of seed 1, from the weights the study saved.

    python -m experiments.recipe_diagnose   # after experiments.recipe_study --out /tmp/recipe_work/study
"""
from pathlib import Path
import numpy as np
from experiments.recipe_study import compose_cell, train_cell, draw, EVAL_BATCH
from experiments.recipe_variants import base_overrides, variant_by_name

for name in ["baseline", "prediction_v"]:
    run_dir = Path(f"/tmp/recipe_work/study/runs/{name}/s1")
    cfg = compose_cell([*base_overrides(2.0), *variant_by_name(name).overrides, "seed=1"], run_dir)
    module, dm, _ = train_cell(cfg, run_dir)
    rows = dm.rows["val"]
    preds, truths = [], []
    for first in range(0, len(rows), EVAL_BATCH):
        batch = dm.batch_of_rows(rows[first:first + EVAL_BATCH])
        preds.append(np.maximum(draw(module, batch, 8), 0).mean(0)); truths.append(batch["x0"].numpy())
    p, t = np.concatenate(preds), np.concatenate(truths)
    r2 = 1 - ((t - p) ** 2).sum(1) / ((t - t.mean(1, keepdims=True)) ** 2).sum(1)
    print(name, "per-row R2: mean %.3f median %.3f min %.3f; rows R2<0: %d of %d; max|pred| %.1f, max truth %.1f"
          % (r2.mean(), np.median(r2), r2.min(), (r2 < 0).sum(), len(r2), np.abs(p).max(), t.max()))
    worst = np.argsort(r2)[:3]
    print("  worst rows:", [(int(rows[i]), round(float(r2[i]), 2)) for i in worst],
          "their max |pred|:", [round(float(np.abs(p[i]).max()), 1) for i in worst])
