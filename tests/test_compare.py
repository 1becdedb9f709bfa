"""`pertdit compare`: every model on the same split for the same compute budget, scored on every test set, as
mean ± SD over seeds with the replicate ceiling and a budget table; resumable. Run for real on the shipped
collection (data=bundle) with a budget of about a CPU-second."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pertdit.cli import main
from pertdit.compare.benchmark import CompareError, load_benchmark
from pertdit.compare.report import mean_sd
from pertdit.compare.runner import compose_run
from pertdit.compare.summary import summarize, target_table
from pertdit.data.splits import UNSEEN_TEST_SETS

TINY = ["--models", "control", "mean_shift", "prnet", "--seeds", "0", "--cpu-minutes", "0.02", "--no-progress"]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """A real comparison: control, mean_shift and PRnet (stopped by a 1.2 CPU-second budget), seed 0."""
    out = tmp_path_factory.mktemp("compare")
    assert main(["compare", *TINY, "--out", str(out)]) == 0
    return out


def test_the_collection_benchmark_holds_every_model_of_the_comparison():
    bench = load_benchmark("collection")
    assert list(bench.models) == ["control", "mean_shift", "prnet", "prnet_mean", "chemcpa", "crossdit",
                                  "catcrossdit", "catonlycrossdit", "adadit_rdkit", "crossdit_best"]
    assert "model.predict_mode=mean" in bench.models["prnet_mean"].overrides
    assert "mean" in bench.models["prnet_mean"].label
    for dit in bench.target["dits"]:
        assert "preset=cpu_quick" in bench.models[dit].overrides and "RDKit" in bench.models[dit].label
    assert bench.cpu_minutes == 2 and bench.seeds == [0, 1, 2] and "split.test_set=all" in bench.protocol


def test_every_model_of_the_benchmark_composes_with_the_protocol_and_the_budget(tmp_path):
    bench = load_benchmark("collection")
    for entry in bench.entries():
        cfg = compose_run(bench.run_overrides(entry, 1, 5.0), tmp_path)
        assert cfg.seed == 1 and cfg.split.test_set == "all" and cfg.split.test_cells == ["HT115"]
        assert cfg.callbacks.compute_budget.cpu_minutes == 5.0
    assert compose_run(bench.run_overrides(bench.models["prnet_mean"], 0, 5.0), tmp_path).model.predict_mode == "mean"
    assert compose_run(bench.run_overrides(bench.models["crossdit_best"], 0, 5.0), tmp_path).model.prediction == "v"


def test_an_unknown_model_is_refused_naming_the_known_ones():
    with pytest.raises(CompareError, match="not in benchmark 'collection'.*prnet_mean"):
        load_benchmark("collection").entries(["prnet", "scgpt"])


def test_a_comparison_scores_every_model_on_every_test_set(compared):
    runs = pd.read_csv(compared / "runs.csv")
    assert set(runs["test_set"]) == set(UNSEEN_TEST_SETS)
    assert runs.groupby(["model", "test_set"]).size().eq(10).all() and runs["model"].nunique() == 3
    for model in ("control", "mean_shift", "prnet"):
        for test_set in UNSEEN_TEST_SETS:  # the run's own measures file, unchanged
            own = pd.read_csv(compared / "runs" / f"{model}_seed0" / f"metrics_{test_set}.csv")
            mine = runs[(runs["model"] == model) & (runs["test_set"] == test_set)]
            np.testing.assert_allclose(mine["mean"], own["mean"])
            np.testing.assert_allclose(mine["ceiling_mean"], own["ceiling_mean"])


def test_the_budget_table_says_what_each_model_did_with_its_budget(compared):
    budget = pd.read_csv(compared / "budget.csv").set_index("model")
    assert budget.loc["prnet", "stopped_by"] == "compute_budget x1"
    assert budget.loc["prnet", "fit_cpu_seconds"] >= 1.2 and budget.loc["prnet", "budget_cpu_seconds"] == 1.2
    assert budget.loc["prnet", "steps"] > 0 and budget.loc["prnet", "trainable_parameters"] > 100_000
    assert budget.loc["mean_shift", "stopped_by"] == "no training x1"
    assert budget.loc["mean_shift", "steps"] == 0


def test_the_report_has_a_table_per_test_set_with_the_ceiling_and_the_budget(compared):
    report = (compared / "results.md").read_text()
    for test_set in UNSEEN_TEST_SETS:
        assert f"### {test_set} (" in report
    assert report.count("| *replicate ceiling* |") == 3 * 3  # headline, same rows, all 10 measures
    assert "## Budget" in report and "PRnet (one sample, as published)" in report
    assert "pertdit compare --models control mean_shift prnet" in report
    assert "## Against mean_shift" in report
    assert (compared / "pcc_lnfc.png").stat().st_size > 10_000 and (compared / "r2.png").is_file()


def test_a_second_comparison_reads_finished_runs_and_restarts_an_unfinished_one(compared):
    kept = json.loads((compared / "runs" / "mean_shift_seed0" / "run.json").read_text())
    (compared / "runs" / "prnet_seed0" / "run.json").unlink()  # as if killed before the end of its run
    (compared / "runs" / "prnet_seed0" / "leftover").write_text("half-written")
    assert main(["compare", *TINY, "--out", str(compared)]) == 0
    assert json.loads((compared / "runs" / "mean_shift_seed0" / "run.json").read_text()) == kept
    assert (compared / "runs" / "prnet_seed0" / "run.json").is_file()
    assert not (compared / "runs" / "prnet_seed0" / "leftover").exists()


def test_a_finished_run_made_with_another_budget_is_refused(compared, capsys):
    other = [*TINY[:-3], "--cpu-minutes", "0.03", "--no-progress"]
    assert main(["compare", *other, "--out", str(compared)]) == 1
    assert "made with another config" in capsys.readouterr().err


def test_report_only_trains_nothing(tmp_path):
    assert main(["compare", "--models", "prnet", "--seeds", "0", "--report-only", "--out", str(tmp_path)]) == 1


def _runs(values: dict[tuple[str, int], float]) -> pd.DataFrame:
    rows = []
    for (model, seed), value in values.items():
        for metric in ("pcc_lnfc", "r2"):
            for grouping in ("per_sample", "drug"):
                rows.append({"model": model, "label": model, "learned": True, "seed": seed,
                             "test_set": "drug_unseen", "metric": metric, "grouping": grouping, "mean": value,
                             "n_groups": 10, "n_nan": 0, "ceiling_mean": 0.5 + seed, "model_same_rows_mean": value,
                             "ceiling_profiles": 4, "unreplicated_profiles": 6, "run_dir": ""})
    return pd.DataFrame(rows)


def test_mean_and_sd_over_seeds_match_numpy():
    values = {("a", 0): 0.1, ("a", 1): 0.4, ("a", 2): 0.3, ("b", 0): 0.2}
    summary = summarize(_runs(values)).set_index(["model", "metric", "grouping"])
    row = summary.loc[("a", "pcc_lnfc", "per_sample")]
    assert row["mean"] == pytest.approx(np.mean([0.1, 0.4, 0.3]))
    assert row["sd"] == pytest.approx(np.std([0.1, 0.4, 0.3], ddof=1)) and row["seeds"] == 3
    assert row["ceiling_mean"] == pytest.approx(1.5) and row["ceiling_sd"] == pytest.approx(1.0)
    assert np.isnan(summary.loc[("b", "r2", "drug"), "sd"])  # one seed: no SD


def test_the_target_needs_higher_pcc_and_no_lower_r2():
    runs = _runs({("dit", 0): 0.6, ("prnet", 0): 0.5})
    runs.loc[(runs["model"] == "dit") & (runs["metric"] == "r2"), "mean"] = 0.4  # loses R2
    target = target_table(summarize(runs), ["dit"], ["prnet"])
    assert target["pcc_lnfc/per_sample"].iloc[0] == pytest.approx(0.1) and not target["met"].iloc[0]
    runs.loc[(runs["model"] == "dit") & (runs["metric"] == "r2"), "mean"] = 0.5  # equal R2 is not a loss
    assert target_table(summarize(runs), ["dit"], ["prnet"])["met"].iloc[0]


def test_mean_sd_formatting():
    assert mean_sd(0.61234, 0.0212) == "0.612 ± 0.021"
    assert mean_sd(0.61234, float("nan")) == "0.612" and mean_sd(float("nan"), 0.1) == "NaN"


def test_a_model_with_fewer_seeds_than_the_others_says_how_many():
    from pertdit.compare.report import measures_table
    from pertdit.compare.summary import ceiling_table

    runs = _runs({("a", 0): 0.1, ("a", 1): 0.4, ("a", 2): 0.3, ("b", 0): 0.2})
    table = measures_table(summarize(runs), ceiling_table(runs), "drug_unseen", ["a", "b"], {"a": "A", "b": "B"},
                           [("pcc_lnfc", "per_sample")])
    assert "| A | **0.267 ± 0.153** |" in table and "| B (1 seed) | 0.200 |" in table
