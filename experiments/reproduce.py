"""Reproduce a paper figure: run its sweeps through `pertdit train --multirun`, as a user would, collect the
runs into one tidy CSV, draw the figure (PNG and PDF) and say where everything is.

    python -m experiments.reproduce figure2|figure3|figureS3|organ [--scale small|full] [--out DIR]
                                    [--text-encoder DIR] [--only EXPERIMENT ...] [--reuse SWEEP_DIR ...]
                                    [--fresh] [--dry-run] [-- hydra overrides for every job]

At `--scale small` (the default) each split of a sweep is first checked on the configured data; splits the
data cannot form (a cell-line hold-out on the one-cell-line bundled plate) are skipped with the reason, and
the figure shows what ran. Run again with the same --out, an interrupted figure resumes: finished jobs whose
resolved configuration is still planned are kept, the others (unfinished, or of another configuration) are
removed and run again; `--fresh` starts over. Text-based methods use the configured encoder when its weights
are on this machine, else (small scale only) a tiny random BERT: a pipeline check, printed as such. See
docs/experiments.md.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from experiments.collect import collect
from experiments.plan import (SweepPlan, console, plan_figure, reuse_finished_runs, sweep_progress,
                              text_encoder_override)
from experiments.plots import GROUPINGS, summarize

REPO = Path(__file__).resolve().parents[1]
FIGURES = {"figure2": "experiments.figure2", "figure3": "experiments.figure3",
           "figureS3": "experiments.figureS3", "organ": "experiments.organ"}


# -- running ----------------------------------------------------------------------------------------------
def launch(plan: SweepPlan, sweep_dir: Path, env: dict[str, str], fresh: bool = False) -> int:
    """Run one sweep through the project's CLI; returns its exit status. A sweep folder left by an earlier
    launch is resumed (its finished jobs of a planned configuration are kept, the other jobs run again) unless
    `fresh`, which starts it over."""
    if sweep_dir.exists():
        if not (sweep_dir / "multirun.yaml").is_file():
            sys.exit(f"error: {sweep_dir} exists and is not a sweep directory; choose another --out")
        if fresh:
            shutil.rmtree(sweep_dir)
    if not sweep_dir.exists():
        return run_sweep(plan.experiment, sweep_dir, plan.overrides(), env)
    progress = sweep_progress(plan, sweep_dir)
    for job in progress.stale:
        shutil.rmtree(job)
    console.print(f"{plan.experiment}: resuming {sweep_dir}: {len(progress.kept)} finished job(s) kept, "
                  f"{len(progress.remaining)} to run"
                  + (f", {len(progress.stale)} removed (unfinished, or of a configuration no longer planned)"
                     if progress.stale else "") + " (--fresh starts over)")
    if not progress.kept:  # nothing worth keeping: the whole sweep again, in one launch
        shutil.rmtree(sweep_dir)
        return run_sweep(plan.experiment, sweep_dir, plan.overrides(), env)
    status = 0
    for overrides in progress.remaining:  # one launch per job: what is left is rarely a product of the axes
        index = 0
        while (sweep_dir / f"resumed{index}").exists():
            index += 1
        status = run_sweep(plan.experiment, sweep_dir / f"resumed{index}", overrides, env) or status
    return status


def run_sweep(experiment: str, sweep_dir: Path, overrides: list[str], env: dict[str, str]) -> int:
    """`pertdit train --multirun` of `experiment` into `sweep_dir`; returns its exit status."""
    overrides = [o for o in overrides if not o.startswith("experiment=")]
    cmd = [sys.executable, "-m", "pertdit.cli", "train", "--multirun", f"experiment={experiment}",
           f"task_name={experiment}", f"hydra.sweep.dir={sweep_dir}", *overrides]
    console.print("$ " + " ".join(cmd[1:]))
    return subprocess.run(cmd, cwd=REPO, env=env, check=False).returncode


def describe(plan: SweepPlan) -> None:
    console.rule(f"{plan.experiment}: {plan.n_jobs if plan.runs else 0} jobs")
    for note in plan.notes:
        console.print(f"note: {note}")
    for skipped in plan.skipped:
        console.print(f"[yellow]skipped {skipped}[/yellow]")
    for method, source in plan.reused.items():
        console.print(f"method={method}: reused from {source} (the same configuration)")
    if not plan.runs:
        why = "every method reused" if plan.reused and "method" in plan.params else "nothing left to run on this data"
        console.print(f"[yellow]{plan.experiment}: {why}[/yellow]")


def print_numbers(table: pd.DataFrame) -> None:
    """Mean (SD) over replicates of every measure, per experiment, method/representation and split."""
    by = ["experiment", "label", "perturbation", "split"]
    stats = summarize(table, by)
    stats["cell"] = stats.apply(lambda r: f"{r['value']:.3f}" + (f" ({r['sd']:.3f})" if r["n"] > 1 else ""),
                                axis=1)
    short = {"per_sample": "sample", "cov_drug_dose": "cdd", "cov_drug": "cd", "drug_dose": "dd", "drug": "d"}
    stats["measure"] = (stats["metric"].map({"r2": "R2", "pcc_lnfc": "PCC"}) + "/"
                        + stats["grouping"].map(short))
    order = [f"{m}/{short[g]}" for m in ("R2", "PCC") for g in GROUPINGS]
    wide = stats.pivot_table(index=by, columns="measure", values="cell", aggfunc="first")
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        console.print(wide[[c for c in order if c in wide.columns]].to_string(), soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.reproduce",
                                     epilog="Hydra overrides after -- go to every job, e.g. -- logger=wandb",
                                     description="Run a paper figure's sweeps, collect them, draw the "
                                                 "figure.")
    parser.add_argument("figure", choices=sorted(FIGURES))
    parser.add_argument("--scale", choices=("small", "full"), default="small",
                        help="small: minutes on a laptop CPU on the bundled plate; full: the paper's size on "
                             "full L1000 on GPUs (default: small)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default outputs/reproduce/FIGURE-SCALE)")
    parser.add_argument("--text-encoder", type=Path, default=None,
                        help="a local text encoder folder (save_pretrained) for the text-based methods")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the commands, run nothing")
    parser.add_argument("--reuse", nargs="+", type=Path, default=[], metavar="SWEEP_DIR",
                        help="finished sweeps of another figure (e.g. OUT/sweeps/figure2a): a method whose jobs "
                             "all have a run there with the same configuration is not trained again, and those "
                             "runs are collected with this figure's")
    parser.add_argument("--fresh", action="store_true",
                        help="start every sweep over (default: an interrupted sweep under --out resumes; its "
                             "finished jobs of the same configuration are kept)")
    parser.add_argument("--only", nargs="+", metavar="EXPERIMENT",
                        help="run only these experiments of the figure (e.g. figure2a); the sweeps already "
                             "under --out are still collected and plotted")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []  # Hydra overrides for every job
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    figure = importlib.import_module(FIGURES[args.figure])
    out = (args.out or Path("outputs") / "reproduce" / f"{args.figure}-{args.scale}").resolve()
    if args.only:
        unknown = sorted(set(args.only) - set(figure.EXPERIMENTS))
        if unknown:
            parser.error(f"--only {' '.join(unknown)}: {args.figure} has {', '.join(figure.EXPERIMENTS)}")
    plans = plan_figure(figure, args.scale, extra, only=args.only)
    encoder = text_encoder_override(plans, args.scale, args.text_encoder)
    env = dict(os.environ)
    failed, sweep_dirs = [], []
    if args.only:  # the other experiments' sweeps of an earlier run are collected as they are, and reused
        sweep_dirs = [out / "sweeps" / e for e in figure.EXPERIMENTS
                      if e not in args.only and (out / "sweeps" / e).is_dir()]
    reuse = [*(d.resolve() for d in args.reuse), *sweep_dirs]
    sweep_dirs += [d.resolve() for d in args.reuse]
    for plan in plans:
        if encoder:
            plan.fixed.append(encoder)
        if reuse:
            reuse_finished_runs(plan, reuse)
        describe(plan)
        if not plan.runs:
            continue
        sweep_dir = out / "sweeps" / plan.experiment
        if args.dry_run:
            console.print("$ pertdit train --multirun " + " ".join([f"experiment={plan.experiment}",
                                                                   f"hydra.sweep.dir={sweep_dir}",
                                                                   *plan.overrides()]))
            continue
        sweep_dirs.append(sweep_dir)
        if launch(plan, sweep_dir, env, fresh=args.fresh) != 0:
            failed.append(plan.experiment)
            console.print(f"[red]{plan.experiment}: the sweep failed; its finished jobs are still "
                          "collected[/red]")
    if args.dry_run:
        return 0
    table = collect(sweep_dirs, out / f"{args.figure}_metrics.csv")
    if table.empty:
        console.print(f"[red]no finished jobs under {out / 'sweeps'}; nothing to plot[/red]")
        return 1
    summary = out / f"{args.figure}_summary.csv"
    summarize(table, ["experiment", "label", "perturbation", "split"]).to_csv(summary, index=False)
    figures = figure.plot(table, out)
    console.rule(f"{args.figure} ({args.scale}): {table['run_dir'].nunique()} jobs")
    print_numbers(table)
    console.print(f"\ntidy table: {out / f'{args.figure}_metrics.csv'}\nsummary:    {summary}")
    console.print("figures:    " + "\n            ".join(str(p) for p in figures))
    console.print(f"runs:       {out / 'sweeps'}")
    if failed:
        console.print(f"[red]failed sweeps: {', '.join(failed)}[/red]")
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
