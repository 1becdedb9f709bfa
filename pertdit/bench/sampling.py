"""Sampling: every sampler candidate's speed, network evaluations (NFE) and per-sample R2 / PCC(lnFC) on the
validation rows of the plate's drug-held-out split, with a small model trained there; and sampling speed at
the timed (authors') size."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import instantiate

from pertdit.bench.context import Batch, BenchContext, autocast, to_device
from pertdit.bench.results import Section, Table
from pertdit.bench.sampler_study import (
    CANDIDATES,
    SamplerChoice,
    per_sample_scores,
    sample_predictions,
    score_sampler,
)
from pertdit.bench.timing import Stopwatch, time_fn

TITLE = "Sampling: samplers compared on validation rows, speed and accuracy"
ACCURACY_SPLIT = "drug_unseen"


def sample_with(module, batch: Batch, choice: SamplerChoice, seed: int, bf16: bool) -> torch.Tensor:
    """One seeded prediction of the batch by `module` with the sampler `choice`."""
    device = batch["c_pre"].device
    with autocast(str(device), bf16):
        return sample_predictions(module, batch, choice.build(module.schedule), seed).float()


def train_accuracy_model(ctx: BenchContext):
    """A small model of the settings' accuracy size, trained by Lightning on the train rows of the plate's
    drug-held-out split (no EMA); returns it, its data module and a description."""
    device = "cuda" if "cuda" in ctx.devices else ctx.devices[0]
    s = ctx.settings[device]
    hardware = ["trainer.accelerator=gpu", "trainer.precision=bf16-mixed"] if device == "cuda" else \
        ["trainer.accelerator=cpu"]
    overrides = [f"split={ACCURACY_SPLIT}", f"model={s.accuracy_model}", *s.accuracy_size.overrides(),
                 "model.ema_decay=null", "model.warmup_steps=50", "model.cosine_steps=null",
                 f"trainer.max_epochs={s.accuracy_epochs}", "trainer.limit_val_batches=0", "callbacks=none",
                 "logger=[]", "trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false",
                 "++trainer.enable_checkpointing=false", *hardware]
    from pertdit.train import build_datamodule, build_model

    cfg = ctx.compose(overrides, run_name="accuracy")
    dm = build_datamodule(cfg)
    module = build_model(cfg, dm, Path(cfg.paths.run_dir))
    trainer = instantiate(cfg.trainer, callbacks=[], logger=False)
    ctx.log(f"sampling: training the accuracy model ({s.accuracy_model}, {s.accuracy_epochs} epochs) on {device}")
    with Stopwatch(device) as watch:
        trainer.fit(module, datamodule=dm)
    loss = trainer.callback_metrics.get("train/loss")
    info = {"device": device, "epochs": s.accuracy_epochs, "steps": trainer.global_step, "seconds": watch.seconds,
            "loss": float(loss) if loss is not None else float("nan"), "model": s.accuracy_model,
            "size": s.accuracy_size, "n_train": len(dm.rows["train"])}
    return module.eval(), dm, info


def _accuracy(ctx: BenchContext, section: Section) -> None:
    module, dm, info = train_accuracy_model(ctx)
    backbone = type(module.backbone).__name__
    table = Table(["sampler", "device", "NFE", "s per prediction of the rows", "per-sample R2 (SD)",
                   "per-sample PCC(lnFC) (SD)", "R2 - DDPM-50", "PCC - DDPM-50"])
    seeds = list(range(ctx.settings[ctx.devices[0]].accuracy_seeds))
    rows = dm.rows["val"][: ctx.settings[ctx.devices[0]].test_profiles]
    for device in ctx.devices:
        module.to(device)
        batch = to_device(dm.batch_of_rows(rows), device)
        reference = None
        for choice in CANDIDATES:
            ctx.log(f"sampling: {choice.label} of {len(rows)} validation profiles x {len(seeds)} seeds on {device}")
            with torch.no_grad(), autocast(device, ctx.settings[device].autocast_bf16):
                result = score_sampler(module, batch, choice, seeds)
            reference = reference or result
            name = f"trained_{backbone}/{choice.label}"
            section.row(f"{name}/nfe", result["nfe"], "evaluations", "any")
            section.row(f"{name}/seconds", result["seconds"], "s", device, f"{len(rows)} validation profiles")
            section.row(f"{name}/r2_per_sample", result["r2"], "R2", device, f"mean over {len(seeds)} seeds")
            section.row(f"{name}/pcc_lnfc_per_sample", result["pcc"], "PCC", device, f"mean over {len(seeds)} seeds")
            table.add(choice.label, device, result["nfe"], result["seconds"],
                      f"{result['r2']:.3f} ({result['r2_sd']:.3f})", f"{result['pcc']:.3f} ({result['pcc_sd']:.3f})",
                      f"{result['r2'] - reference['r2']:+.3f}", f"{result['pcc'] - reference['pcc']:+.3f}")
    target = "standardised" if module.hparams.standardize else "raw (log-expression)"
    control_batch = dm.batch_of_rows(rows)
    r2, _ = per_sample_scores(control_batch, control_batch["c_pre"], bool(module.relu_predictions))
    section.row("control_baseline/r2_per_sample", r2, "R2", "any", "prediction = the paired control profile")
    table.add("(reference: predict the control profile)", "-", "-", "-", f"{r2:.3f}", "n/a (lnFC = 0)", "-", "-")
    table.caption = (f"Trained model: {backbone} (`model={info['model']}`), {info['size'].describe()}; "
                     f"{info['epochs']} epoch(s) = {info['steps']} optimiser steps on {info['n_train']} training "
                     f"profiles of `split={ACCURACY_SPLIT}` ({info['seconds']:.0f} s on {info['device']}, last "
                     f"training loss {info['loss']:.3f}), no EMA, {target} target; scored on {len(rows)} "
                     f"validation profiles of that split, one sample per profile, mean (SD) over sampling seeds "
                     f"{seeds}. The test rows are never scored here.")
    section.tables.append(table)


def _timed_size(ctx: BenchContext, section: Section) -> None:
    table = Table(["sampler", "device", "NFE", "s for the rows", "profiles / s", "speed-up vs DDPM-50", "how"])
    timed = [c for c in CANDIDATES if c.label in ("DDPM-50", "DDIM-25 (eta 0)", "DDIM-10 (eta 1, ancestral)")]
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
        for choice in timed:
            nfe = choice.build(module.schedule).nfe
            if per_step is not None:
                seconds, how = nfe * per_step.median, f"estimated: {nfe} x one step ({per_step.describe(s.warmup)})"
            else:
                ctx.log(f"sampling: {choice.label} of {len(rows)} profiles with {backbone} at the timed size")
                timing = time_fn(lambda: sample_with(module, batch, choice, ctx.seed, s.autocast_bf16),
                                 device, warmup=1, repeats=s.sampling_repeats)
                seconds, how = timing.median, f"measured ({timing.describe(1)})"
            ddpm_seconds = ddpm_seconds or seconds
            name = f"{backbone}/{choice.label}"
            section.row(f"{name}/seconds", seconds, "s", device, f"{len(rows)} profiles; {how}")
            section.row(f"{name}/throughput", len(rows) / seconds, "profiles/s", device, how)
            section.row(f"{name}/speedup_vs_ddpm", ddpm_seconds / seconds, "x", device)
            table.add(choice.label, device, nfe, seconds, len(rows) / seconds, ddpm_seconds / seconds, how)
        table.caption = (f"Timed size: {backbone} (`model={s.sampling_model}`), {s.size.describe()}, untrained "
                         f"weights (speed depends on the number of network evaluations, not on them), "
                         f"{len(rows)} profiles in one batch.")
    section.tables.append(table)


def run(ctx: BenchContext) -> Section:
    section = Section("sampling", TITLE)
    section.method = (
        "Each sampler (`pertdit.diffusion.make_sampler`, chosen by `diffusion.sampler`, `sampling_steps`, `eta`, "
        "`spacing`, `solver_order`) predicts every validation profile of the plate's drug-held-out split once per "
        "seed with the same trained model (`pertdit.bench.sampler_study`); accuracy is the per-sample R2 and "
        "PCC(lnFC) of `pertdit.metrics.compute_measures` (ReLU on predictions as configured), and NFE the number "
        "of network evaluations. The model is small and trained briefly, so its scores compare the samplers, "
        "not the method. Why deterministic few-step samplers lose accuracy: docs/diffusion.md. On CPU the "
        "authors' size is too slow to sample whole runs: one denoising step is timed and multiplied by the "
        "number of steps (the sampler's own arithmetic is negligible beside the network).")
    _accuracy(ctx, section)
    _timed_size(ctx, section)
    return section
