"""Parts of the data-scale section: the train loader on the preprocessed, memory-mapped synthetic cache against
the training step (CPU measured, GPU estimated from the step's FLOPs), and the memory of scoring 100k test
profiles with the streaming metric."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from pertdit.bench.context import BenchContext, quiet
from pertdit.bench.processes import measured_run
from pertdit.bench.results import Section, Table
from pertdit.config import CONFIG_DIR, register_resolvers

#: profiles of the GEO Level-3 releases, and the GSE92742 profiles left after filtering (DESIGN.md, "Scale")
GSE92742 = 1_319_138
GSE70138 = 345_976
GSE92742_KEPT = 883_269
GIB = 2**30


def _datamodule(release: Path, cache: Path, seed: int, num_workers: int):
    """The data module of `data=geo_synthetic` on `release` (its cache already built), FCFP4 drug token."""
    from pertdit.train import build_datamodule

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[
            "data=geo_synthetic", f"paths.data_dir={release}", f"paths.cache_dir={cache}", "perturbation=rdkit",
            "split=random_fold", f"seed={seed}", f"data.num_workers={num_workers}", "data.batch_size=64",
            f"paths.run_dir={cache.parent / 'loader'}"])
    return build_datamodule(cfg)


def _loader_speed(dm, batches: int) -> dict:
    """Iterate the train loader (whole epochs, reshuffled) for `batches` batches: profiles/s."""
    profiles = seen = 0
    start = time.perf_counter()
    while seen < batches:
        for batch in dm.train_dataloader():
            profiles += batch["x0"].shape[0]
            seen += 1
            if seen >= batches:
                break
    seconds = time.perf_counter() - start
    return {"profiles_per_s": profiles / seconds, "batches": seen, "seconds": seconds}


def step_flops(ctx: BenchContext, model: str = "crossdit", batch: int = 8) -> float:
    """FLOPs of one training step (forward + backward) at the authors' size, per profile."""
    from torch.utils.flop_counter import FlopCounterMode

    s = ctx.settings["cpu"]
    module = ctx.module(model, s.size, "cpu")
    module.train()
    data = ctx.batch(batch, "cpu")
    with FlopCounterMode(display=False) as counter:
        module.training_step(data, 0).backward()
    return counter.get_total_flops() / batch


def loader_rows(ctx: BenchContext, section: Section, release: Path, cache: Path) -> None:
    """Loader throughput from the largest release's cache vs the training step's consumption."""
    s = ctx.settings["cpu"]
    table = Table(["num_workers", "loader profiles / s", "CPU step profiles / s (measured)", "loader / CPU step",
                   "GPU step profiles / s (estimated)", "loader / GPU step", "GPU step the loader sustains"])
    cpu_step = ctx.shared.get(("train_step", "cpu", "crossdit"))
    if cpu_step is None:
        from pertdit.bench.training import measure_step

        ctx.log("datascale: timing the crossdit training step at the authors' size on cpu")
        with quiet():
            cpu_step = measure_step(ctx, "crossdit", "cpu")
    with quiet():
        flops = step_flops(ctx)
    gpu_rate = s.gpu_sustained_tflops * 1e12 / flops
    section.row("gpu_step/flops_per_profile", flops, "FLOP", "any", "crossdit, authors' size, forward + backward")
    mapped = "n/a"
    for workers in s.scale_loader_workers:
        ctx.log(f"datascale: train loader on the memory-mapped cache, num_workers {workers}")
        with quiet():
            dm = _datamodule(release, cache, ctx.seed, workers)
            speed = _loader_speed(dm, s.scale_loader_batches)
        rate = speed["profiles_per_s"]
        section.row(f"loader_workers{workers}/throughput", rate, "profiles/s", "cpu",
                    f"{speed['batches']} batches of 64 from {len(dm.rows['train']):,} training rows")
        table.add(workers, rate, cpu_step["profiles_per_s"], rate / cpu_step["profiles_per_s"], gpu_rate,
                  rate / gpu_rate, f"{1000 * 64 / rate:.1f} ms / batch of 64")
        mapped = type(dm.adata.X).__name__
    table.caption = (
        f"Train loader of `data=geo_synthetic` on the largest release's cache (X {mapped}, batch 64, FCFP4 token), "
        f"{s.scale_loader_batches} batches; CPU step: `crossdit` at the authors' size (training section or measured "
        f"here); GPU step: {flops / 1e9:.2f} GFLOP per profile per step (FlopCounterMode, forward + backward) at an "
        f"ASSUMED sustained {s.gpu_sustained_tflops:.0f} TFLOP/s (no GPU on this machine; about a third of an "
        "A100/H100's dense bf16 peak). The last column is the shortest step time the loader keeps up with.")
    section.tables.append(table)


def metric_rows(ctx: BenchContext, section: Section) -> None:
    """Peak memory of scoring N test profiles (streaming metric), in fresh child processes."""
    s = ctx.settings["cpu"]
    table = Table(["test profiles", "samples per (cell, drug, dose) group", "groups", "peak memory growth",
                   "three float32 copies of the profiles", "seconds"])
    for group_size in s.scale_eval_group_sizes:
        ctx.log(f"datascale: scoring {s.scale_eval_profiles:,} profiles, groups of {group_size}")
        done = measured_run([sys.executable, "-m", "pertdit.bench.eval_memory", str(s.scale_eval_profiles), "978",
                             str(group_size)])
        result = json.loads(done.stdout.strip().splitlines()[-1])
        section.row(f"eval_{group_size}/peak_growth", result["peak_growth_bytes"] / GIB, "GiB", "cpu",
                    f"{result['profiles']:,} profiles, {result['groups']:,} groups")
        table.add(f"{result['profiles']:,}", group_size, f"{result['groups']:,}",
                  f"{result['peak_growth_bytes'] / GIB:.2f} GiB", f"{result['profiles_bytes'] / GIB:.2f} GiB",
                  result["seconds"])
    table.caption = ("`PerturbationMetrics` fed batches of 64 random profiles (978 genes) and scored once "
                     "(`python -m pertdit.bench.eval_memory N 978 GROUP`): peak resident-set growth over the "
                     "process after imports. The metric keeps per-sample values and float64 per-group sums.")
    section.tables.append(table)
