"""Peak memory of one training step per batch size (authors' size; sdpa and naive attention).

CUDA: `torch.cuda.max_memory_allocated` during a step (after a warm-up step) minus the memory allocated
before it. CPU: peak resident-set growth of the first training step in a fresh child process, read from
Linux's /proc/self/status (VmHWM after the step minus VmRSS before; the high-water mark is reset through
/proc/self/clear_refs just before the step), so earlier benchmarks' caches do not hide or inflate it.
Run a CPU measurement alone with `python -m pertdit.bench.memory '<json spec>'`.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from pertdit.bench.context import BenchContext, quiet
from pertdit.bench.results import Section, Table
from pertdit.bench.settings import ModelSize
from pertdit.bench.training import backbone_name, make_train_step

TITLE = "Peak memory per batch size"
MIB = 2**20
CPU_METHOD = "peak RSS growth of the first step in a fresh child process (VmHWM - VmRSS, clear_refs reset)"
CUDA_METHOD = "torch.cuda.max_memory_allocated during a step minus memory allocated before it"


def _proc_status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(f"{key} not in /proc/self/status (peak RSS needs Linux)")


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure_cpu_step(ctx: BenchContext, model: str, size: ModelSize, impl: str, batch_size: int) -> dict:
    """In this process (meant to be a fresh child): RSS growth of one training step, in bytes."""
    with quiet():
        module = ctx.module(model, size, "cpu", overrides=[f"model.backbone.attn_impl={impl}"])
        step = make_train_step(module, "cpu", bf16=False)
        batch = ctx.batch(batch_size, "cpu")
        gc.collect()
        reset = _reset_peak_rss()
        before = _proc_status_kib("VmRSS") * 1024
        step(batch)
        peak = _proc_status_kib("VmHWM") * 1024
    return {"backbone": backbone_name(module), "growth": max(0, peak - before), "peak": peak, "before": before,
            "reset": reset}


def measure_cuda_step(ctx: BenchContext, model: str, size: ModelSize, impl: str, batch_size: int) -> dict:
    """Peak CUDA memory of one training step (after a warm-up step) above what was allocated before it."""
    with quiet():
        module = ctx.module(model, size, "cuda", overrides=[f"model.backbone.attn_impl={impl}"])
        step = make_train_step(module, "cuda", bf16=ctx.settings["cuda"].autocast_bf16)
        batch = ctx.batch(batch_size, "cuda")
        try:
            step(batch)
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            step(batch)
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
            result = {"growth": peak - before, "peak": peak, "before": before, "reset": True}
        except torch.cuda.OutOfMemoryError:
            result = {"growth": float("nan"), "peak": float("nan"), "before": float("nan"), "reset": True,
                      "error": "out of memory"}
        name = backbone_name(module)
        del module, step, batch
        gc.collect()
        torch.cuda.empty_cache()
    return {"backbone": name, **result}


def measure_in_child(ctx: BenchContext, model: str, size: ModelSize, impl: str, batch_size: int) -> dict:
    """Run `measure_cpu_step` in a fresh Python process and return its result."""
    spec = {"model": model, "size": asdict(size), "impl": impl, "batch_size": batch_size, "quick": ctx.quick,
            "data_dir": ctx.data_dir, "cache_dir": ctx.cache_dir, "seed": ctx.seed,
            "threads": torch.get_num_threads(), "workdir": str(ctx.workdir / "memory-child")}
    proc = subprocess.run([sys.executable, "-m", "pertdit.bench.memory", json.dumps(spec)], capture_output=True,
                          text=True, timeout=900)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"backbone": model, "growth": float("nan"), "peak": float("nan"), "before": float("nan"),
                "reset": False, "error": (proc.stderr.strip().splitlines() or ["child failed"])[-1]}
    return json.loads(lines[-1])


def run(ctx: BenchContext) -> Section:
    section = Section("memory", TITLE)
    table = Table(["backbone", "attention", "device", "batch", "peak growth (MiB)", "MiB / profile",
                   "process / device peak (MiB)", "note"])
    for device in ctx.devices:
        s = ctx.settings[device]
        for impl, batches in (("sdpa", s.memory_batches), ("naive", s.memory_naive_batches)):
            for batch_size in batches:
                ctx.log(f"memory: {s.memory_model} ({impl}) training step, batch {batch_size}, on {device}")
                if device == "cuda":
                    result = measure_cuda_step(ctx, s.memory_model, s.size, impl, batch_size)
                else:
                    result = measure_in_child(ctx, s.memory_model, s.size, impl, batch_size)
                method = CUDA_METHOD if device == "cuda" else CPU_METHOD
                note = result.get("error") or ("" if result["reset"] else "high-water mark not resettable: "
                                                                       "includes set-up")
                growth = result["growth"] / MIB
                section.row(f"{result['backbone']}/{impl}/batch{batch_size}/peak_growth", growth, "MiB", device,
                            f"{method}; {note}".rstrip("; "))
                section.row(f"{result['backbone']}/{impl}/batch{batch_size}/peak_total", result["peak"] / MIB,
                            "MiB", device, "process peak RSS" if device == "cpu" else "max_memory_allocated")
                table.add(result["backbone"], impl, device, batch_size, growth, growth / batch_size,
                          result["peak"] / MIB, note or "-")
        method = CUDA_METHOD if device == "cuda" else CPU_METHOD
        section.method += (f"**{device}**: {s.size.describe()}, one training step (as in the training "
                           f"section) at each batch size; method: {method}. ")
    section.method += ("Growth is what the step adds (activations kept for backward, gradients, attention "
                       "scores, temporaries; on CPU also AdamW's state, created by the first step).")
    section.tables.append(table)
    return section


def _child_main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    torch.set_num_threads(spec["threads"])
    ctx = BenchContext(["cpu"], quick=spec["quick"], data_dir=spec["data_dir"], cache_dir=spec["cache_dir"],
                       seed=spec["seed"], workdir=spec["workdir"], verbose=False)
    result = measure_cpu_step(ctx, spec["model"], ModelSize(**spec["size"]), spec["impl"], spec["batch_size"])
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
