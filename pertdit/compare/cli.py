"""`pertdit compare`: train every model of a benchmark on the same split for the same compute budget, for several
seeds; score each on every test set; print and write the measures as mean ± SD over seeds with the replicate
ceiling, what each model did with its budget, and bar charts (docs/results.md)."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from pertdit.bench.machine import MachineInfo, load_average
from pertdit.compare.benchmark import Benchmark, CompareError, load_benchmark
from pertdit.compare.report import write_report
from pertdit.compare.runner import read_record, run_comparison, run_folder

log = logging.getLogger(__name__)
DEFAULT_OUT = Path("outputs/compare")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pertdit compare", description=__doc__,
        epilog="Extra `pertdit train` overrides for every run go after `--` (e.g. -- data.batch_size=128). "
               "Runs already finished in --out are read back, not retrained; an interrupted run starts again.")
    p.add_argument("--benchmark", default="collection",
                   help="a benchmark of pertdit/conf/compare/ (default: collection) or a YAML file of that layout")
    p.add_argument("--models", nargs="+", default=None, help="models of the benchmark to run (default: all)")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="seeds (default: the benchmark's, 0 1 2)")
    p.add_argument("--cpu-minutes", type=float, default=None,
                   help="compute budget of every training in process CPU minutes (default: the benchmark's, 2)")
    p.add_argument("--out", type=Path, default=None,
                   help="comparison folder (default: outputs/compare/<benchmark>); runs go to OUT/runs/")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: report the runs of --out that have finished")
    p.add_argument("--no-plots", action="store_true", help="write no figures")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", help="KEY=VALUE overrides for every run (after --)")
    return p


def header_lines(bench: Benchmark, args: argparse.Namespace, seeds: list[int], cpu_minutes: float | None,
                 machine: MachineInfo, argv: list[str]) -> list[str]:
    """The report's first lines: command, date, machine, protocol, budget, seeds, models."""
    command = "pertdit compare " + " ".join(shlex.quote(a) for a in argv)
    budget = "none" if cpu_minutes is None else f"{cpu_minutes:g} CPU-minutes per training (process CPU time)"
    lines = [f"# pertdit compare: benchmark `{bench.name}`", "",
             f"- command: `{command}`", f"- date: {machine.date}",
             f"- machine: {machine.describe('cpu')}; load average at start {machine.load_start}, at the end "
             f"{load_average()}",
             f"- protocol (every run): `{' '.join(bench.protocol)}`" + (
                 f", plus `{' '.join(args.overrides)}`" if args.overrides else ""),
             f"- budget: {budget}; seeds: {', '.join(map(str, seeds))}", "- models:"]
    for entry in bench.entries(args.models):
        lines.append(f"  - {entry.label}: `{' '.join(entry.overrides)}`")
    return lines


def compare_cli(argv: list[str]) -> int:
    """Entry point of `pertdit compare`."""
    from pertdit.compare.plots import bar_chart
    from pertdit.compare.summary import budget_table, ceiling_table, run_table, summarize, target_table, \
        versus_reference

    args = parser().parse_args(argv)
    bench = load_benchmark(args.benchmark)
    entries = bench.entries(args.models)
    seeds = args.seeds if args.seeds is not None else bench.seeds
    cpu_minutes = args.cpu_minutes if args.cpu_minutes is not None else bench.cpu_minutes
    out = args.out or DEFAULT_OUT / bench.name
    out.mkdir(parents=True, exist_ok=True)
    machine = MachineInfo()
    if args.report_only:
        records = [r for e in entries for s in seeds if (r := read_record(run_folder(out, e.name, s)))]
        if not records:
            raise CompareError(f"{out}: no finished run of {[e.name for e in entries]} with seeds {seeds}")
    else:
        records = run_comparison(bench, entries, seeds, cpu_minutes, out, args.overrides,
                                 progress=not args.no_progress)
    runs = run_table(records, out)
    summary, ceiling, budget = summarize(runs), ceiling_table(runs), budget_table(records)
    names = list(dict.fromkeys(runs["model"]))
    learned = [r["model"] for r in records if r["learned"]]
    versus = (versus_reference(summary, list(dict.fromkeys(learned)), bench.reference)
              if bench.reference in names else None)
    dits = [m for m in bench.target.get("dits", []) if m in names]
    against = [m for m in bench.target.get("against", []) if m in names]
    target = target_table(summary, dits, against) if dits and against else None
    labels = dict(zip(runs["model"], runs["label"]))
    figures = [] if args.no_plots else [
        bar_chart(summary, ceiling, metric, labels, bench.reference, out / f"{metric}.png")
        for metric in ("pcc_lnfc", "r2")]
    report = write_report(out, header_lines(bench, args, seeds, cpu_minutes, machine, argv), runs, summary,
                          ceiling, budget, versus, target, bench.reference, figures)
    print(report.read_text())
    print(f"written: {report}, {out / 'summary.csv'}, {out / 'runs.csv'}, {out / 'budget.csv'}"
          + "".join(f", {p}" for p in figures))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(compare_cli(sys.argv[1:]))
