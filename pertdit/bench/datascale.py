"""Data scale: `pertdit data` on synthetic GEO releases of growing size (time, peak memory, fitted growth and
the projection to full GSE92742 / GSE70138), loading from the preprocessed memory-mapped cache, and scoring
100k test profiles. The releases are `pertdit synth-release` test fixtures: their values mean nothing, their
layout and size are GEO's (12,328 genes, ~8 % of profiles of filtered types, ~10 % vehicle controls)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

from pertdit.bench.context import BenchContext
from pertdit.bench.datascale_loading import GSE70138, GSE92742, GSE92742_KEPT, loader_rows, metric_rows
from pertdit.bench.processes import evict_from_page_cache, free_bytes, measured_run, pertdit_command
from pertdit.bench.results import Section, Table

TITLE = "Data scale: full L1000 on one host (synthetic GEO releases)"
GIB = 2**30
GENES_IN_FILE = 12328
LANDMARKS = 978
TARGET_MEMORY_GIB = 8.0
TARGET_MINUTES = 30.0


def _env(ctx: BenchContext) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    if ctx.data_dir:
        env["PERTDIT_DATA"] = str(ctx.data_dir)
    return env


def _release(ctx: BenchContext, root: Path, n: int) -> tuple[Path, float | None]:
    """The synthetic release of `n` profiles under `root` (written unless already there); seconds written."""
    folder = root / f"release_{n}"
    meta = folder / "synthetic_release.json"
    if meta.is_file() and json.loads(meta.read_text()).get("profiles") == n:
        return folder, None
    shutil.rmtree(folder, ignore_errors=True)
    ctx.log(f"datascale: writing a synthetic release of {n:,} profiles")
    done = measured_run(pertdit_command("synth-release", "--profiles", str(n), "--out", str(folder),
                                        "--seed", str(ctx.seed)), env=_env(ctx))
    return folder, done.seconds


def _data_run(ctx: BenchContext, release: Path, work: Path) -> tuple[object, int]:
    """`pertdit data data=geo_synthetic` on `release` (cache under `work`), measured; kept profiles."""
    done = measured_run(pertdit_command("data", "data=geo_synthetic", f"paths.data_dir={release}",
                                        f"paths.cache_dir={work / 'cache'}", f"hydra.run.dir={work / 'run'}",
                                        "hydra/job_logging=disabled"), env=_env(ctx), cwd=work)
    found = re.search(r"dataset: (\d+) profiles x (\d+) genes", done.stdout)
    if not found:
        raise RuntimeError(f"pertdit data printed no dataset summary:\n{done.stdout[-1000:]}")
    return done, int(found.group(1))


def _linear_fit(x: list[float], y: list[float]) -> tuple[float, float, float]:
    """Least squares y = a + b x: (a, b, R^2)."""
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    if len(xs) < 2:
        return float("nan"), float("nan"), float("nan")
    b, a = np.polyfit(xs, ys, 1)
    residual = ys - (a + b * xs)
    total = ((ys - ys.mean()) ** 2).sum()
    return float(a), float(b), float(1 - (residual**2).sum() / total) if total > 0 else 1.0


def run(ctx: BenchContext) -> Section:
    section = Section("datascale", TITLE)
    s = ctx.settings["cpu"]
    root = Path(ctx.scale_dir) if getattr(ctx, "scale_dir", None) else ctx.workdir / "datascale"
    root.mkdir(parents=True, exist_ok=True)
    sizes = Table(["profiles in the release", "kept (trt_cp + vehicle)", "landmark matrix (float32)",
                   "pertdit data: s (cold cache)", "s (warm cache)", "peak RSS", "peak RSS / matrix",
                   "µs / profile", "release written in"])
    measured: list[dict] = []
    largest: Path | None = None
    for n in s.scale_profiles:
        need = n * GENES_IN_FILE * 4 * 1.05 + 3 * n * LANDMARKS * 4 + 2 * GIB
        if free_bytes(root) < need:
            section.notes.append(f"{n:,} profiles skipped: {free_bytes(root) / GIB:.0f} GiB free under {root}, "
                                 f"{need / GIB:.0f} GiB needed")
            continue
        release, written = _release(ctx, root, n)
        work = root / f"work_{n}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        ctx.log(f"datascale: pertdit data on {n:,} profiles (cold cache, release evicted from the page cache)")
        evict_from_page_cache(release)
        cold, kept = _data_run(ctx, release, work)
        warm = None
        if s.scale_warm:
            ctx.log(f"datascale: pertdit data on {n:,} profiles (warm cache)")
            warm, _ = _data_run(ctx, release, work)
        warm_seconds = float("nan") if warm is None else warm.seconds
        matrix = kept * LANDMARKS * 4
        measured.append({"n": n, "kept": kept, "seconds": cold.seconds, "warm": warm_seconds, "rss": cold.peak_rss,
                         "cpu": cold.cpu_seconds, "matrix": matrix})
        section.row(f"data_{n}/seconds", cold.seconds, "s", "cpu", f"{kept:,} kept; cold cache")
        section.row(f"data_{n}/warm_seconds", warm_seconds, "s", "cpu", "cache hit (split + dataset.h5ad)")
        section.row(f"data_{n}/peak_rss", cold.peak_rss / GIB, "GiB", "cpu", "wait4 ru_maxrss of the command")
        section.row(f"data_{n}/rss_over_matrix", cold.peak_rss / matrix, "x", "cpu", "target < 2")
        sizes.add(f"{n:,}", f"{kept:,}", f"{matrix / GIB:.2f} GiB", cold.seconds, warm_seconds,
                  f"{cold.peak_rss / GIB:.2f} GiB", cold.peak_rss / matrix, 1e6 * cold.seconds / n,
                  "(reused)" if written is None else f"{written:.0f} s")
        if largest is not None and not s.scale_keep:
            shutil.rmtree(largest.parent / f"work_{largest.name.split('_')[1]}", ignore_errors=True)
            shutil.rmtree(largest, ignore_errors=True)
        largest = release
    sizes.caption = "`pertdit data` per release size (one process; time is wall-clock on a shared machine)."
    section.tables.append(sizes)
    if measured:
        _projection(section, measured)
    if largest is not None:
        loader_rows(ctx, section, largest, root / f"work_{largest.name.split('_')[1]}" / "cache")
    metric_rows(ctx, section)
    if not s.scale_keep and largest is not None and not getattr(ctx, "scale_dir", None):
        shutil.rmtree(root, ignore_errors=True)
    section.method = (
        "Each size: `pertdit synth-release --profiles N --out DIR` (a test fixture: GEO layout, 12,328 genes with "
        "the 978 landmarks scattered among them, ~10 % DMSO, ~8 % untreated / positive-control / shRNA wells that "
        "must be filtered), then `pertdit data data=geo_synthetic paths.data_dir=DIR` twice in a fresh process, "
        "timed from outside: cold (the release's pages dropped from the OS page cache first with "
        "posix_fadvise, so it is read from disk; streams the release into the dataset cache: metadata, one pass "
        "over the kept columns, normalisation pass, then the split and the run's dataset.h5ad) and warm "
        "(dataset cache hit: startup, split, dataset.h5ad). Peak RSS is the "
        "child's maximum resident set (`wait4`), including Python, torch and Lightning imports. The 'landmark "
        "matrix' is kept profiles x 978 x 4 bytes; the target is a peak below twice it at full size. Machine "
        "shared with other jobs during the run: compare ratios, not absolute times.")
    return section


def _projection(section: Section, measured: list[dict]) -> None:
    n = [m["n"] for m in measured]
    t_a, t_b, t_r2 = _linear_fit(n, [m["seconds"] for m in measured])
    m_a, m_b, m_r2 = _linear_fit(n, [m["rss"] for m in measured])
    kept_share = float(np.mean([m["kept"] / m["n"] for m in measured]))
    table = Table(["release", "profiles", "projected time", "projected peak RSS", "landmark matrix",
                   "RSS / matrix", "memory target (< 8 GiB)", "time target (< 30 min)"])
    for name, profiles, kept in (("GSE92742", GSE92742, GSE92742_KEPT),
                                 ("GSE92742 + GSE70138", GSE92742 + GSE70138,
                                  GSE92742_KEPT + round(GSE70138 * GSE92742_KEPT / GSE92742))):
        seconds, rss = t_a + t_b * profiles, m_a + m_b * profiles
        matrix = kept * LANDMARKS * 4
        key = name.split()[0] if "+" not in name else "both"
        section.row(f"projection_{key}/seconds", seconds, "s", "cpu", f"{profiles:,} profiles, linear fit")
        section.row(f"projection_{key}/peak_rss", rss / GIB, "GiB", "cpu", f"{profiles:,} profiles, linear fit")
        table.add(name, f"{profiles:,}", f"{seconds / 60:.1f} min", f"{rss / GIB:.2f} GiB",
                  f"{matrix / GIB:.2f} GiB", rss / matrix, "met" if rss / GIB < TARGET_MEMORY_GIB else "NOT MET",
                  "met" if seconds / 60 < TARGET_MINUTES else "NOT MET")
    table.caption = (f"Linear fits over the sizes above: time = {t_a:.1f} s + {1e6 * t_b:.1f} µs x profiles "
                     f"(R² {t_r2:.4f}); peak RSS = {m_a / GIB:.2f} GiB + {m_b / 1024:.2f} KiB x profiles "
                     f"(R² {m_r2:.4f}). Kept share of the synthetic releases {kept_share:.2f}; the projection "
                     f"keeps {GSE92742_KEPT:,} GSE92742 profiles (DESIGN.md: full L1000 after filtering), so its "
                     "RSS / matrix uses that count; GSE70138 is assumed to keep the same share.")
    section.row("fit/microseconds_per_profile", 1e6 * t_b, "µs", "cpu", f"R2 {t_r2:.4f}")
    section.row("fit/kib_per_profile", m_b / 1024, "KiB", "cpu", f"R2 {m_r2:.4f}")
    section.tables.append(table)
