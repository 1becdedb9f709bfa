"""Collect sweeps into one tidy table: one row per (job, measure), read from each job's `config.yaml` and
`metrics.csv` (and Hydra's `.hydra/hydra.yaml` for the config-group choices, when present).

`python -m experiments.collect SWEEP_DIR [SWEEP_DIR ...] --out table.csv`
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from pertdit.data.split_spec import resolved_test_set

log = logging.getLogger(__name__)

#: the metrics.csv contract (DESIGN.md, "Evaluation contract")
METRIC_COLUMNS = ["metric", "grouping", "mean", "median", "min", "max", "n_groups", "n_nan"]
#: what identifies a job in the tidy table
ID_COLUMNS = ["experiment", "job", "method", "label", "model", "perturbation", "scale", "split", "fold",
              "seed", "split_name"]
COLUMNS = [*ID_COLUMNS, *METRIC_COLUMNS, "run_dir"]


def find_jobs(sweep_dir: Path) -> tuple[list[Path], list[Path]]:
    """Job directories below `sweep_dir`: (finished: config.yaml and metrics.csv; unfinished: config only)."""
    sweep_dir = Path(sweep_dir)
    configs = sorted(sweep_dir.rglob("config.yaml"))
    # not Hydra's copies (.hydra/), submitit's or W&B's files (wandb/.../files/config.yaml)
    jobs = [p.parent for p in configs
            if not any(d.startswith(".") or d == "wandb" for d in p.relative_to(sweep_dir).parts[:-1])]
    finished = [j for j in jobs if (j / "metrics.csv").is_file()]
    return finished, [j for j in jobs if j not in finished]


def split_identity(split: DictConfig | dict) -> dict:
    """(split, fold, split_name) of a `split` config node: split is the family a figure groups by
    (drug_unseen, cell_line_unseen, both_unseen, random_fold, drug_fold, cell_fold, organ_<organ>)."""
    kind = split.get("kind", "unseen")
    if kind == "kfold":
        fold = int(split.get("fold", 0))
        return {"split": f"{split.get('by', 'random')}_fold", "fold": fold,
                "split_name": f"{split.get('by', 'random')}_fold{fold}"}
    if kind == "unseen":  # test_set auto: the test set of the named hold-outs (split.test_cells / test_drugs)
        name = resolved_test_set(split.get("test_set", "drug_unseen"), split.get("test_cells"),
                                 split.get("test_drugs"))
    else:
        name = f"organ_{split.get('organ')}"
    return {"split": name, "fold": None, "split_name": name}


def _model_choice(cfg: DictConfig) -> str:
    """The `model` option of a job whose Hydra choices are unknown, from its resolved config."""
    model = cfg.get("model") or {}
    if "kind" in model:  # trivial baselines: control, mean_shift
        return str(model["kind"])
    return str(model.get("_target_", "unknown")).rsplit(".", 1)[-1].removesuffix("Module").lower()


def job_identity(job_dir: Path) -> dict:
    """What a job ran: experiment, method, model, representation, scale, split, fold, seed."""
    cfg = OmegaConf.load(job_dir / "config.yaml")
    hydra_file = job_dir / ".hydra" / "hydra.yaml"
    choices: dict = {}
    job_num = None
    if hydra_file.is_file():
        hydra_cfg = OmegaConf.load(hydra_file).hydra
        choices = OmegaConf.to_container(hydra_cfg.runtime.choices) or {}
        job_num = OmegaConf.select(hydra_cfg, "job.num", default=None)
    method_node = cfg.get("method") or {}
    model = choices.get("model") or _model_choice(cfg)
    method = choices.get("method") or model
    pert = cfg.get("perturbation") or {}
    perturbation = choices.get("perturbation") or str(pert.get("_target_", "")).rsplit(".", 1)[-1]
    return {
        "experiment": choices.get("experiment") or cfg.get("task_name"),
        "job": int(job_num) if job_num is not None else job_dir.name,
        "method": method,
        "label": method_node.get("name") or method,
        "model": model,
        "perturbation": perturbation,
        "scale": OmegaConf.select(cfg, "scale.name", default=None),
        **split_identity(cfg.get("split") or {}),
        "seed": cfg.get("seed"),
        "run_dir": str(job_dir),
    }


def collect(sweep_dirs: Iterable[Path], out: Path | None = None) -> pd.DataFrame:
    """The tidy table of every finished job below `sweep_dirs` (written to `out` when given)."""
    rows = []
    for sweep_dir in sweep_dirs:
        finished, unfinished = find_jobs(Path(sweep_dir))
        for job in unfinished:
            log.warning("job without metrics.csv (failed or still running), left out: %s", job)
        for job in finished:
            metrics = pd.read_csv(job / "metrics.csv")
            missing = [c for c in METRIC_COLUMNS if c not in metrics.columns]
            if missing:
                raise ValueError(f"{job / 'metrics.csv'} lacks columns {missing}; "
                                 f"it has {list(metrics.columns)}")
            identity = job_identity(job)
            rows.append(metrics[METRIC_COLUMNS].assign(**identity))
    table = pd.concat(rows, ignore_index=True)[COLUMNS] if rows else pd.DataFrame(columns=COLUMNS)
    table = table.sort_values(["experiment", "method", "split", "fold", "seed", "metric", "grouping"],
                              kind="stable", na_position="first").reset_index(drop=True)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.collect", description=__doc__.split("\n")[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="multirun directories (hydra.sweep.dir)")
    parser.add_argument("--out", type=Path, required=True, help="tidy CSV to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    table = collect(args.sweeps, args.out)
    print(f"{table['run_dir'].nunique()} jobs, {len(table)} rows -> {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
