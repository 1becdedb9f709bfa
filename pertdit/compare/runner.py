"""Run the (model, seed) trainings of a comparison, one after another, each as `pertdit train` would.

Every run writes into `OUT/runs/<model>_seed<seed>/`; when it has finished (its measures for every test set
are written) `run.json` records what it was and what it used, written last and atomically. A comparison run
again skips the runs that have a `run.json` made with the same config (and refuses one made with another),
and restarts an unfinished run from scratch: a killed comparison loses at most the run in progress.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

import pertdit
from pertdit.compare.benchmark import Benchmark, CompareError, Entry
from pertdit.config import CONFIG_DIR, PACKAGE_ROOT, register_resolvers
from pertdit.provenance import config_hash

log = logging.getLogger(__name__)
RUN_RECORD = "run.json"


def run_folder(out: Path, entry: str, seed: int) -> Path:
    """The run folder of (model `entry`, `seed`) under the comparison folder `out`."""
    return Path(out) / "runs" / f"{entry}_seed{seed}"


def compose_run(overrides: list[str], run_dir: Path) -> DictConfig:
    """The `pertdit train` config of `overrides`, writing into `run_dir`."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=[*overrides, f"paths.run_dir={run_dir}"])


def read_record(run_dir: Path) -> dict[str, Any] | None:
    """The `run.json` of a finished run, else None."""
    path = Path(run_dir) / RUN_RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def code_version() -> str:
    """The package version and, in a git checkout, its commit (with `+dirty` for uncommitted changes)."""
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty=+dirty"], cwd=PACKAGE_ROOT,
                                capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return pertdit.__version__
    return f"{pertdit.__version__} ({commit})"


def metrics_files(cfg: DictConfig) -> dict[str, str]:
    """Test set -> the measures file a run of `cfg` writes for it (`pertdit.train.output_names`)."""
    from pertdit.train import output_names

    split = instantiate(cfg.split)
    if split.scores_every_test_set:
        return {name: output_names(False, name)[0] for name in split.test_sets}
    return {split.name: output_names(False)[0]}


def run_one(entry: Entry, seed: int, cfg: DictConfig, run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """Train and test one run; write and return its record (`run.json`)."""
    from pertdit.train import train

    code = code_version()  # the code the run starts with (the checkout may move while it trains)
    cpu, wall = time.process_time(), time.perf_counter()
    train(cfg)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    files = metrics_files(cfg)
    missing = [name for name in files.values() if not (run_dir / name).is_file()]
    if missing:
        raise CompareError(f"{entry.name} seed {seed}: the run ended without writing {missing} in {run_dir}")
    compute_path = run_dir / "compute.json"
    record = {
        "model": entry.name, "label": entry.label, "learned": entry.learned, "seed": seed,
        "overrides": overrides, "config_hash": config_hash(cfg), "metrics": files,
        "compute": json.loads(compute_path.read_text()) if compute_path.is_file() else None,
        "run_cpu_seconds": round(cpu, 1), "run_wall_seconds": round(wall, 1),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "code": code,
    }
    tmp = run_dir / f"{RUN_RECORD}.tmp"
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, run_dir / RUN_RECORD)
    return record


def run_comparison(bench: Benchmark, entries: list[Entry], seeds: list[int], cpu_minutes: float | None,
                   out: Path, extra: list[str] = (), progress: bool = True) -> list[dict[str, Any]]:
    """Every (entry, seed) run, seed by seed (a first seed's full table comes first); finished runs are read
    back, unfinished ones restarted. Returns the runs' records in that order."""
    plan = [(entry, seed) for seed in seeds for entry in entries]
    records = []
    with logging_redirect_tqdm():
        bar = tqdm(plan, desc="compare", unit="run", disable=not progress, dynamic_ncols=True)
        for entry, seed in bar:
            bar.set_postfix_str(f"{entry.name} seed {seed}")
            run_dir = run_folder(out, entry.name, seed)
            overrides = bench.run_overrides(entry, seed, cpu_minutes, list(extra))
            cfg = compose_run(overrides, run_dir)
            record = read_record(run_dir)
            if record is not None:
                if record["config_hash"] != config_hash(cfg):
                    raise CompareError(
                        f"{run_dir} holds a finished run of {entry.name} seed {seed} made with another config "
                        f"(its overrides: {record['overrides']}; now: {overrides}). Write this comparison to "
                        "another --out folder, or delete that run folder to redo it")
                log.info("%s seed %d: finished before, read from %s", entry.name, seed, run_dir)
                records.append(record)
                continue
            if run_dir.exists():
                log.info("%s seed %d: an unfinished run in %s is started again", entry.name, seed, run_dir)
                shutil.rmtree(run_dir)
            log.info("%s seed %d: pertdit train %s", entry.name, seed, " ".join(overrides))
            record = run_one(entry, seed, cfg, run_dir, overrides)
            compute = record["compute"] or {}
            log.info("%s seed %d: done in %.0f CPU s (%.0f wall s); fit %s", entry.name, seed,
                     record["run_cpu_seconds"], record["run_wall_seconds"],
                     f"{compute.get('cpu_seconds')} CPU s, {compute.get('steps')} steps, stopped by "
                     f"{compute.get('stopped_by')}" if compute else "none (statistics of the training rows)")
            records.append(record)
    return records
