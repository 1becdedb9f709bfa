"""The diffusion recipe's choices, measured on validation rows of the plate's drug-held-out split.

Trains the quick CPU CrossDiT of `pertdit demo` (d_model 32, one layer, 400 optimiser steps, EMA 0.98 kept
beside the raw weights) with the target standardised or raw (the authors'), one model per split seed, and
scores on the split's validation rows (never its test rows):
- `choices`: DDPM-50 predictions with EMA or raw weights, 1 sample (mean over sampling seeds) or the mean of 8;
- `samplers`: every candidate of `pertdit.bench.sampler_study.CANDIDATES` on the same models;
- `trajectories`: why deterministic few-step samplers lose accuracy: the spread of x_t along the reverse
  chain against the spread the model was trained on, and the error of the x0 predictions.

    python -m experiments.diffusion_choices --seeds 0 1 --out outputs/diffusion_choices [--models DIR]

Results: `<out>/choices.csv`, `<out>/samplers.csv`, `<out>/trajectories.csv` and a markdown summary on stdout
(docs/diffusion.md records them).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from pertdit.bench.sampler_study import CANDIDATES, SamplerChoice, score_sampler
from pertdit.config import CONFIG_DIR, register_resolvers
from pertdit.demo import QUICK_MODEL
from pertdit.diffusion import backbone_eps_fn
from pertdit.lit.diffusion import DiffusionModule
from pertdit.train import build_datamodule, build_model

TARGETS = {"standardised": ["diffusion.standardize=true"], "raw": ["diffusion.standardize=false"]}
SAMPLING_SEEDS = [0, 1, 2]


def compose_config(variant: str, seed: int, run_dir: Path):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=["model=crossdit", "split=drug_unseen", *QUICK_MODEL, "logger=[]",
                                           *TARGETS[variant], f"seed={seed}", f"paths.run_dir={run_dir}"])


def trained_model(variant: str, seed: int, models: Path):
    """The model of (variant, seed): loaded from `models/<variant>_s<seed>/model.ckpt`, else trained there."""
    run_dir = models / f"{variant}_s{seed}"
    cfg = compose_config(variant, seed, run_dir)
    dm = build_datamodule(cfg)
    checkpoint = run_dir / "model.ckpt"
    if checkpoint.is_file():
        return DiffusionModule.load_from_checkpoint(checkpoint, weights_only=False).eval(), dm
    L.seed_everything(cfg.seed)
    model = build_model(cfg, dm, run_dir)
    trainer = instantiate(cfg.trainer, callbacks=[], logger=False, enable_checkpointing=False)
    trainer.fit(model, datamodule=dm)
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(checkpoint)
    return model.eval(), dm


def choices_rows(module, batch, variant: str, seed: int) -> list[dict]:
    ddpm = CANDIDATES[0]
    rows = []
    for use_ema in (True, False):
        for n_samples, seeds in ((1, SAMPLING_SEEDS), (8, [0])):
            row = score_sampler(module, batch, ddpm, seeds, n_samples=n_samples, use_ema=use_ema)
            rows.append({"target": variant, "split_seed": seed,
                         "weights": "EMA 0.98" if use_ema else "raw", **row})
    return rows


MEAN_OF_8 = ("DDPM-50", "DDIM-10 (eta 0)", "DDIM-10 (eta 1, ancestral)", "SDE-DPM-Solver++(2M)-10",
             "DDIM-10 (eta 0, from t=38)", "DPM-Solver++(2M)-10 (from t=38)", "DDIM-10 (eta 1, from t=38)")


def sampler_rows(module, batch, variant: str, seed: int, candidates: list[SamplerChoice],
                 done: list[dict]) -> list[dict]:
    """Every candidate with 1 sample (3 sampling seeds), and those of `MEAN_OF_8` with the mean of 8; the
    DDPM-50 rows with EMA weights are taken from `done` (the choices of the same model) when there."""
    target = variant
    rows = []
    for choice in candidates:
        for n_samples, seeds in ((1, SAMPLING_SEEDS), (8, [0])):
            if n_samples == 8 and choice.label not in MEAN_OF_8:
                continue
            same = [r for r in done if r["split_seed"] == seed and r["target"] == target and r["weights"] ==
                    "EMA 0.98" and r["sampler"] == choice.label and r["samples"] == n_samples]
            row = {k: v for k, v in same[0].items() if k != "weights"} if same else {
                "target": target, "split_seed": seed, **score_sampler(module, batch, choice, seeds, n_samples)}
            rows.append(row)
    return rows


@torch.no_grad()
def trajectory_rows(module, batch, choice: SamplerChoice, seed: int = 0) -> list[dict]:
    """Per visited timestep: var(x_t) / the variance of x_t under the forward process, MSE(x0_hat, x0)."""
    schedule, sampler = module.schedule, choice.build(module.schedule)
    net = module.ema if module.ema is not None else module.backbone
    eps_fn = backbone_eps_fn(net, batch["c_pre"], batch["c_pert"], batch["c_pert_mask"], 1.0)
    x0 = module.to_model_space(batch)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(x0.shape, generator=generator)
    rows = []
    for index, t in enumerate(sampler.timesteps()):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long)
        eps = eps_fn(x, t_batch)
        abar = float(schedule.alphas_cumprod[t])
        forward_var = abar * float(x0.var()) + 1 - abar
        x0_hat = schedule.predict_x0(x, eps, t_batch)
        rows.append({"sampler": choice.label, "t": t, "abar": abar, "var_ratio": float(x.var()) / forward_var,
                     "x0_hat_mse": float(((x0_hat - x0) ** 2).mean())})
        x = sampler.step(eps, index, x, generator)
    rows.append({"sampler": choice.label, "t": -1, "abar": 1.0, "var_ratio": float(x.var()) / float(x0.var()),
                 "x0_hat_mse": float(((x - x0) ** 2).mean())})
    return rows


@torch.no_grad()
def model_error_rows(module, batch, timesteps=(0, 5, 11, 22, 33, 38, 44, 49), repeats: int = 4) -> list[dict]:
    """The network's error on forward-noised validation profiles: MSE of eps and of the implied x0."""
    schedule = module.schedule
    net = module.ema if module.ema is not None else module.backbone
    eps_fn = backbone_eps_fn(net, batch["c_pre"], batch["c_pert"], batch["c_pert_mask"], 1.0)
    x0 = module.to_model_space(batch)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for t in timesteps:
        t_batch = torch.full((x0.shape[0],), t, dtype=torch.long)
        eps_err, x0_err = 0.0, 0.0
        for _ in range(repeats):
            noise = torch.randn(x0.shape, generator=generator)
            x_t = schedule.add_noise(x0, noise, t_batch)
            eps = eps_fn(x_t, t_batch)
            eps_err += float(((eps - noise) ** 2).mean()) / repeats
            x0_err += float(((schedule.predict_x0(x_t, eps, t_batch) - x0) ** 2).mean()) / repeats
        rows.append({"t": t, "abar": float(schedule.alphas_cumprod[t]), "eps_mse": eps_err, "x0_hat_mse": x0_err})
    return rows


def markdown(frame: pd.DataFrame) -> str:
    """A markdown table of `frame` (floats with 3 significant digits after the point)."""
    def cell(value) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def summary(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean over split seeds of the per-seed means, with the SD over sampling seeds averaged."""
    return frame.groupby(by, sort=False)[["nfe", "seconds", "r2", "r2_sd", "pcc", "pcc_sd"]].mean().reset_index()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="split (and training) seeds")
    parser.add_argument("--variants", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--parts", nargs="+", default=["choices", "samplers", "trajectories"],
                        choices=["choices", "samplers", "trajectories"])
    parser.add_argument("--samplers", nargs="+", default=[c.label for c in CANDIDATES])
    parser.add_argument("--sampler-variants", nargs="+", default=list(TARGETS), choices=list(TARGETS),
                        help="the targets whose models score every sampler")
    parser.add_argument("--models", type=Path, default=None, help="trained models (reused when present)")
    parser.add_argument("--out", type=Path, default=Path("outputs/diffusion_choices"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    candidates = [c for c in CANDIDATES if c.label in args.samplers]
    tables: dict[str, list[dict]] = {"choices": [], "samplers": [], "trajectories": [], "model_error": []}
    with tempfile.TemporaryDirectory() as tmp:
        models = args.models or Path(tmp)
        for variant in args.variants:
            for seed in args.seeds:
                module, dm = trained_model(variant, seed, models)
                batch = dm.batch_of_rows(dm.rows["val"])
                print(f"{variant} seed {seed}: {len(dm.rows['val'])} validation rows", flush=True)
                if "choices" in args.parts:
                    tables["choices"] += choices_rows(module, batch, variant, seed)
                if "samplers" in args.parts and variant in args.sampler_variants:
                    tables["samplers"] += sampler_rows(module, batch, variant, seed, candidates, tables["choices"])
                if "trajectories" in args.parts and seed == args.seeds[0]:
                    for choice in candidates:
                        tables["trajectories"] += trajectory_rows(module, batch, choice)
                    tables["model_error"] += model_error_rows(module, batch)
                for name, rows in tables.items():
                    if rows:
                        pd.DataFrame(rows).to_csv(args.out / f"{name}.csv", index=False)
    if tables["choices"]:
        print("\n" + markdown(summary(pd.DataFrame(tables["choices"]), ["target", "weights", "samples"])))
    if tables["samplers"]:
        print("\n" + markdown(summary(pd.DataFrame(tables["samplers"]), ["target", "sampler", "samples"])))
    for name in ("model_error", "trajectories"):
        if tables[name]:
            print("\n" + markdown(pd.DataFrame(tables[name])))


if __name__ == "__main__":
    main()
