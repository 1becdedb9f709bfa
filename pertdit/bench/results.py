"""What a benchmark section returns: CSV rows (one figure each) and markdown tables for the report."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

CSV_COLUMNS: tuple[str, ...] = ("section", "name", "value", "unit", "device", "notes")


@dataclass(frozen=True)
class Row:
    """One number of the CSV: `section`, `name` (what was measured), `value` in `unit`, on `device`."""

    section: str
    name: str
    value: float
    unit: str
    device: str
    notes: str = ""


@dataclass
class Table:
    """A markdown table: a caption line, column headers, rows of cells (already formatted strings)."""

    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    caption: str = ""

    def add(self, *cells: object) -> None:
        self.rows.append([fmt(c) for c in cells])


@dataclass
class Section:
    """One section of the report: a title, how it was measured, tables, CSV rows and the devices used."""

    key: str
    title: str
    method: str = ""
    tables: list[Table] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)

    def row(self, name: str, value: float, unit: str, device: str, notes: str = "") -> float:
        """Record a CSV row; returns `value` so callers can keep using it."""
        self.rows.append(Row(self.key, name, float(value), unit, device, notes))
        if device not in self.devices and device != "any":
            self.devices.append(device)
        return value


def fmt(value: object) -> str:
    """A table cell: floats to 3-4 significant digits, NaN as 'n/a', others via str."""
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if value == 0:
            return "0"
        magnitude = abs(value)
        if magnitude >= 1000:
            return f"{value:,.0f}"
        if magnitude >= 10:
            return f"{value:.1f}"
        if magnitude >= 0.01:
            return f"{value:.3f}"
        return f"{value:.2e}"
    return str(value)
