"""`python -m pertdit.bench --quick` runs end to end and writes a report and a CSV with every section.

Slow (~45 s: it runs every section, including two synthetic GEO releases through `pertdit data`); `make test-full`
and `make bench` run it.

This checks that the benchmarks run; it asserts no timing (timings belong in `make bench`, not `make test`).
"""

from __future__ import annotations

import csv
import importlib

import pytest

from pertdit.bench.__main__ import main
from pertdit.bench.results import CSV_COLUMNS
from pertdit.bench.settings import SECTIONS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, data_dir):
    """Run the quick mode once on the CPU into a temporary folder; returns (report text, CSV rows)."""
    out_dir = tmp_path_factory.mktemp("bench")
    code = main(["--quick", "--device", "cpu", "--out", str(out_dir / "BENCHMARKS.md"), "--data-dir", str(data_dir),
                 "--cache-dir", str(out_dir / "cache")])
    assert code == 0
    with open(out_dir / "benchmarks.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return (out_dir / "BENCHMARKS.md").read_text(), rows


def test_report_has_every_section_with_command_machine_and_date(quick_run):
    report, _ = quick_run
    assert "## Machine" in report
    for key in SECTIONS:
        title = importlib.import_module(f"pertdit.bench.{key}").TITLE
        heading = next((line for line in report.splitlines() if line.startswith("## ") and title in line), None)
        assert heading is not None, f"section {key!r} ({title}) missing from the report"
        block = report.split(heading, 1)[1].split("\n## ", 1)[0]
        assert "Command: `python -m pertdit.bench" in block and "Machine:" in block and "Date:" in block
        assert "\n| " in block, f"section {key!r} has no table"


def test_csv_has_the_columns_and_rows_for_every_section(quick_run):
    _, rows = quick_run
    assert rows and list(rows[0]) == list(CSV_COLUMNS)
    assert {row["section"] for row in rows} == set(SECTIONS)
    assert {row["device"] for row in rows} <= {"cpu", "any"}
    for row in rows:
        float(row["value"])  # every value is a number (NaN allowed)
