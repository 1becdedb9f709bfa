"""Paper experiments: every experiment config composes into runnable jobs, the sweep names existing options,
`experiments.collect` turns sweep directories into one tidy table, `experiments.plots` draws the figures,
and a real two-job sweep through the command line is collected."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from experiments import figure2, figure3
from experiments.collect import COLUMNS, METRIC_COLUMNS, collect, find_jobs
from experiments.plots import GROUPINGS, Comparison, bar_figure, difference_matrix, heatmap_figure, save
from pertdit.config import CONFIG_DIR, register_resolvers
from pertdit.data.splits import UNSEEN_TEST_SETS

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
METHODS = sorted(p.stem for p in (CONFIG_DIR / "method").glob("*.yaml"))
#: sweep keys that pick a config group option, and the group
GROUP_KEYS = {"method": "method", "model": "model", "split": "split", "perturbation": "perturbation"}


def options(group: str) -> set[str]:
    return {p.stem for p in (CONFIG_DIR / group).glob("*.yaml")}


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory) -> Path:
    """One cache folder for this module's tests on real data: the collection is preprocessed once."""
    return tmp_path_factory.mktemp("cache")


def compose_train(overrides: list[str], hydra_config: bool = False):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=hydra_config)


def sweep_of(experiment: str) -> dict[str, list[str]]:
    cfg = compose_train([f"experiment={experiment}"], hydra_config=True)
    return {str(k): str(v).split(",") for k, v in cfg.hydra.sweeper.params.items()}


# -- configs ------------------------------------------------------------------------------------------------
def test_every_paper_experiment_has_a_config():
    assert set(EXPERIMENTS) >= {"figure2a", "figure2b", "figure3a", "figure3b", "figure3c", "figure3d",
                                "figureS3", "organ_holdout"}
    assert set(figure2.EXPERIMENTS) | set(figure3.EXPERIMENTS) <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_sweep_names_existing_options(experiment):
    sweep = sweep_of(experiment)
    assert sweep, f"{experiment} has no hydra.sweeper.params"
    for key, values in sweep.items():
        if key in GROUP_KEYS:
            missing = set(values) - options(GROUP_KEYS[key])
            assert not missing, f"{experiment}: {key} options {missing} are not in pertdit/conf/{GROUP_KEYS[key]}"
        elif key == "split.test_set":
            assert set(values) <= set(UNSEEN_TEST_SETS)
        elif key == "split.fold":
            assert {int(v) for v in values} <= set(range(5))
        else:
            assert key in ("seed", "split.organ"), f"{experiment}: unexpected sweep key {key}"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_job_of_the_sweep_composes(experiment):
    """One job per distinct (method, representation, split) of the sweep; seeds and folds at their first
    value."""
    sweep = sweep_of(experiment)
    axes = {k: (v if k not in ("seed", "split.fold") else v[:1]) for k, v in sweep.items()}
    for values in itertools.product(*axes.values()):
        overrides = [f"experiment={experiment}", *(f"{k}={v}" for k, v in zip(axes, values))]
        cfg = compose_train(overrides, hydra_config=True)
        choices = cfg.hydra.runtime.choices
        assert choices.model in options("model") and choices.perturbation in options("perturbation")
        job = OmegaConf.to_container(cfg.model, resolve=True)  # every interpolation resolves
        assert "_target_" in job
        if "backbone" in job:  # small scale: the tiny DiT
            assert job["backbone"]["d_model"] == cfg.scale.dit.d_model == 32
        assert cfg.method.name


@pytest.mark.parametrize("method", METHODS)
def test_method_sets_its_model_and_representation(method):
    cfg = compose_train(["experiment=figure3d", f"method={method}"], hydra_config=True)
    choices = cfg.hydra.runtime.choices
    assert choices.model == method
    expected = {"adadit_text": "text_pooled", "adadit_rdkit": "rdkit", "prnet": "rdkit", "chemcpa": "rdkit",
                "mean_shift": "rdkit"}
    assert choices.perturbation == expected.get(method, "text")


def test_swept_representation_overrides_the_method():
    cfg = compose_train(["experiment=figureS3", "perturbation=text_wo_dosage"])
    assert cfg.perturbation.dose_prompt is False and cfg.model.backbone._target_.endswith("CatCrossDiT")


@pytest.mark.parametrize("backbone", ["crossdit", "catcrossdit", "catonlycrossdit", "adadit"])
def test_full_scale_is_the_authors_size(backbone):
    method = {"adadit": "adadit_text"}.get(backbone, backbone)
    full = compose_train(["experiment=figure3d", f"method={method}", "scale=full"], hydra_config=True)
    defaults = yaml.safe_load((CONFIG_DIR / "model" / "backbone" / f"{backbone}.yaml").read_text())
    for key in ("d_model", "n_layers", "n_heads", "mlp_hidden", "time_embed_dim"):
        assert full.model.backbone[key] == defaults[key], key
    assert full.hydra.runtime.choices.data == "geo" and full.hydra.runtime.choices.diffusion == "authors"
    assert full.model.ema_decay is None and full.model.target == "expression" and not full.model.standardize
    assert full.model.sampler == "ddpm" and full.model.eval_samples == 1


def test_small_scale_overrides_of_the_sweep_replace_its_values():
    from experiments.plan import sweep_params

    params, fixed = sweep_params("figure2a", ["scale=small", "seed=0,1", "split.test_set=drug_unseen"])
    assert params["seed"] == ["0", "1"] and params["split.test_set"] == ["drug_unseen"]
    assert params["method"] == ["crossdit", "catcrossdit", "prnet", "chemcpa", "mean_shift"]
    assert fixed == ["scale=small"]


def test_a_later_override_of_a_swept_key_wins():
    from experiments.plan import sweep_params

    params, _ = sweep_params("figure2a", ["scale=small", "seed=0,1", "seed=0"])
    assert params["seed"] == ["0"]
    params, _ = sweep_params("figure2a", ["seed=2", "seed=0,1"])
    assert params["seed"] == ["0", "1"]


@pytest.mark.parametrize("method", ["crossdit", "prnet", "chemcpa"])
def test_small_scale_gives_every_training_the_common_cpu_budget(method):
    small = compose_train(["experiment=figure2a", f"method={method}"])
    assert small.callbacks.compute_budget.cpu_minutes == small.scale.cpu_minutes == 2
    assert small.split.test_cells == ["HT115"] and small.diffusion.sampler == "ddim"
    full = compose_train(["experiment=figure2a", f"method={method}", "scale=full"])
    assert full.callbacks.compute_budget.cpu_minutes is None


def test_experiment_names_its_sweep_directory():
    assert compose_train(["experiment=figure3d"]).task_name == "figure3d"


# -- logging ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env, mode", [({}, "offline"), ({"WANDB_API_KEY": "0123abcd"}, "online"),
                                       ({"WANDB_API_KEY": "0123abcd", "WANDB_MODE": "disabled"}, "disabled"),
                                       ({"WANDB_MODE": "online"}, "online")])
def test_wandb_is_offline_without_an_api_key(monkeypatch, env, mode):
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_PROJECT", "WANDB_ENTITY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg = compose_train(["logger=wandb", "paths.run_dir=/tmp/run", "task_name=figure3d"])
    assert cfg.logger.wandb.mode == mode
    assert cfg.logger.wandb.project == "pertdit" and cfg.logger.wandb.group == "figure3d"
    assert cfg.logger.csv._target_.endswith("CSVLogger"), "the CSV logger stays on with W&B"
    assert cfg.logger.wandb.save_dir == "/tmp/run"


@pytest.mark.parametrize("enabled", [True, False])
def test_training_shows_a_rich_progress_bar_unless_disabled(tmp_path, enabled):
    from lightning.pytorch.callbacks import RichProgressBar

    cfg = compose_train([f"paths.run_dir={tmp_path}", f"trainer.enable_progress_bar={enabled}",
                         "trainer=cpu"])
    trainer = instantiate(cfg.trainer, callbacks=[], logger=False)
    assert isinstance(trainer.progress_bar_callback, RichProgressBar) is enabled


# -- collect and plot -------------------------------------------------------------------------------------
def write_job(job: Path, experiment: str, method: str, split: dict, seed: int, values: dict | None = None,
              finished: bool = True) -> None:
    """A job directory as `pertdit train` leaves it: config.yaml, .hydra/hydra.yaml, metrics.csv."""
    job.mkdir(parents=True)
    config = {"task_name": experiment, "seed": seed, "split": split, "method": {"name": method.upper()},
              "scale": {"name": "small"}, "model": {"_target_": "pertdit.lit.diffusion.DiffusionModule"}}
    (job / "config.yaml").write_text(yaml.safe_dump(config))
    (job / ".hydra").mkdir()
    choices = {"experiment": experiment, "method": method, "model": method, "perturbation": "text"}
    (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": choices},
                                                                          "job": {"num": int(job.name)}}}))
    if finished:
        rows = [{"metric": m, "grouping": g, "mean": (values or {}).get((m, g), 0.5), "median": 0.5,
                 "min": 0.0, "max": 1.0, "n_groups": 10, "n_nan": 0}
                for m in ("r2", "pcc_lnfc") for g in GROUPINGS]
        pd.DataFrame(rows).to_csv(job / "metrics.csv", index=False)


@pytest.fixture
def fake_sweeps(tmp_path) -> Path:
    """figure2b-like (2 methods x random/drug folds 0-1) and figure3c-like (2 methods x 2 seeds) sweeps."""
    num = itertools.count()
    for method, by, fold in itertools.product(["prnet", "crossdit"], ["random", "drug"], [0, 1]):
        split = {"kind": "kfold", "by": by, "fold": fold, "n_folds": 5}
        value = {("pcc_lnfc", "drug"): 0.1 * fold + (0.3 if method == "prnet" else 0.2)}
        write_job(tmp_path / "figure2b" / str(next(num)), "figure2b", method, split, 0, value)
    for method, seed in itertools.product(["catcrossdit", "catonlycrossdit"], [0, 1]):
        split = {"kind": "unseen", "test_set": "drug_unseen"}
        value = {("r2", "per_sample"): (0.8 if method == "catcrossdit" else 0.5) + 0.1 * seed}
        write_job(tmp_path / "figure3c" / str(next(num)), "figure3c", method, split, seed, value)
    write_job(tmp_path / "figure3c" / "99", "figure3c", "catcrossdit", {"kind": "unseen"}, 5, finished=False)
    wandb_files = tmp_path / "figure3c" / "8" / "wandb" / "offline-run-1" / "files"
    wandb_files.mkdir(parents=True)
    (wandb_files / "config.yaml").write_text("_wandb: {}\n")  # W&B's own config.yaml is not a job
    return tmp_path


def test_find_jobs_tells_finished_from_unfinished(fake_sweeps):
    finished, unfinished = find_jobs(fake_sweeps / "figure3c")
    assert [j.name for j in finished] == ["10", "11", "8", "9"] and [j.name for j in unfinished] == ["99"]


def test_collect_makes_one_tidy_row_per_job_and_measure(fake_sweeps, tmp_path):
    out = tmp_path / "tables" / "all.csv"
    table = collect([fake_sweeps / "figure2b", fake_sweeps / "figure3c"], out)
    assert list(table.columns) == COLUMNS and out.is_file()
    assert len(table) == (8 + 4) * 10, "the unfinished job is left out"
    assert table.groupby("run_dir").size().eq(10).all()
    fold_rows = table[table["experiment"] == "figure2b"]
    assert set(fold_rows["split"]) == {"random_fold", "drug_fold"} and set(fold_rows["fold"]) == {0, 1}
    assert set(fold_rows["split_name"]) == {"random_fold0", "random_fold1", "drug_fold0", "drug_fold1"}
    assert set(table["label"]) == {"PRNET", "CROSSDIT", "CATCROSSDIT", "CATONLYCROSSDIT"}
    reread = pd.read_csv(out)
    assert set(METRIC_COLUMNS) <= set(reread.columns) and len(reread) == len(table)


def test_bar_figure_has_a_panel_per_measure_and_split(fake_sweeps, tmp_path):
    table = collect([fake_sweeps / "figure2b"])
    fig = bar_figure(table, ["PRNET", "CROSSDIT"], "Figure 2b")
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 2 * 2, "rows R2 / PCC, columns the two splits that ran"
    assert titles[:2] == ["Random (5-fold) (n=2)", "Unseen drug (5-fold) (n=2)"]
    pcc_random = next(ax for ax in fig.axes if ax.get_ylabel() == "PCC(lnFC)")
    drug_bar_prnet = pcc_random.patches[GROUPINGS.index("drug")]  # the first method's 5 bars come first
    assert drug_bar_prnet.get_height() == pytest.approx(np.mean([0.3, 0.4]))
    paths = save(fig, tmp_path / "figs" / "figure2b")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in paths)


def test_difference_matrix_is_structure1_minus_structure2(fake_sweeps):
    table = collect([fake_sweeps / "figure3c"])
    comparison = Comparison("figure3c", "c", "method", "catcrossdit", "catonlycrossdit")
    matrix = difference_matrix(table, comparison)
    assert list(matrix.index) == GROUPINGS
    assert list(matrix.columns) == ["R2 Drug unseen", "PCC(lnFC) Drug unseen"]
    # independent: mean over seeds of each side, then the difference
    expected = np.mean([0.8, 0.9]) - np.mean([0.5, 0.6])
    assert matrix.loc["per_sample", "R2 Drug unseen"] == pytest.approx(expected)
    assert matrix.loc["drug", "PCC(lnFC) Drug unseen"] == pytest.approx(0.0)


def test_difference_matrix_pairs_seeds_when_one_side_ran_more(fake_sweeps):
    table = collect([fake_sweeps / "figure3c"])
    one_seed = table[~((table["method"] == "catonlycrossdit") & (table["seed"] == 1))]
    matrix = difference_matrix(one_seed, Comparison("figure3c", "c", "method", "catcrossdit", "catonlycrossdit"))
    # seed 0 only on both sides: 0.8 - 0.5, not mean(0.8, 0.9) - 0.5
    assert matrix.loc["per_sample", "R2 Drug unseen"] == pytest.approx(0.8 - 0.5)


def test_heatmap_figure_has_one_panel_per_comparison(fake_sweeps, tmp_path):
    table = collect([fake_sweeps / "figure3c"])
    fig = heatmap_figure(table, figure3.COMPARISONS, "Figure 3")
    panels = [ax for ax in fig.axes if ax.get_title()]  # colorbars have no title
    assert len(panels) == 4
    assert "CATCROSSDIT - CATONLYCROSSDIT" in panels[2].get_title()
    assert panels[0].texts[0].get_text() == "no runs", "figure3a did not run"
    assert len(panels[2].images) == 1 and panels[2].images[0].get_array().shape == (5, 2)
    paths = save(fig, tmp_path / "figure3")
    assert all(p.is_file() for p in paths)


def test_figure_modules_write_png_and_pdf(fake_sweeps, tmp_path):
    table = collect([fake_sweeps / "figure2b", fake_sweeps / "figure3c"])
    written = figure2.plot(table, tmp_path) + figure3.plot(table, tmp_path)
    assert sorted(p.name for p in written) == ["figure2b.pdf", "figure2b.png", "figure3.pdf", "figure3.png"]


# -- on the shipped collection -------------------------------------------------------------------------------
def test_reproduce_plans_the_collection_benchmark_at_small_scale(data_dir, module_cache, monkeypatch):
    from experiments import plan

    monkeypatch.setenv("PERTDIT_DATA", str(data_dir))
    monkeypatch.setenv("PERTDIT_CACHE", str(module_cache))
    plan_2a, plan_2b = plan.plan_figure(figure2, "small", [])
    # one training per (method, seed) scored on the three unseen test sets, HT115 the held-out cell line
    assert plan_2a.params["split.test_set"] == ["all"] and not plan_2a.skipped
    assert compose_train(["experiment=figure2a", "scale=small"]).split.test_cells == ["HT115"]
    assert plan_2b.params["split"] == ["random_fold", "drug_fold", "named_cell_fold"] and not plan_2b.skipped
    plans = {p.experiment: p for p in plan.plan_figure(figure3, "small", [])}
    assert plans["figure3c"].params["method"] == ["catonlycrossdit"]
    assert plans["figure3c"].reused == {"catcrossdit": "figure3d"}


def test_reproduce_dry_run_passes_overrides_after_double_dash(data_dir, module_cache, tmp_path, monkeypatch,
                                                              capsys):
    from experiments import reproduce

    monkeypatch.setenv("PERTDIT_DATA", str(data_dir))
    monkeypatch.setenv("PERTDIT_CACHE", str(module_cache))
    monkeypatch.setattr(reproduce.console, "width", 400)
    assert reproduce.main(["figure2", "--dry-run", "--out", str(tmp_path), "--", "scale.max_epochs.dit=2"]) == 0
    printed = capsys.readouterr().out
    assert "experiment=figure2a" in printed and "experiment=figure2b" in printed
    assert printed.count("scale.max_epochs.dit=2") == 2 and "named_cell_fold" in printed
    assert not (tmp_path / "sweeps").exists(), "a dry run runs nothing"


def test_a_two_job_sweep_through_the_cli_is_collected(data_dir, tmp_path):
    sweep_dir = tmp_path / "sweep"
    env = {**os.environ, "PERTDIT_DATA": str(data_dir), "PERTDIT_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "pertdit.cli", "train", "--multirun", "model=control,mean_shift",
           "split=drug_unseen", "logger=[]", "callbacks=none", "trainer.enable_progress_bar=false",
           "task_name=tiny_sweep", f"hydra.sweep.dir={sweep_dir}"]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    table = collect([sweep_dir])
    assert sorted(table["method"].unique()) == ["control", "mean_shift"] and len(table) == 20
    assert set(table["experiment"]) == {"tiny_sweep"} and set(table["split"]) == {"drug_unseen"}
    pcc = table[(table["metric"] == "pcc_lnfc") & (table["grouping"] == "drug")].set_index("method")["mean"]
    assert np.isnan(pcc["control"]) and pcc["mean_shift"] > 0
    # the small-scale check scores the same runs on their validation rows, training nothing
    from experiments.small_scale_study import score_sweeps

    validation = score_sweeps([sweep_dir], tmp_path / "validation_runs.csv").set_index("method")
    assert sorted(validation.index) == ["control", "mean_shift"] and (validation["n_val"] > 0).all()
    assert np.isnan(validation.loc["control", "val_pcc_lnfc_per_sample"])
    assert validation.loc["mean_shift", "val_pcc_lnfc_per_sample"] > 0
    assert validation["trained_steps"].isna().all(), "baselines: statistics of the training rows"


def _finished_job(folder: Path, overrides: list[str]) -> Path:
    """A finished run folder: the resolved config of `overrides` and a metrics file (no training)."""
    from experiments.plan import compose_job

    cfg = compose_job(overrides)
    cfg.paths.run_dir = str(folder)
    folder.mkdir(parents=True)
    OmegaConf.save(cfg, folder / "config.yaml", resolve=True)
    (folder / "metrics_drug_unseen.csv").write_text(",".join(METRIC_COLUMNS) + "\n")
    return folder


def test_figure3d_reuses_figure2as_runs_of_the_same_configuration(tmp_path):
    from experiments.plan import SweepPlan, reuse_finished_runs, sweep_params

    small = ["scale=small", "seed=0", "split.test_set=all"]
    for i, method in enumerate(["crossdit", "catcrossdit"]):
        _finished_job(tmp_path / "figure2a" / str(i), ["experiment=figure2a", *small, f"method={method}"])
    params, fixed = sweep_params("figure3d", small)
    plan = SweepPlan("figure3d", dict(params), fixed)
    reuse_finished_runs(plan, [tmp_path / "figure2a"])
    assert plan.params["method"] == [] and set(plan.reused) == {"crossdit", "catcrossdit"}
    other_seed = SweepPlan("figure3d", {**params, "seed": ["1"]}, fixed)
    reuse_finished_runs(other_seed, [tmp_path / "figure2a"])
    assert other_seed.params["method"] == ["crossdit", "catcrossdit"], "another seed is another configuration"


# -- small scale on the shipped collection: named cell folds, organs, captions --------------------------------
@pytest.fixture(scope="module")
def collection(data_dir, module_cache):
    """The preprocessed shipped collection (data=bundle), read with the module's cache."""
    from experiments.plan import compose_job, load_data

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERTDIT_DATA", str(data_dir))
        patch.setenv("PERTDIT_CACHE", str(module_cache))
        yield load_data(compose_job(["experiment=figure2b", "split=named_cell_fold"]))


@pytest.mark.parametrize("fold", [0, 4])
def test_a_named_cell_fold_tests_every_profile_of_its_cell_lines_and_trains_on_none(collection, fold):
    cfg = compose_train(["experiment=figure2b", "split=named_cell_fold", f"split.fold={fold}"])
    cells = set(cfg.scale.cell_folds[fold])
    assert set(cfg.split.test_cells) == cells
    adata = collection.copy()
    column = instantiate(cfg.split).apply(adata)
    obs = adata.obs[~adata.obs["is_control"].astype(bool)]
    tested = obs[obs[column].astype(str).str.contains("unseen")]
    assert len(tested) and set(tested["cell_id"]) <= cells
    assert not set(obs.loc[obs[column].isin(["train", "val"]), "cell_id"]) & cells, "no leakage"
    assert len(tested) == int(obs["cell_id"].isin(cells).sum())


def test_a_cell_fold_outside_the_named_folds_says_how_many_there_are():
    cfg = compose_train(["experiment=figure2b", "split=named_cell_fold", "split.fold=5"])
    with pytest.raises(Exception, match="5 named folds"):
        OmegaConf.to_container(cfg.split, resolve=True)


def test_the_organ_sweep_at_small_scale_holds_out_the_organs_with_enough_data(collection, data_dir, module_cache,
                                                                             monkeypatch):
    from experiments import organ, plan

    monkeypatch.setenv("PERTDIT_DATA", str(data_dir))
    monkeypatch.setenv("PERTDIT_CACHE", str(module_cache))
    (holdout,) = plan.plan_figure(organ, "small", [])
    assert holdout.params["split.organ"] == ["skin", "colon", "breast"]
    assert any("lung (21 < 30 profiles)" in note for note in holdout.notes)
    (named,) = plan.plan_figure(organ, "small", ["split.organ=skin"])
    assert named.params["split.organ"] == ["skin"], "the user's organs win"


def test_the_caption_names_the_text_encoder_and_describer_of_the_text_rows():
    from experiments.plots import representation_caption

    table = pd.DataFrame({"label": ["CrossDiT", "PRnet", "mean_shift"],
                          "text_encoder": ["tiny random BERT (tiny-random-bert, no pre-trained weights)", "", ""],
                          "describer": ["RDKit descriptions (instead of captioner: not on the machine)", "", ""]})
    caption = representation_caption(table)
    assert "Text-based rows (CrossDiT): text encoder tiny random BERT" in caption
    assert "descriptions: RDKit descriptions (instead of captioner" in caption
    assert "PRnet: the RDKit fingerprint" in caption and "mean_shift" not in caption


def test_an_interrupted_sweep_resumes_keeping_its_finished_jobs(tmp_path, monkeypatch):
    from experiments import reproduce
    from experiments.plan import SweepPlan, sweep_params

    small = ["scale=small", "split.test_set=all"]
    params, fixed = sweep_params("figure3d", [*small, "seed=0,1"])
    plan = SweepPlan("figure3d", dict(params), fixed)
    sweep = tmp_path / "figure3d"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("{}\n")
    job = ["experiment=figure3d", *small]
    kept = [_finished_job(sweep / "0", [*job, "seed=0", "method=crossdit"]),
            _finished_job(sweep / "1", [*job, "seed=0", "method=catcrossdit"])]
    other_configuration = _finished_job(sweep / "2", [*job, "seed=7", "method=crossdit"])
    unfinished = _finished_job(sweep / "3", [*job, "seed=1", "method=crossdit"])
    (unfinished / "metrics_drug_unseen.csv").unlink()
    launched = []

    def fake_run(cmd, **kwargs):
        launched.append(cmd)
        sweep_dir = Path(next(a for a in cmd if a.startswith("hydra.sweep.dir=")).partition("=")[2])
        sweep_dir.mkdir(parents=True)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(reproduce.subprocess, "run", fake_run)
    assert reproduce.launch(plan, sweep, env={}) == 0
    assert all(k.is_dir() for k in kept)
    assert not other_configuration.exists() and not unfinished.exists()
    runs = sorted((a for cmd in launched for a in cmd if a.startswith(("method=", "seed=", "hydra.sweep.dir="))))
    assert runs == [f"hydra.sweep.dir={sweep / 'resumed0'}", f"hydra.sweep.dir={sweep / 'resumed1'}",
                    "method=catcrossdit", "method=crossdit", "seed=1", "seed=1"], "the two seed-1 jobs only"
    launched.clear()
    assert reproduce.launch(plan, sweep, env={}, fresh=True) == 0
    assert not any(k.exists() for k in kept), "--fresh starts over"
    assert len(launched) == 1 and "method=crossdit,catcrossdit" in launched[0] and "seed=0,1" in launched[0]


def test_only_plans_the_named_experiment_so_its_own_overrides_apply(tmp_path, monkeypatch, capsys):
    from experiments import reproduce

    monkeypatch.setattr(reproduce.console, "width", 400)
    # split.fold exists in Figure 2b's fold splits only; Figure 2a's split has none (full scale: planned without
    # reading data; mean_shift needs no text encoder)
    assert reproduce.main(["figure2", "--scale", "full", "--only", "figure2b", "--dry-run", "--out", str(tmp_path),
                           "--", "method=mean_shift", "split.fold=0"]) == 0
    printed = capsys.readouterr().out
    assert "experiment=figure2b" in printed and "experiment=figure2a" not in printed
    assert "split.fold=0" in printed and "split.fold=0,1" not in printed
