"""Plan a figure's sweeps: the experiment's sweep with the figure's and the user's overrides, narrowed to the
splits the data can form (small scale), without methods an earlier sweep of the figure already trains, and
with a text encoder for the text-based methods. Nothing here trains; `experiments.reproduce` launches."""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from experiments.text_encoder import TINY_ENCODER_NAME, build_tiny_encoder, find_encoder
from pertdit.config import CONFIG_DIR, default_cache_dir, register_resolvers
from pertdit.errors import DataError, PertDiTError

#: sweep axes that choose the split; each value is checked on the data at small scale
SPLIT_AXES = ("split", "split.test_set", "split.organ")
console = Console(highlight=False)


@dataclass
class SweepPlan:
    """One `pertdit train experiment=... --multirun` launch: its overrides and what was left out, and why."""

    experiment: str
    params: dict[str, list[str]]                       # the sweep, after narrowing
    fixed: list[str] = field(default_factory=list)     # plain overrides of every job
    skipped: list[str] = field(default_factory=list)   # "<axis>=<value>: reason"
    reused: dict[str, str] = field(default_factory=dict)  # method -> experiment that trained it
    notes: list[str] = field(default_factory=list)

    @property
    def runs(self) -> bool:
        return all(self.params.values())

    def overrides(self) -> list[str]:
        return [*self.fixed, *(f"{k}={','.join(v)}" for k, v in self.params.items())]

    @property
    def n_jobs(self) -> int:
        n = 1
        for values in self.params.values():
            n *= len(values)
        return n


# -- composing configs -------------------------------------------------------------------------------------
def compose_job(overrides: list[str], hydra_config: bool = False) -> DictConfig:
    """The train config of one job with `overrides` (Hydra compose API, the configs of pertdit/conf/)."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=hydra_config)


def parse_sweep(overrides: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Split override strings into sweeps (key -> values) and plain overrides."""
    sweeps, plain = {}, []
    for text, parsed in zip(overrides, OverridesParser.create().parse_overrides(overrides)):
        if parsed.is_sweep_override():
            sweeps[parsed.get_key_element()] = list(parsed.sweep_string_iterator())
        else:
            plain.append(text)
    return sweeps, plain


def sweep_params(experiment: str, overrides: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """The experiment's `hydra.sweeper.params` with `overrides` applied (an override of a swept key replaces
    its values, as on the command line); returns (sweep, plain overrides)."""
    _, plain = parse_sweep(overrides)
    cfg = compose_job([f"experiment={experiment}", *plain], hydra_config=True)
    params = {str(k): str(v).split(",") for k, v in (cfg.hydra.sweeper.params or {}).items()}
    parsed = OverridesParser.create().parse_overrides(overrides)
    for text, override in zip(overrides, parsed):  # in order: a later override of a key wins
        key = override.get_key_element()
        if override.is_sweep_override():
            params[key] = list(override.sweep_string_iterator())
        elif key in params:  # a plain override of a swept key: one value
            params[key] = [text.partition("=")[2]]
    return params, [t for t in plain if t.partition("=")[0] not in params]


def every_job(plan: SweepPlan) -> list[list[str]]:
    """Overrides of every job of `plan` (the product of its axes, in Hydra's order)."""
    return [one_job(plan.experiment, plan.params, plan.fixed, **dict(zip(plan.params, values)))
            for values in itertools.product(*plan.params.values())]


def one_job(experiment: str, params: dict[str, list[str]], fixed: list[str], **chosen: str) -> list[str]:
    """Overrides of one job of a sweep: the first value of every axis unless `chosen`."""
    picked = {k: chosen.get(k, v[0]) for k, v in params.items()}
    return [f"experiment={experiment}", *fixed, *(f"{k}={v}" for k, v in picked.items())]


# -- what the data supports ----------------------------------------------------------------------------------
_DATASETS: dict[str, object] = {}


def load_data(cfg: DictConfig):
    """The preprocessed dataset of `cfg.data` (read once per data config)."""
    key = OmegaConf.to_yaml(cfg.data, resolve=True)
    if key not in _DATASETS:
        dm = instantiate(cfg.data, split=None, representation=None, _recursive_=False)
        _DATASETS[key] = dm.load()
    return _DATASETS[key]


def split_problem(cfg: DictConfig) -> str | None:
    """Why `cfg.split` cannot be formed on `cfg.data` (None when it can). Raises DataError when the data
    themselves cannot be read."""
    from pertdit.data.splits import split_rows

    try:
        spec = instantiate(cfg.split)
        adata = load_data(cfg).copy()
        column = spec.apply(adata)
        for part in ("train", "val", "test"):
            split_rows(adata, column, spec.labels(part))
    except DataError:
        raise
    except PertDiTError as err:
        return str(err)
    return None


def narrow_splits(plan: SweepPlan) -> None:
    """Drop the values of split axes the data cannot form (recording why); on one-cell-line data the
    drug-unseen test set is formed without a cell-line hold-out (split.cell_fraction=0)."""
    without_cells = "split.cell_fraction=0"
    needs_no_cells = None  # why drug_unseen needs split.cell_fraction=0 here, when it does
    for axis in [a for a in SPLIT_AXES if a in plan.params]:
        kept = []
        for value in plan.params[axis]:
            overrides = one_job(plan.experiment, plan.params, plan.fixed, **{axis: value})
            problem = split_problem(compose_job(overrides))
            if problem and value == "drug_unseen" and without_cells not in overrides:
                if split_problem(compose_job([*overrides, without_cells])) is None:
                    needs_no_cells = (f"drug_unseen formed without a cell-line hold-out ({without_cells}); "
                                      f"with one: {problem}")
                    problem = None
            if problem:
                plan.skipped.append(f"{axis}={value}: {problem}")
            else:
                kept.append(value)
        plan.params[axis] = kept
    if needs_no_cells and plan.params.get("split.test_set") == ["drug_unseen"]:
        plan.fixed.append(without_cells)
        plan.notes.append(needs_no_cells)
    elif needs_no_cells:  # other test sets need the cell-line hold-out: keep it, drop drug_unseen
        plan.params["split.test_set"].remove("drug_unseen")
        plan.skipped.append(f"split.test_set=drug_unseen: {needs_no_cells}")


# -- the text encoder ---------------------------------------------------------------------------------------
def text_methods(plan: SweepPlan) -> list[str]:
    """The method/representation values of the sweep whose drug representation is text."""
    axes = {k: plan.params[k] for k in ("method", "perturbation") if k in plan.params}
    found = []
    for values in itertools.product(*axes.values()):
        chosen = dict(zip(axes, values))
        cfg = compose_job(one_job(plan.experiment, plan.params, plan.fixed, **chosen))
        if str(cfg.perturbation.get("_target_", "")).endswith("TextRepresentation"):
            found.append("/".join(values) or plan.experiment)
    return found


def text_encoder_override(plans: list[SweepPlan], scale: str, given: Path | None) -> str | None:
    """`scale.text_encoder_dir=...` for the sweeps' text-based methods, or None when none is needed (or the
    configured encoder is on this machine). Exits with advice at full scale when the encoder is missing."""
    needing = sorted({m for plan in plans if plan.runs for m in text_methods(plan)})
    if not needing:
        return None
    if given is not None:
        return f"scale.text_encoder_dir={Path(given).resolve()}"
    encoder_id = str(compose_job(one_job(plans[0].experiment, plans[0].params, plans[0].fixed)).perturbation
                     .get("encoder_id", "michiyasunaga/BioLinkBERT-large"))
    if find_encoder(encoder_id) is not None:
        console.print(f"text encoder: {encoder_id} (found on this machine)")
        return None
    if scale == "full":
        sys.exit(f"error: the text-based methods {needing} need the encoder {encoder_id!r}, which is not on "
                 "this machine (nothing is downloaded). Pass --text-encoder DIR (a folder written by "
                 "save_pretrained) or put it in the Hugging Face cache "
                 f"(`hf download {encoder_id}`, HF_HOME).")
    path = build_tiny_encoder(Path(default_cache_dir()) / "models" / TINY_ENCODER_NAME)
    console.print(f"[yellow]text encoder: {encoder_id!r} is not on this machine; the text-based methods "
                  f"({', '.join(needing)}) use a tiny random BERT ({path}). Their numbers check the "
                  "pipeline, not the paper.[/yellow]")
    return f"scale.text_encoder_dir={path}"


def plan_figure(figure: ModuleType, scale: str, extra: list[str],
                only: list[str] | None = None) -> list[SweepPlan]:
    """The sweeps of a figure at `scale` (only the experiments `only`, when given), narrowed to what the data
    supports (small scale) and without methods an earlier sweep of the figure already trains (when the figure
    allows reuse)."""
    plans, trained = [], {}
    adapt = getattr(figure, "adapt_small_plan", None)
    for experiment in [e for e in figure.EXPERIMENTS if not only or e in only]:
        small = figure.SMALL_OVERRIDES.get(experiment, []) if scale == "small" else []
        params, fixed = sweep_params(experiment, [f"scale={scale}", *small, *extra])
        plan = SweepPlan(experiment, params, fixed=fixed)
        if scale == "small":
            if adapt is not None:  # e.g. the organs the data can hold out; the user's own choice wins
                adapt(plan, given={t.partition("=")[0] for t in extra})
            narrow_splits(plan)
        if figure.REUSE_METHODS and "method" in plan.params:
            others = sorted((k, tuple(v)) for k, v in plan.params.items() if k != "method")
            context = repr(others) + repr(plan.fixed)
            for method in list(plan.params["method"]):
                if (context, method) in trained:
                    plan.reused[method] = trained[(context, method)]
                    plan.params["method"].remove(method)
                else:
                    trained[(context, method)] = experiment
        plans.append(plan)
    return plans


# -- runs of other sweeps -----------------------------------------------------------------------------------
#: config keys that name a run, not what it computes (left out when two runs' configurations are compared)
RUN_NAMING_KEYS = ("paths", "task_name", "tags")


def run_configuration(cfg: DictConfig) -> dict:
    """What a run computes: its resolved config without the keys that only name it."""
    cfg = cfg.copy()
    OmegaConf.set_struct(cfg, False)
    placeholder = "<run_dir>"
    run_dir = None
    if "paths" in cfg:  # a composed job's run folder is Hydra's, known only when it runs: named alike
        raw = OmegaConf.to_container(cfg.paths, resolve=False).get("run_dir")
        run_dir = raw if isinstance(raw, str) and "${" not in raw else None
        cfg.paths.run_dir = placeholder

    def unnamed(value):
        if isinstance(value, dict):
            return {k: unnamed(v) for k, v in value.items()}
        if isinstance(value, list):
            return [unnamed(v) for v in value]
        if run_dir and isinstance(value, str) and value.startswith(run_dir):
            return placeholder + value[len(run_dir):]
        return value

    resolved = unnamed(OmegaConf.to_container(cfg, resolve=True))
    return {k: v for k, v in resolved.items() if k not in RUN_NAMING_KEYS}


def reuse_finished_runs(plan: SweepPlan, sweep_dirs: list[Path]) -> None:
    """Drop from `plan` every method whose jobs (all values of the other axes) have a finished run with the
    same configuration below `sweep_dirs` (e.g. Figure 2a's CrossDiT and CatCrossDiT for Figure 3d); the
    figure then takes that method's rows from the collected runs (recorded in `plan.reused`)."""
    from experiments.collect import find_jobs

    finished = [run_configuration(OmegaConf.load(job / "config.yaml"))
                for sweep_dir in sweep_dirs for job in find_jobs(Path(sweep_dir))[0]]
    if not finished or "method" not in plan.params:
        return
    others = {k: v for k, v in plan.params.items() if k != "method"}
    kept = []
    for method in plan.params["method"]:
        combos = [dict(zip(others, values)) for values in itertools.product(*others.values())] or [{}]
        found = all(run_configuration(compose_job(one_job(plan.experiment, plan.params, plan.fixed, method=method,
                                                          **combo))) in finished for combo in combos)
        if found:
            plan.reused[method] = ", ".join(str(d) for d in sweep_dirs)
        else:
            kept.append(method)
    plan.params["method"] = kept


@dataclass
class SweepProgress:
    """What an earlier launch of a sweep left in its folder, against the jobs the plan asks for now."""

    remaining: list[list[str]]  # overrides of the planned jobs without a finished run of their configuration
    kept: list[Path]            # finished runs of a planned job's configuration
    stale: list[Path]           # unfinished runs, and finished runs of a configuration no longer planned


def sweep_progress(plan: SweepPlan, sweep_dir: Path) -> SweepProgress:
    """Match the runs below `sweep_dir` to the planned jobs by their resolved configuration (an interrupted
    `reproduce` resumes: finished jobs are kept, the others run again)."""
    from experiments.collect import find_jobs

    def key(configuration: dict) -> str:
        return json.dumps(configuration, sort_keys=True, default=str)

    finished, unfinished = find_jobs(Path(sweep_dir))
    by_configuration: dict[str, Path] = {}
    for job in finished:
        by_configuration.setdefault(key(run_configuration(OmegaConf.load(job / "config.yaml"))), job)
    remaining, kept = [], []
    for overrides in every_job(plan) if plan.runs else []:
        job = by_configuration.get(key(run_configuration(compose_job(overrides))))
        if job is None or job in kept:
            remaining.append(overrides)
        else:
            kept.append(job)
    stale = [job for job in [*finished, *unfinished] if job not in kept]
    return SweepProgress(remaining, kept, stale)
