"""The recipe study (experiments/recipe_study.py): every variant composes into a valid training config of the
collection benchmark, evaluations change sampling keys only, and the decision rule of experiments/recipe_table.py
keeps exactly the variants that help in every seed (or by more than the baseline's seed SD)."""

from __future__ import annotations

import pandas as pd
import pytest

from experiments.recipe_study import SAMPLING_KEYS, compose_cell
from experiments.recipe_table import decisions
from experiments.recipe_variants import REFERENCES, VARIANTS, base_overrides

EVERY = [*VARIANTS, *REFERENCES]


@pytest.mark.parametrize("variant", EVERY, ids=[v.name for v in EVERY])
def test_every_variant_composes_on_the_collection_benchmark(variant, tmp_path):
    cfg = compose_cell([*base_overrides(2.0), *variant.overrides, "seed=1"], tmp_path)
    assert "l1000_bundle" in str(cfg.data.expression)  # data=bundle: the shipped collection
    assert list(cfg.split.test_cells) == ["HT115"] and cfg.callbacks.compute_budget.cpu_minutes == 2.0
    assert cfg.test is False  # validation rows only
    for evaluation in variant.evaluations:
        for override in evaluation.sampler:
            key = override.split("=")[0].split(".")[-1]
            assert key in SAMPLING_KEYS, f"{variant.name}: {override} is not a sampling key"


def _rows(variant: str, scores: list[float], r2: float = 0.6) -> list[dict]:
    factor = "baseline" if variant == "baseline" else "x"
    return [{"variant": variant, "factor": factor, "eval": "quick", "samples": 8, "seed": seed,
             "pcc_lnfc_per_sample": score, "r2_per_sample": r2} for seed, score in enumerate(scores)]


def test_the_rule_keeps_a_variant_better_in_every_seed_and_not_one_that_is_mixed():
    frame = pd.DataFrame([*_rows("baseline", [0.40, 0.50, 0.45]), *_rows("steady", [0.41, 0.51, 0.46]),
                          *_rows("mixed", [0.42, 0.49, 0.46]), *_rows("big", [0.60, 0.45, 0.60]),
                          *_rows("two_seeds", [0.9, 0.9])])
    kept = decisions(frame).set_index("variant")["kept"]
    assert kept["steady"] == "yes"  # + in all 3 seeds
    assert kept["mixed"] == "no"  # mean +0.007 < baseline seed SD 0.05
    assert kept["big"] == "yes"  # mean +0.10 > baseline seed SD 0.05
    assert kept["two_seeds"].startswith("not decided")


def test_the_rule_refuses_a_variant_that_loses_r2_beyond_the_seed_sd():
    frame = pd.DataFrame([*_rows("baseline", [0.40, 0.50, 0.45]), *_rows("costly", [0.41, 0.51, 0.46], r2=0.3)])
    frame.loc[frame["variant"] == "baseline", "r2_per_sample"] = [0.60, 0.62, 0.61]
    assert decisions(frame).set_index("variant").loc["costly", "kept"] == "no"
