"""The diffusion group is the whole recipe: `diffusion=authors` is exactly the authors' released setting.

The authors' values (their src/config/{Ada,Cross,CatBasicCross}.yaml, sampler/Sampler.py, trainer/*.py):
T = 50 scaled_linear betas 0.002 -> 0.4, raw log-expression target, all 50 DDPM steps, one sample scored,
no classifier-free guidance, no EMA; AdamW(lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 1e-2), linear
warm-up 5e-4 -> 1e-3 over 5,000 steps then a cosine to 5e-5 at step T_max = 1,000,000; gradient clipping 1.0;
batch 64; epochs of at most 5,000 batches.
"""

from __future__ import annotations

import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from pertdit.config import CONFIG_DIR, register_resolvers
from pertdit.diffusion import DDPMSampler, guidance_enabled

DIT_MODELS = ["crossdit", "catcrossdit", "catonlycrossdit", "adadit_text", "adadit_rdkit"]
TINY = {"d_model": 8, "n_layers": 1, "n_heads": 2, "mlp_hidden": 8, "time_embed_dim": 8}


def compose_train(overrides: list[str]):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=[*overrides, "paths.run_dir=/tmp/unused"])


def build(model_cfg):
    """The DiffusionModule of a composed `model` config, with a tiny backbone (12 genes, d_pert 5)."""
    model_cfg.backbone.update(TINY)
    return instantiate(model_cfg, n_genes=12, d_pert=5, _recursive_=False, _convert_="all")


def assert_authors_recipe(cfg) -> None:
    model = cfg.model
    assert dict(model.schedule) == {"num_train_timesteps": 50, "beta_schedule": "scaled_linear",
                                    "beta_start": 0.002, "beta_end": 0.4}
    assert model.sampler == "ddpm"
    assert model.target == "expression" and model.standardize is False
    assert model.eval_samples == 1
    assert model.ema_decay is None
    assert model.cfg_drop_prob == 0.0 and not guidance_enabled(model.guidance_scale)
    assert model.lr == 1e-3 and model.weight_decay == 1e-2
    assert model.warmup_steps == 5000 and model.warmup_start_factor == 0.5
    assert model.min_lr_factor == 0.05 and model.cosine_steps == 1_000_000
    assert cfg.trainer.gradient_clip_val == 1.0
    assert cfg.data.batch_size == 64
    assert cfg.trainer.limit_train_batches == 5000


@pytest.mark.parametrize("model", DIT_MODELS)
def test_diffusion_authors_is_the_authors_setting_with_every_model(model):
    assert_authors_recipe(compose_train([f"model={model}", "diffusion=authors"]))


@pytest.mark.parametrize("method", DIT_MODELS)
def test_full_scale_trains_every_dit_with_the_authors_recipe(method):
    cfg = compose_train(["experiment=figure3d", f"method={method}", "scale=full"])
    assert_authors_recipe(cfg)


def test_the_authors_module_has_no_ema_samples_all_50_steps_and_scores_one_sample():
    module = build(compose_train(["model=crossdit", "diffusion=authors"]).model)
    assert module.ema is None
    sampler = module.sampler()
    assert isinstance(sampler, DDPMSampler) and sampler.timesteps() == list(range(49, -1, -1))
    seen = []
    module.sample = lambda batch, generator=None: seen.append(1) or torch.zeros(2, 12)
    module.predict_batch({"c_pre": torch.zeros(2, 12), "row": torch.tensor([0, 1])})
    assert len(seen) == 1


def test_the_authors_optimiser_and_learning_rate_schedule():
    module = build(compose_train(["model=adadit_rdkit", "diffusion=authors"]).model)
    config = module.configure_optimizers()
    optimizer, schedule = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert type(optimizer) is torch.optim.AdamW
    group = optimizer.param_groups[0]
    assert group["betas"] == (0.9, 0.999) and group["eps"] == 1e-8 and group["weight_decay"] == 1e-2
    assert config["lr_scheduler"]["interval"] == "step"

    def lr_at(step: int) -> float:
        return 1e-3 * schedule.lr_lambdas[0](step)

    # the authors' get_warmup_scheduler, written out
    assert lr_at(0) == pytest.approx(5e-4)
    assert lr_at(2500) == pytest.approx(7.5e-4)
    assert lr_at(5000) == pytest.approx(1e-3)
    middle = (5000 + 1_000_000) // 2
    assert lr_at(middle) == pytest.approx(5e-5 + 0.5 * (1e-3 - 5e-5) * (1 + math.cos(math.pi * 0.5)), rel=1e-4)
    assert lr_at(1_000_000) == pytest.approx(5e-5)
    assert lr_at(2_000_000) == pytest.approx(5e-5)


def test_the_project_recipe_departs_from_the_authors_only_in_its_measured_choice():
    """The default recipe scores the mean of 8 samples (measured on validation, docs/diffusion.md); the
    other choices measured there (standardised target, EMA) showed no gain and stay the authors'."""
    default = compose_train(["model=crossdit"]).diffusion
    authors = compose_train(["model=crossdit", "diffusion=authors"]).diffusion
    differing = {key for key in authors if authors[key] != default[key]}
    # spread_samples is evaluation only: the default's spread comes from the 8 samples it draws anyway, the
    # authors' one sample draws no more
    assert differing == {"eval_samples", "spread_samples"} and default.eval_samples == 8
    assert default.spread_samples == default.eval_samples and authors.spread_samples < 2


def test_one_diffusion_choice_sets_the_models_recipe():
    cfg = compose_train(["model=catcrossdit", "diffusion=authors", "diffusion.ema_decay=0.9",
                         "diffusion.eval_samples=3"])
    assert cfg.model.ema_decay == 0.9 and cfg.model.eval_samples == 3


def test_small_scale_uses_the_quick_recipe_with_the_sampler_measured_best_on_validation():
    cfg = compose_train(["experiment=figure3d", "method=crossdit", "scale=small"])
    assert cfg.model.cosine_steps is None and cfg.model.eval_samples == 8
    sampler = build(cfg.model).sampler()
    assert type(sampler).__name__ == "DDIMSampler" and sampler.eta == 1.0
    assert sampler.nfe == 10 and sampler.timesteps()[0] == 38


@pytest.mark.parametrize("overrides, kind, nfe", [
    (["diffusion=ddim"], "DDIMSampler", 10),
    (["diffusion.sampler=ddim", "diffusion.sampling_steps=10", "diffusion.eta=1.0"], "DDIMSampler", 10),
    (["diffusion.sampler=sde_dpm_solver", "diffusion.sampling_steps=8", "diffusion.spacing=logsnr"],
     "DPMSolverSampler", 8),
])
def test_the_diffusion_group_chooses_the_models_sampler(overrides, kind, nfe):
    module = build(compose_train(["model=catcrossdit", *overrides]).model)
    sampler = module.sampler()
    assert type(sampler).__name__ == kind and sampler.nfe == nfe
    for key in ("eta", "spacing"):
        if f"diffusion.{key}" in " ".join(overrides):
            assert str(getattr(sampler, key)) in " ".join(overrides)
