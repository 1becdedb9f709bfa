"""The variants of the recipe study (experiments/recipe_study.py): what each changes from the baseline, and how
its trained model is sampled for scoring.

Every variant is a list of `pertdit train` overrides on top of `BASE` (the collection benchmark of docs/results.md /
docs/recipe.md with the quick CPU recipe and a compute budget), and a list of evaluations: a sampler setting
and the numbers of samples averaged. The first evaluation of a variant is its primary one (the one compared
with the baseline); the others are eval-only factors measured on the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The collection benchmark (docs/results.md): seed redraws held-out drugs, validation rows, init and sampling noise.
BENCHMARK = ["data=bundle", "split=unseen", "split.test_cells=[HT115]", "split.drug_fraction=0.2"]
# The quick CPU DiT recipe, RDKit fingerprint token, CrossDiT; no test (validation rows only), no logger.
QUICK = ["model=crossdit", "perturbation=rdkit", "preset=cpu_quick", "logger=[]", "test=false",
         "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
CPU_MINUTES = 2.0


def base_overrides(cpu_minutes: float = CPU_MINUTES) -> list[str]:
    """Everything every cell shares: the benchmark, the quick recipe and the compute budget."""
    return [*BENCHMARK, *QUICK, f"callbacks.compute_budget.cpu_minutes={cpu_minutes:g}"]


@dataclass(frozen=True)
class Evaluation:
    """How a trained model is sampled for scoring: `diffusion.*` sampler overrides, and the numbers of
    samples whose mean is scored (drawn once: the first k of the largest count)."""

    label: str
    sampler: tuple[str, ...] = ()
    samples: tuple[int, ...] = (8,)


@dataclass(frozen=True)
class Variant:
    """One factor changed from the baseline (`factor` names it), or a combination."""

    name: str
    factor: str
    overrides: tuple[str, ...] = ()
    evaluations: tuple[Evaluation, ...] = (Evaluation("quick", samples=(1, 8)),)
    note: str = ""
    models: tuple[str, ...] = field(default=())  # reference models (mean_shift, prnet) instead of a DiT


QUICK_SAMPLER = Evaluation("quick", samples=(1, 8))
FLOW_EULER = ("diffusion.sampler=euler", "diffusion.eta=0", "diffusion.max_timestep=null",
              "diffusion.sampling_steps=10")
FLOW = ("diffusion=flow", *FLOW_EULER)

VARIANTS: tuple[Variant, ...] = (
    Variant("baseline", "baseline", (), (QUICK_SAMPLER,), "preset=cpu_quick on the collection: eps prediction, T=50 scaled-linear, raw expression, d_model 32, "
       "1 layer, lr 3e-3, cosine over 100 epochs cut by the budget, no EMA"),
    Variant("prediction_x0", "parametrisation", ("diffusion.prediction=x0",)),
    Variant("prediction_v", "parametrisation", ("diffusion.prediction=v",)),
    Variant("flow_matching", "objective", FLOW, (Evaluation("Euler-10", FLOW_EULER, (1, 8)),)),
    Variant("min_snr_5", "loss weighting", ("diffusion.loss_weighting=min_snr", "diffusion.min_snr_gamma=5")),
    Variant("schedule_cosine", "noise schedule", ("diffusion.schedule.beta_schedule=cosine",
                                                  "diffusion.max_timestep=44"), (
        Evaluation("DDIM-10 eta 1 from t=44 (abar 0.024)"),
        Evaluation("DDIM-10 eta 1 from t=49", ("diffusion.max_timestep=null",)),
    )),
    Variant("schedule_T200", "noise schedule", ("diffusion.schedule.num_train_timesteps=200",
                                                "diffusion.schedule.beta_start=0.0005",
                                                "diffusion.schedule.beta_end=0.1", "diffusion.max_timestep=158"),
            (Evaluation("DDIM-10 eta 1 from t=158 (abar 0.021)"),),
            "T=200 scaled-linear with betas / 4 (about the same abar curve)"),
    Variant("target_shift", "diffused variable", ("diffusion.target=shift",)),
    Variant("standardize", "standardisation", ("diffusion.standardize=true",)),
    Variant("width_64", "width", ("model.backbone.d_model=64", "model.backbone.mlp_hidden=64")),
    Variant("depth_2", "depth", ("model.backbone.n_layers=2",)),
    Variant("lr_cosine_to_budget", "learning-rate schedule", ("trainer.max_steps=420",),
            note="the cosine ends at step 420 (about what 5 CPU-minutes buy) instead of being cut by the budget"),
    Variant("ema_0.99", "EMA", ("diffusion.ema_decay=0.99",)),
)

REFERENCES: tuple[Variant, ...] = (
    Variant("mean_shift", "reference", ("model=mean_shift",), (Evaluation("point", samples=(1,)),),
            models=("mean_shift",)),
    Variant("prnet", "reference", ("model=prnet",), (Evaluation("sample (published)", samples=(1,)),
                                                     Evaluation("mean", ("model.predict_mode=mean",), (1,))),
            "PRnet at its defaults with the same CPU budget, its own early stopping on val/mse; best checkpoint",
            models=("prnet",)),
)


def variant_by_name(name: str) -> Variant:
    for variant in (*VARIANTS, *REFERENCES):
        if variant.name == name:
            return variant
    raise KeyError(f"no recipe variant {name!r}; known: {', '.join(v.name for v in (*VARIANTS, *REFERENCES))}")
