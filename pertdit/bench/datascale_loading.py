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
from pertdit.bench.processes import evict_from_page_cache, measured_run
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


def text_token_speed(batches: int, seed: int = 0, dim: int = 1024) -> dict:
    """profiles/s of assembling text `c_pert` alone (`FactoredFeatures.gather`, batch 64) from token tables
    shaped like full L1000's: 2,000 descriptions of 40-200 tokens, 12 prompts of 12 tokens, d_text 1024,
    conditions = description x prompt (random values; only the shapes matter)."""
    import numpy as np

    from pertdit.perturbation.factored import FactoredFeatures, TokenTable

    rng = np.random.default_rng(seed)
    tables = []
    for n, low, high in ((2000, 40, 200), (12, 12, 13)):
        lengths = rng.integers(low, high, size=n)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        tables.append(TokenTable(rng.standard_normal((int(offsets[-1]), dim), dtype=np.float32).astype(np.float16),
                                 offsets))
    index = np.stack(np.meshgrid(np.arange(2000), np.arange(12), indexing="ij"), -1).reshape(-1, 2)
    features = FactoredFeatures(tables, index, [(f"s{i}", float(j)) for i, j in index])
    start = time.perf_counter()
    for _ in range(batches):
        features.gather(rng.integers(0, len(index), size=64))
    seconds = time.perf_counter() - start
    return {"profiles_per_s": 64 * batches / seconds, "mean_length": float(features._lengths.sum(1).mean())}


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
    table = Table(["loader", "profiles / s", "CPU step profiles / s (measured)", "loader / CPU step",
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
        with quiet():
            dm = _datamodule(release, cache, ctx.seed, workers)
        for read in ("first read (from disk)", "again (page cache)"):
            if read.startswith("first"):
                evict_from_page_cache(cache / "datasets")
            ctx.log(f"datascale: train loader on the memory-mapped cache, num_workers {workers}, {read}")
            with quiet():
                speed = _loader_speed(dm, s.scale_loader_batches)  # the same batches both times
            rate = speed["profiles_per_s"]
            key = "disk" if read.startswith("first") else "cached"
            section.row(f"loader_workers{workers}_{key}/throughput", rate, "profiles/s", "cpu",
                        f"{speed['batches']} batches of 64 from {len(dm.rows['train']):,} training rows, {read}")
            table.add(f"FCFP4, num_workers {workers}, {read}", rate, cpu_step["profiles_per_s"],
                      rate / cpu_step["profiles_per_s"], gpu_rate, rate / gpu_rate,
                      f"{1000 * 64 / rate:.1f} ms / batch of 64")
        mapped = type(dm.adata.X).__name__
    text = text_token_speed(s.scale_loader_batches // 4 or 1, ctx.seed)
    section.row("text_tokens/throughput", text["profiles_per_s"], "profiles/s", "cpu",
                f"c_pert only, mean {text['mean_length']:.0f} tokens x 1024")
    table.add(f"text c_pert alone ({text['mean_length']:.0f} tokens x 1024 per profile)", text["profiles_per_s"],
              "", "", "", "", f"{1000 * 64 / text['profiles_per_s']:.1f} ms / batch of 64")
    table.caption = (
        f"Train loader of `data=geo_synthetic` on the largest release's cache (X {mapped}, batch 64, FCFP4 token), "
        f"the same {s.scale_loader_batches} batches twice: first with the cache file dropped from the page cache "
        "(rows read from disk), then again; last row: assembling the text tokens of a batch alone "
        "(`FactoredFeatures.gather`, tables shaped like full L1000's, d_text 1024). CPU step: `crossdit` at the authors' size (training section or measured "
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
