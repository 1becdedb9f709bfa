"""Run the selected benchmark sections on the selected devices and write the report."""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from pertdit.bench.context import BenchContext, quiet
from pertdit.bench.report import write_report
from pertdit.bench.results import Section
from pertdit.bench.settings import SECTIONS


def resolve_devices(device: str) -> list[str]:
    """`auto`: the CPU, plus the GPU when one is available; `cpu` or `cuda`: that device only."""
    if device == "auto":
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("pertdit bench: --device cuda, but torch sees no CUDA device (torch.cuda.is_available() "
                         "is False); use --device cpu or auto")
    return [device]


def command_line(out: Path, device: str, quick: bool, sections: Sequence[str], threads: int | None,
                 scale_profiles: Sequence[int] | None = None) -> str:
    """The command that runs these benchmarks, as the report states it."""
    parts = ["python -m pertdit.bench", f"--out {out}", f"--device {device}"]
    if scale_profiles:
        parts.append("--scale-profiles " + " ".join(str(n) for n in scale_profiles))
    if quick:
        parts.append("--quick")
    if threads:
        parts.append(f"--threads {threads}")
    if set(sections) != set(SECTIONS):
        parts.append("--sections " + " ".join(k for k in SECTIONS if k in sections))
    return " ".join(parts)


def run_benchmarks(out: Path, csv_path: Path | None = None, device: str = "auto", quick: bool = False,
                   sections: Sequence[str] = SECTIONS, data_dir: str | None = None, cache_dir: str | None = None,
                   seed: int = 0, threads: int | None = None, verbose: bool = True, scale_dir: str | None = None,
                   scale_profiles: Sequence[int] | None = None) -> tuple[Path, Path]:
    """Run `sections` (in the canonical order) and write `out` (markdown) and `csv_path` (default
    `benchmarks.csv` beside `out`). `threads`: torch CPU threads (default: torch's own; 1 under `quick`, which
    keeps the smoke run fast on a busy machine); restored afterwards."""
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"pertdit bench: unknown section(s) {sorted(unknown)}; valid: {', '.join(SECTIONS)}")
    csv_path = csv_path or out.with_name("benchmarks.csv")
    saved_threads = torch.get_num_threads()
    if threads or quick:
        torch.set_num_threads(threads or 1)
    ctx = BenchContext(resolve_devices(device), quick=quick, data_dir=data_dir, cache_dir=cache_dir, seed=seed,
                       verbose=verbose, command=command_line(out, device, quick, sections, threads, scale_profiles),
                       scale_dir=scale_dir, scale_profiles=scale_profiles)
    done: list[Section] = []
    start = time.perf_counter()
    try:
        with quiet():
            ctx.datamodule()
            for key in (k for k in SECTIONS if k in sections):
                t0 = time.perf_counter()
                done.append(importlib.import_module(f"pertdit.bench.{key}").run(ctx))
                ctx.log(f"{key}: done in {time.perf_counter() - t0:.0f} s")
    finally:
        ctx.close()
        torch.set_num_threads(saved_threads)
    ctx.log(f"all sections: {time.perf_counter() - start:.0f} s")
    return write_report(done, ctx.machine, ctx.devices, out, csv_path, quick=quick)
