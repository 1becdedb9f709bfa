"""Collect sweeps into one tidy table: one row per (job, test set, measure), read from each job's
`config.yaml` and `metrics.csv` (or, for a run scored on several test sets, `metrics_<set>.csv` per set), its
`PRED*.h5ad` provenance (which text encoder and describer made a text representation) and Hydra's
`.hydra/hydra.yaml` for the config-group choices, when present.

`python -m experiments.collect SWEEP_DIR [SWEEP_DIR ...] --out table.csv`
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import yaml
from omegaconf import DictConfig, OmegaConf

from experiments.text_encoder import TINY_ENCODER_NAME
from pertdit.config import CONFIG_DIR
from pertdit.data.split_spec import resolved_test_set

log = logging.getLogger(__name__)

#: the metrics.csv contract (DESIGN.md, "Evaluation contract")
METRIC_COLUMNS = ["metric", "grouping", "mean", "median", "min", "max", "n_groups", "n_nan"]
#: what identifies a job in the tidy table
ID_COLUMNS = ["experiment", "job", "method", "label", "model", "perturbation", "scale", "split", "fold",
              "seed", "split_name"]
#: where a text representation came from (empty for the RDKit fingerprint): the encoder and the describer
REPRESENTATION_COLUMNS = ["text_encoder", "describer"]
#: the replicate ceiling on each test set (docs/metrics.md), kept when metrics.csv has it
CEILING_COLUMNS = ["ceiling_mean", "model_same_rows_mean"]
COLUMNS = [*ID_COLUMNS, *METRIC_COLUMNS, *CEILING_COLUMNS, *REPRESENTATION_COLUMNS, "run_dir"]
#: the split option of named cell-line folds (pertdit/conf/split/named_cell_fold.yaml): a `cell_fold` family
NAMED_CELL_FOLD = "named_cell_fold"


def metrics_files(job: Path) -> dict[str | None, Path]:
    """The measures files of a job: {None: metrics.csv} for one test set, else {test set: metrics_<set>.csv}
    for a run scored on several (`split.test_set=all`)."""
    if (job / "metrics.csv").is_file():
        return {None: job / "metrics.csv"}
    return {p.stem.removeprefix("metrics_"): p for p in sorted(job.glob("metrics_*.csv"))
            if ".smoke" not in p.name}


def find_jobs(sweep_dir: Path) -> tuple[list[Path], list[Path]]:
    """Job directories below `sweep_dir`: (finished: config.yaml and metrics.csv or metrics_<set>.csv;
    unfinished: config only)."""
    sweep_dir = Path(sweep_dir)
    configs = sorted(sweep_dir.rglob("config.yaml"))
    # not Hydra's copies (.hydra/), submitit's or W&B's files (wandb/.../files/config.yaml)
    jobs = [p.parent for p in configs
            if not any(d.startswith(".") or d == "wandb" for d in p.relative_to(sweep_dir).parts[:-1])]
    finished = [j for j in jobs if metrics_files(j)]
    return finished, [j for j in jobs if j not in finished]


def split_identity(split: DictConfig | dict, choice: str | None = None) -> dict:
    """(split, fold, split_name) of a `split` config node (`choice`: the job's split option, when known):
    split is the family a figure groups by (drug_unseen, cell_line_unseen, both_unseen, random_fold,
    drug_fold, cell_fold, organ_<organ>). Named cell folds (split=named_cell_fold) are the cell_fold family."""
    kind = split.get("kind", "unseen")
    if choice == NAMED_CELL_FOLD:
        fold = int(split.get("fold", 0))
        cells = list(split.get("test_cells") or [])
        shown = ",".join(cells) if len(cells) <= 3 else f"{len(cells)} cell lines"
        return {"split": "cell_fold", "fold": fold, "split_name": f"cell_fold{fold} ({shown})"}
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


def method_label(name: str) -> str:
    """The label figures use for a method or model option: `method.name` of its method config
    (`prnet` -> PRnet, `adadit_text` -> AdaDiT-text); trivial baselines keep their name (control,
    mean_shift)."""
    path = CONFIG_DIR / "method" / f"{name}.yaml"
    if path.is_file():
        label = (yaml.safe_load(path.read_text()) or {}).get("method", {}).get("name")
        if label:
            return str(label)
    return name


def run_size(cfg: DictConfig, choices: dict) -> str:
    """The size a job ran at: its experiment scale (small, full), else its preset (cpu_quick, gpu_paper),
    else "default" (the model configs' own sizes)."""
    scale = OmegaConf.select(cfg, "scale.name", default=None) or choices.get("scale")
    preset = OmegaConf.select(cfg, "preset_name", default=None) or choices.get("preset")
    if scale:
        return str(scale)
    return str(preset) if preset and preset != "none" else "default"


def representation_source(job_dir: Path) -> dict:
    """`text_encoder` and `describer` of a job's text representation, from the provenance its PRED file
    records (uns["pertdit"]["representation"]); empty strings for other representations or without a PRED
    file. The tiny random BERT of small-scale runs (experiments/text_encoder.py) is named as such."""
    found = sorted(job_dir.glob("PRED*.h5ad"))
    found = [p for p in found if ".smoke" not in p.name]
    empty = {"text_encoder": "", "describer": ""}
    if not found:
        return empty
    import anndata as ad

    source = dict(ad.read_h5ad(found[0], backed="r").uns.get("pertdit", {}).get("representation") or {})
    if source.get("class") != "TextRepresentation":
        return empty
    path = str(source.get("encoder_path", ""))
    encoder = (f"tiny random BERT ({TINY_ENCODER_NAME}, no pre-trained weights)"
               if Path(path).name == TINY_ENCODER_NAME else str(source.get("encoder_id", "")))
    if source.get("describer") == "captioner":
        describer = f"captions by {source.get('captioner_id', 'a captioner')}"
    else:
        describer = "RDKit descriptions"
        if source.get("substitution_used"):
            describer += f" (instead of {source.get('substitution_requested', 'captions')}: not on the machine)"
    return {"text_encoder": encoder, "describer": describer}


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
    label = method_node.get("name") or method_label(method)
    pert = cfg.get("perturbation") or {}
    perturbation = choices.get("perturbation") or str(pert.get("_target_", "")).rsplit(".", 1)[-1]
    return {
        "experiment": choices.get("experiment") or cfg.get("task_name"),
        "job": int(job_num) if job_num is not None else job_dir.name,
        "method": method,
        "label": label,
        "model": model,
        "perturbation": perturbation,
        "scale": run_size(cfg, choices),
        **split_identity(cfg.get("split") or {}, choices.get("split")),
        "seed": cfg.get("seed"),
        "run_dir": str(job_dir),
    }


def collect(sweep_dirs: Iterable[Path], out: Path | None = None) -> pd.DataFrame:
    """The tidy table of every finished job below `sweep_dirs` (written to `out` when given)."""
    rows = []
    for sweep_dir in sweep_dirs:
        finished, unfinished = find_jobs(Path(sweep_dir))
        for job in unfinished:
            if (job / "metrics.smoke.csv").is_file():
                log.info("smoke test (trainer.fast_dev_run), not a result, left out: %s", job)
            else:
                log.warning("job without metrics.csv (failed or still running), left out: %s", job)
        for job in finished:
            identity = {**job_identity(job), **representation_source(job)}
            for test_set, path in metrics_files(job).items():
                metrics = pd.read_csv(path)
                missing = [c for c in METRIC_COLUMNS if c not in metrics.columns]
                if missing:
                    raise ValueError(f"{path} lacks columns {missing}; it has {list(metrics.columns)}")
                for column in CEILING_COLUMNS:
                    if column not in metrics.columns:
                        metrics[column] = float("nan")
                own = {"split": test_set, "fold": None, "split_name": test_set} if test_set else {}
                rows.append(metrics[METRIC_COLUMNS + CEILING_COLUMNS].assign(**{**identity, **own}))
    table = pd.concat(rows, ignore_index=True)[COLUMNS] if rows else pd.DataFrame(columns=COLUMNS)
    table = table.sort_values(["experiment", "method", "split", "fold", "seed", "metric", "grouping"],
                              kind="stable", na_position="first").reset_index(drop=True)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.collect", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweeps", nargs="+", type=Path, help="multirun directories (hydra.sweep.dir)")
    parser.add_argument("--out", type=Path, required=True, help="tidy CSV to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    table = collect(args.sweeps, args.out)
    print(f"{table['run_dir'].nunique()} jobs, {len(table)} rows -> {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
