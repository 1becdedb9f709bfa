"""Sampling: DDPM (T = 50) vs DDIM (25, 10 steps). Speed and per-sample R2 / PCC(lnFC) of a small model
trained briefly on the plate (random split), and speed at the timed (authors') size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate

from pertdit.bench.context import Batch, BenchContext, autocast, to_device
from pertdit.bench.results import Section, Table
from pertdit.bench.settings import SAMPLERS
from pertdit.bench.timing import Stopwatch, time_fn
from pertdit.metrics import compute_measures

TITLE = "Sampling: DDPM vs DDIM, speed and accuracy"


def sample_with(module, batch: Batch, sampler: str, steps: int, seed: int, bf16: bool) -> torch.Tensor:
    """`module.sample` with the sampler set to (`sampler`, `steps`), seeded; the module's settings restored."""
    saved = module.hparams.sampler, module.hparams.sampling_steps
    module.hparams.sampler, module.hparams.sampling_steps = sampler, steps
    device = batch["c_pre"].device
    try:
        with autocast(str(device), bf16):
            return module.sample(batch, generator=torch.Generator(device=device).manual_seed(seed)).float()
    finally:
        module.hparams.sampler, module.hparams.sampling_steps = saved


def per_sample_scores(batch: Batch, pred: torch.Tensor, relu: bool) -> tuple[float, float]:
    """Mean per-sample R2 and PCC(lnFC) of `pred` against the batch's truth (DESIGN.md, the 10 measures)."""
    table = compute_measures(batch["x0"].cpu().numpy(), pred.cpu().numpy(), batch["c_pre"].cpu().numpy(),
                             batch["cell_index"].cpu().numpy(), batch["drug_index"].cpu().numpy(),
                             batch["dose"].cpu().numpy(), relu=relu)
    per_sample = table[table["grouping"] == "per_sample"].set_index("metric")["mean"]
    return float(per_sample["r2"]), float(per_sample["pcc_lnfc"])


def train_accuracy_model(ctx: BenchContext):
    """A small model of the settings' accuracy size, trained by Lightning on the plate's train rows (no EMA)."""
    device = "cuda" if "cuda" in ctx.devices else ctx.devices[0]
    s = ctx.settings[device]
    hardware = ["trainer.accelerator=gpu", "trainer.precision=bf16-mixed"] if device == "cuda" else \
        ["trainer.accelerator=cpu"]
    overrides = [f"model={s.accuracy_model}", *s.accuracy_size.overrides(), "model.ema_decay=null",
                 "model.warmup_steps=50", f"trainer.max_epochs={s.accuracy_epochs}", "trainer.limit_val_batches=0",
                 "callbacks=none", "logger=[]", "trainer.enable_progress_bar=false",
                 "++trainer.enable_model_summary=false", "++trainer.enable_checkpointing=false", *hardware]
    from pertdit.train import build_model

    cfg = ctx.compose(overrides, run_name="accuracy")
    dm = ctx.datamodule()
    module = build_model(cfg, dm, Path(cfg.paths.run_dir))
    trainer = instantiate(cfg.trainer, callbacks=[], logger=False)
    ctx.log(f"sampling: training the accuracy model ({s.accuracy_model}, {s.accuracy_epochs} epochs) on {device}")
    with Stopwatch(device) as watch:
        trainer.fit(module, datamodule=dm)
    loss = trainer.callback_metrics.get("train/loss")
    info = {"device": device, "epochs": s.accuracy_epochs, "steps": trainer.global_step, "seconds": watch.seconds,
            "loss": float(loss) if loss is not None else float("nan"), "model": s.accuracy_model,
            "size": s.accuracy_size, "n_train": len(dm.rows["train"])}
    return module.eval(), info


def _accuracy(ctx: BenchContext, section: Section) -> None:
    module, info = train_accuracy_model(ctx)
    backbone = type(module.backbone).__name__
    table = Table(["sampler", "device", "steps", "s for the test set", "profiles / s", "speed-up vs DDPM",
                   "per-sample R2", "per-sample PCC(lnFC)"])
    rows = ctx.test_rows(ctx.devices[0])
    relu = bool(module.relu_predictions)
    for device in ctx.devices:
        s = ctx.settings[device]
        module.to(device)
        batch = to_device(ctx.datamodule().batch_of_rows(rows), device)
        ddpm_seconds = None
        for label, sampler, steps in SAMPLERS:
            ctx.log(f"sampling: {label} of {len(rows)} test profiles with the trained {backbone} on {device}")
            out: dict[str, torch.Tensor] = {}

            def go() -> None:
                out["pred"] = sample_with(module, batch, sampler, steps, ctx.seed, s.autocast_bf16)

            timing = time_fn(go, device, warmup=1, repeats=s.sampling_repeats,
                             warmup_fn=lambda: sample_with(module, batch, "ddim", 1, ctx.seed, s.autocast_bf16))
            r2, pcc = per_sample_scores(batch, out["pred"], relu)
            ddpm_seconds = ddpm_seconds or timing.median
            name = f"trained_{backbone}/{label}"
            section.row(f"{name}/seconds", timing.median, "s", device, f"{len(rows)} test profiles")
            section.row(f"{name}/throughput", len(rows) / timing.median, "profiles/s", device)
            section.row(f"{name}/speedup_vs_ddpm", ddpm_seconds / timing.median, "x", device)
            section.row(f"{name}/r2_per_sample", r2, "R2", device, "mean over test profiles")
            section.row(f"{name}/pcc_lnfc_per_sample", pcc, "PCC", device, "mean over test profiles")
            table.add(label, device, steps, timing.median, len(rows) / timing.median, ddpm_seconds / timing.median,
                      r2, pcc)
    control_batch = ctx.datamodule().batch_of_rows(rows)
    r2, pcc = per_sample_scores(control_batch, control_batch["c_pre"], relu)
    section.row("control_baseline/r2_per_sample", r2, "R2", "any", "prediction = the paired control profile")
    table.add("(reference: predict the control profile)", "-", "-", "-", "-", "-", r2, "n/a (lnFC = 0)")
    table.caption = (f"Trained model: {backbone} (`model={info['model']}`), {info['size'].describe()}; "
                     f"{info['epochs']} epoch(s) = {info['steps']} optimiser steps on {info['n_train']} training "
                     f"profiles ({info['seconds']:.0f} s on {info['device']}, last training loss "
                     f"{info['loss']:.3f}), no EMA; test set = {len(rows)} profiles of the plate's random split"
                     f"{'' if len(rows) == len(ctx.rows('test')) else ' (first ones only)'}.")
    section.tables.append(table)


def _timed_size(ctx: BenchContext, section: Section) -> None:
    table = Table(["sampler", "device", "steps", "s for the test set", "profiles / s", "speed-up vs DDPM", "how"])
    for device in ctx.devices:
        s = ctx.settings[device]
        rows = ctx.test_rows(device)
        module = ctx.module(s.sampling_model, s.size, device).eval()
        backbone = type(module.backbone).__name__
        batch = to_device(ctx.datamodule().batch_of_rows(rows), device)
        per_step = None
        if not s.sampling_full:
            ctx.log(f"sampling: one denoising step of {backbone} at the timed size on {device}")
            small = ctx.batch(s.warmup_batch or 2, device, part="test")

            def eps(b: Batch) -> None:
                t = torch.zeros(b["c_pre"].shape[0], dtype=torch.long, device=device)
                with torch.no_grad(), autocast(device, s.autocast_bf16):
                    module.backbone(b["c_pre"], t, b["c_pre"], b["c_pert"], b["c_pert_mask"])

            per_step = time_fn(lambda: eps(batch), device, warmup=s.warmup, repeats=s.repeats,
                               warmup_fn=lambda: eps(small))
        ddpm_seconds = None
        for label, sampler, steps in SAMPLERS:
            if per_step is not None:
                seconds, how = steps * per_step.median, f"estimated: {steps} x one step ({per_step.describe(s.warmup)})"
            else:
                ctx.log(f"sampling: {label} of {len(rows)} profiles with {backbone} at the timed size on {device}")
                timing = time_fn(lambda: sample_with(module, batch, sampler, steps, ctx.seed, s.autocast_bf16),
                                 device, warmup=1, repeats=s.sampling_repeats)
                seconds, how = timing.median, f"measured ({timing.describe(1)})"
            ddpm_seconds = ddpm_seconds or seconds
            name = f"{backbone}/{label}"
            section.row(f"{name}/seconds", seconds, "s", device, f"{len(rows)} profiles; {how}")
            section.row(f"{name}/throughput", len(rows) / seconds, "profiles/s", device, how)
            section.row(f"{name}/speedup_vs_ddpm", ddpm_seconds / seconds, "x", device)
            table.add(label, device, steps, seconds, len(rows) / seconds, ddpm_seconds / seconds, how)
        table.caption = (f"Timed size: {backbone} (`model={s.sampling_model}`), {s.size.describe()}, untrained "
                         f"weights (speed does not depend on them), {len(rows)} profiles in one batch.")
    section.tables.append(table)


def run(ctx: BenchContext) -> Section:
    section = Section("sampling", TITLE)
    section.method = (
        "Each sampler draws one prediction per test profile (one batch, seeded generator) through "
        "`DiffusionModule.sample` with `sampler`/`sampling_steps` set; accuracy is the per-sample R2 and "
        "PCC(lnFC) of `pertdit.metrics.compute_measures` (ReLU on predictions as configured). The accuracy model "
        "is small and trained briefly, so its scores describe the samplers, not the method. On CPU the "
        "authors' size is too slow to sample whole runs: one denoising step is timed and multiplied by the "
        "number of steps (the sampler's own arithmetic is negligible beside the network).")
    _accuracy(ctx, section)
    _timed_size(ctx, section)
    return section
