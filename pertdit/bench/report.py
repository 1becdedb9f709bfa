"""Write the benchmark report: BENCHMARKS.md (machine, then one section per figure, each with its command,
machine and date) and benchmarks.csv (section, name, value, unit, device, notes)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from pertdit.bench.machine import MachineInfo
from pertdit.bench.results import CSV_COLUMNS, Section, Table


def markdown_table(table: Table) -> str:
    lines = [f"| {' | '.join(table.headers)} |", f"|{'|'.join('---' for _ in table.headers)}|"]
    lines += [f"| {' | '.join(cell.replace('|', '/') for cell in row)} |" for row in table.rows]
    caption = f"{table.caption}\n\n" if table.caption else ""
    return caption + "\n".join(lines)


def section_command(machine: MachineInfo, section: Section, devices: Sequence[str], quick: bool) -> str:
    """The command that reproduces this section alone."""
    device = devices[0] if len(devices) == 1 else "auto"
    return f"python -m pertdit.bench --sections {section.key} --device {device}" + (" --quick" if quick else "")


def render(sections: Sequence[Section], machine: MachineInfo, devices: Sequence[str], csv_name: str,
           quick: bool = False) -> str:
    out = ["# PertDiT benchmarks", ""]
    if quick:
        out += ["> **Quick smoke mode (`--quick`)**: tiny models and single repeats. These numbers check that the "
                "benchmarks run; they say nothing about speed.", ""]
    out += [f"Written by `{machine.command}` on {machine.date}. Every number is also in `{csv_name}` "
            "(columns: " + ", ".join(CSV_COLUMNS) + "). How to run and read this: `docs/benchmarks.md`.", "",
            "## Machine", "", "| | |", "|---|---|"]
    out += [f"| {key} | {value} |" for key, value in machine.table()]
    out += [""]
    for number, section in enumerate(sections, start=1):
        used = section.devices or list(devices)
        hardware = "; ".join(f"{d}: {machine.describe(d)}" for d in used)
        out += [f"## {number}. {section.title}", "",
                f"*Command: `{section_command(machine, section, used, quick)}` (part of `{machine.command}`) · "
                f"Machine: {hardware} · Date: {machine.date}*", ""]
        if section.method:
            out += [section.method.strip(), ""]
        for table in section.tables:
            out += [markdown_table(table), ""]
        out += [f"- {note}" for note in section.notes]
        if section.notes:
            out += [""]
    return "\n".join(out).rstrip() + "\n"


def write_csv(sections: Sequence[Section], path: Path) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for section in sections:
            for row in section.rows:
                writer.writerow([row.section, row.name, f"{row.value:.6g}", row.unit, row.device, row.notes])
    return path


def write_report(sections: Sequence[Section], machine: MachineInfo, devices: Sequence[str], out: Path,
                 csv_path: Path, quick: bool = False) -> tuple[Path, Path]:
    """Write the markdown report and the CSV; return both paths."""
    out.parent.mkdir(parents=True, exist_ok=True)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    write_csv(sections, csv_path)
    out.write_text(render(sections, machine, devices, csv_path.name, quick))
    return out, csv_path
