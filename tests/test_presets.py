"""Named recipes: `preset=cpu_quick` (the demo's quick CPU recipe) and `preset=gpu_paper`, each applied to
the chosen model; each model's own training schedule (`model_fit`)."""

from __future__ import annotations

import pytest

from pertdit.config import shipped_bundle
from pertdit.demo import demo_overrides
from tests.helpers import compose_train

DITS = ["crossdit", "catcrossdit", "catonlycrossdit", "adadit_rdkit", "adadit_text"]


def _compose(overrides, tmp_path):
    return compose_train(overrides, tmp_path, tmp_path / "cache", tmp_path / "data")


@pytest.mark.parametrize("model", DITS)
def test_cpu_quick_gives_every_dit_the_quick_recipe(model, tmp_path):
    cfg = _compose([f"model={model}", "preset=cpu_quick"], tmp_path)
    backbone = cfg.model.backbone
    assert (backbone.d_model, backbone.n_layers, backbone.n_heads, backbone.mlp_hidden) == (32, 1, 2, 32)
    assert (cfg.model.lr, cfg.model.warmup_steps, cfg.model.ema_decay, cfg.model.cosine_steps) == (3e-3, 20, None,
                                                                                                     None)
    sampler = cfg.diffusion  # the sampler of diffusion=quick, measured on validation (docs/diffusion.md)
    assert (sampler.sampler, sampler.sampling_steps, sampler.eta, sampler.max_timestep) == ("ddim", 10, 1.0, 38)
    assert (cfg.model.sampler, cfg.model.max_timestep) == ("ddim", 38), "the model reads the recipe"
    assert cfg.trainer.max_epochs == 100 and cfg.trainer.limit_val_batches == 0
    assert cfg.callbacks.model_checkpoint is None and cfg.callbacks.early_stopping is None
    assert cfg.callbacks.last_checkpoint is not None, "a quick run still resumes"
    assert cfg.preset_name == "cpu_quick"


@pytest.mark.parametrize("model", ["prnet", "chemcpa", "mean_shift"])
def test_cpu_quick_leaves_the_cpu_sized_models_at_their_defaults(model, tmp_path):
    assert _compose([f"model={model}", "preset=cpu_quick"], tmp_path).model == _compose([f"model={model}"],
                                                                                          tmp_path).model


@pytest.mark.parametrize("model", DITS)
def test_cpu_quick_v_is_cpu_quick_with_v_prediction(model, tmp_path):
    """The project's recipe at a CPU budget (docs/recipe.md): one key changed from cpu_quick."""
    quick = _compose([f"model={model}", "preset=cpu_quick"], tmp_path)
    best = _compose([f"model={model}", "preset=cpu_quick_v"], tmp_path)
    assert best.model.prediction == "v" and best.diffusion.prediction == "v"
    assert _compose([f"model={model}", "preset=cpu_quick", "diffusion.prediction=v"], tmp_path).model == best.model
    assert {k for k in quick.model if quick.model[k] != best.model[k]} == {"prediction"}
    assert best.preset_name == "cpu_quick_v"


@pytest.mark.parametrize("model", ["prnet", "chemcpa", "mean_shift"])
def test_cpu_quick_v_leaves_the_cpu_sized_models_at_their_defaults(model, tmp_path):
    assert _compose([f"model={model}", "preset=cpu_quick_v"], tmp_path).model == _compose([f"model={model}"],
                                                                                            tmp_path).model


def test_gpu_paper_is_the_papers_recipe(tmp_path):
    dit = _compose(["model=crossdit", "preset=gpu_paper"], tmp_path)
    assert dit.trainer.accelerator == "gpu" and dit.trainer.precision == "bf16-mixed"
    assert dit.diffusion.standardize is False and dit.diffusion.eval_samples == 1  # diffusion=authors
    assert (dit.model.backbone.d_model, dit.model.backbone.n_layers, dit.data.batch_size) == (256, 2, 64)
    assert (dit.callbacks.early_stopping.patience, dit.callbacks.early_stopping.min_epochs) == (10, 60)
    assert _compose(["model=prnet", "preset=gpu_paper"], tmp_path).data.batch_size == 512
    assert _compose(["model=chemcpa", "preset=gpu_paper"], tmp_path).data.batch_size == 256


def test_models_train_on_their_own_schedule(tmp_path):
    prnet, chemcpa, dit = (_compose([f"model={m}"], tmp_path) for m in ("prnet", "chemcpa", "crossdit"))
    assert prnet.trainer.max_epochs == 300
    assert (prnet.callbacks.early_stopping.patience, prnet.callbacks.early_stopping.min_epochs) == (20, 100)
    assert chemcpa.trainer.max_epochs == 300 and chemcpa.callbacks.early_stopping.patience == 30
    assert dit.trainer.max_epochs == 100
    assert (dit.callbacks.early_stopping.patience, dit.callbacks.early_stopping.min_epochs) == (10, 60)


def test_an_experiments_scale_wins_over_the_model_schedule(tmp_path):
    cfg = _compose(["experiment=figure2a", "method=prnet"], tmp_path)
    assert cfg.trainer.max_epochs == cfg.scale.max_epochs.prnet


@pytest.mark.parametrize("model", ["control", "crossdit", "prnet"])
def test_the_demo_runs_each_model_with_the_preset(model):
    assert "preset=cpu_quick" in demo_overrides(model)


@pytest.mark.parametrize("model", ["control", "crossdit", "prnet"])
def test_the_demo_trains_each_model_once_on_the_collection_benchmark(model, tmp_path):
    cfg = _compose(demo_overrides(model), tmp_path)
    assert cfg.data.expression == shipped_bundle(), "data=bundle: the shipped collection"
    assert (list(cfg.split.test_cells), cfg.split.drug_fraction, cfg.split.test_set) == (["HT115"], 0.2, "all")
    assert cfg.callbacks.compute_budget.cpu_minutes == 2.0, "the project's common training budget"
