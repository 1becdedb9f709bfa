"""Training throughput (profiles/s) of each diffusion backbone at the authors' size: one optimiser step of
`DiffusionModule.training_step` (noise, forward, MSE) + backward + gradient clipping + AdamW + EMA update."""

from __future__ import annotations

from collections.abc import Callable

import torch

from pertdit.bench.context import Batch, BenchContext, autocast
from pertdit.bench.results import Section, Table
from pertdit.bench.timing import time_fn

TITLE = "Training throughput per backbone"


def make_train_step(module, device: str, bf16: bool, clip: float = 1.0) -> Callable[[Batch], None]:
    """One optimisation step as the Trainer runs it (AdamW with the module's lr / weight decay)."""
    params = [p for p in module.backbone.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=module.hparams.lr, weight_decay=module.hparams.weight_decay)
    module.train()

    def step(batch: Batch) -> None:
        with autocast(device, bf16):
            loss = module.training_step(batch, 0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        module.on_train_batch_end(loss, batch, 0)

    return step


def backbone_name(module) -> str:
    return type(module.backbone).__name__


def measure_step(ctx: BenchContext, model: str, device: str) -> dict:
    """Median step time of `model` at the settings' size and batch on `device`."""
    s = ctx.settings[device]
    module = ctx.module(model, s.size, device)
    step = make_train_step(module, device, s.autocast_bf16)
    batch = ctx.batch(s.batch_size, device)
    warm = ctx.batch(s.warmup_batch, device) if s.warmup_batch else batch
    timing = time_fn(lambda: step(batch), device, warmup=s.warmup, repeats=s.repeats, warmup_fn=lambda: step(warm))
    n_params = sum(p.numel() for p in module.backbone.parameters())
    return {"backbone": backbone_name(module), "seconds": timing.median, "timing": timing,
            "profiles_per_s": s.batch_size / timing.median, "params": n_params}


def run(ctx: BenchContext) -> Section:
    section = Section("training", TITLE)
    table = Table(["backbone (config)", "device", "batch", "s / step", "profiles / s", "parameters"])
    for device in ctx.devices:
        s = ctx.settings[device]
        for model in s.models:
            ctx.log(f"training step: {model} on {device}, batch {s.batch_size}")
            result = measure_step(ctx, model, device)
            ctx.shared[("train_step", device, model)] = result
            name = result["backbone"]
            section.row(f"{name}/seconds_per_step", result["seconds"], "s", device, f"batch {s.batch_size}")
            section.row(f"{name}/throughput", result["profiles_per_s"], "profiles/s", device,
                        f"batch {s.batch_size}; {result['timing'].describe(s.warmup)}")
            table.add(f"{name} (`model={model}`)", device, s.batch_size, result["seconds"],
                      result["profiles_per_s"], f"{result['params']:,}")
        warm = f"batch {s.warmup_batch}" if s.warmup_batch else "the same batch"
        precision = "bf16 autocast" if s.autocast_bf16 else "float32"
        section.method += (
            f"**{device}**: {s.size.describe()}, {s.batch_size} real profiles of the plate (978 genes, FCFP4 drug "
            f"token), {precision}; {s.warmup} untimed warm-up step(s) on {warm}, then the median of {s.repeats} "
            f"timed step(s). ")
    section.method += ("A step is what the Trainer runs per batch: `DiffusionModule.training_step` (random t, "
                       "noise, eps-prediction MSE), backward, gradient clipping at 1.0, AdamW, EMA update.")
    section.tables.append(table)
    return section
