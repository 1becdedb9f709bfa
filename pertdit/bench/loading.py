"""Data loading throughput of `PertDataModule.train_dataloader()` against the model's training step: the
loader must not be the bottleneck."""

from __future__ import annotations

import time

from pertdit.bench.context import BenchContext, to_device
from pertdit.bench.results import Section, Table
from pertdit.bench.timing import Stopwatch
from pertdit.bench.training import measure_step

TITLE = "Data loading vs the model step"


def loader_throughput(ctx: BenchContext, device: str) -> dict:
    """Iterate the train loader (whole epochs, reshuffled) until enough batches and time have passed."""
    s = ctx.settings[device]
    dm = ctx.datamodule()
    profiles = batches = 0
    start = time.perf_counter()
    with Stopwatch(device) as watch:
        while batches < s.loader_min_batches or time.perf_counter() - start < s.loader_min_seconds:
            for batch in dm.train_dataloader():
                if device != "cpu":
                    batch = to_device(batch, device)
                profiles += batch["x0"].shape[0]
                batches += 1
    return {"profiles_per_s": profiles / watch.seconds, "seconds_per_batch": watch.seconds / batches,
            "batches": batches, "batch_size": dm.batch_size, "num_workers": dm.num_workers}


def step_throughputs(ctx: BenchContext, device: str) -> dict[str, dict]:
    """Training-step results of this run (training section), else one model measured now."""
    found = {key[2]: value for key, value in ctx.shared.items() if key[:2] == ("train_step", device)}
    if not found:
        model = ctx.settings[device].sampling_model
        ctx.log(f"loading: timing the {model} training step on {device} (training section not run)")
        found[model] = measure_step(ctx, model, device)
    return found


def run(ctx: BenchContext) -> Section:
    section = Section("loading", TITLE)
    table = Table(["device", "loader profiles / s", "model step (timed size)", "step profiles / s",
                   "loader / step", "share of a step spent loading", "verdict"])
    for device in ctx.devices:
        ctx.log(f"loading: iterating the train loader on {device}")
        loader = loader_throughput(ctx, device)
        copy = " + copy to the GPU" if device != "cpu" else ""
        section.row("loader/throughput", loader["profiles_per_s"], "profiles/s", device,
                    f"batch {loader['batch_size']}, num_workers {loader['num_workers']}, {loader['batches']} "
                    f"batches{copy}")
        for model, step in step_throughputs(ctx, device).items():
            ratio = loader["profiles_per_s"] / step["profiles_per_s"]
            share = loader["seconds_per_batch"] / (loader["seconds_per_batch"] + step["seconds"])
            verdict = "loader is not the bottleneck" if ratio > 1 else "LOADER IS THE BOTTLENECK"
            section.row(f"{step['backbone']}/loader_over_step", ratio, "x", device, verdict)
            section.row(f"{step['backbone']}/loading_share", 100 * share, "%", device,
                        "loader time / (loader + step time) per batch")
            table.add(device, loader["profiles_per_s"], step["backbone"], step["profiles_per_s"], ratio,
                      f"{100 * share:.2g} %", verdict)
        section.method += (f"**{device}**: the plate's train loader (batch {loader['batch_size']}, "
                           f"num_workers {loader['num_workers']}, the data module's own collate) iterated for "
                           f"{loader['batches']} batches{copy}, against the training step of the training "
                           "section (same run). ")
    section.method += ("A ratio of N means the loader produces profiles N times as fast as the model consumes "
                       "them; with `num_workers: 0` loading and the step run in sequence, so the share column "
                       "is the part of each step's time spent loading.")
    section.tables.append(table)
    return section
