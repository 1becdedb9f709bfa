"""Cell line -> organ table for the organ hold-out splits."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from pertdit.errors import DataError


def load_cell_organs(path: str | Path | None = None) -> pd.Series:
    """Series cell_id -> organ from a TSV (`cell_id`, `organ`); the bundled L1000 table by default."""
    if path is None:
        source = resources.files("pertdit.data").joinpath("cell_organs.tsv")
        table = pd.read_csv(source.open("r"), sep="\t", comment="#", dtype=str)
    else:
        if not Path(path).is_file():
            raise DataError(f"cell-organ table not found: {path}")
        table = pd.read_csv(path, sep="\t", comment="#", dtype=str)
    if not {"cell_id", "organ"} <= set(table.columns):
        raise DataError(f"cell-organ table {path or 'bundled'} needs columns cell_id and organ")
    return table.set_index("cell_id")["organ"].str.lower()
