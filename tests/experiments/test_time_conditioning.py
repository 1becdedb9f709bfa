"""experiments.time_conditioning: the study's cells compose as documented, and its table pairs seeds."""

from __future__ import annotations

import pandas as pd

from experiments.time_conditioning import compose_run, summary


def test_a_cell_composes_the_setting_model_option_seed_and_the_common_budget(tmp_path):
    cfg = compose_run("skbr3", "crossdit", True, 2, tmp_path / "run")
    assert cfg.perturbation.condition_on_time is True and cfg.seed == 2
    assert list(cfg.data.sources) == ["LJP001-002_SKBR3"] and cfg.preset_name == "cpu_quick"
    assert cfg.callbacks.compute_budget.cpu_minutes == 2
    assert cfg.test is False  # validation rows only: no test set is scored
    off = compose_run("collection", "prnet", False, 0, tmp_path / "run")
    assert off.perturbation.condition_on_time is False and list(off.split.test_cells) == ["HT115"]


def test_the_summary_gives_mean_sd_and_the_per_seed_difference(tmp_path):
    rows = [dict(metric="r2", grouping="per_sample", mean=value, setting="skbr3", model="prnet",
                 condition_on_time=on, seed=seed)
            for seed, (off_value, on_value) in enumerate([(0.1, 0.3), (0.2, 0.1)])
            for on, value in ((False, off_value), (True, on_value))]
    csv = tmp_path / "study.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    line = [row for row in summary(csv).splitlines() if "r2 per_sample" in row][0]
    assert "0.150 ± 0.071 (n=2)" in line and "0.200 ± 0.141 (n=2)" in line
    assert line.endswith("+0.200, -0.100 |")
