"""Cell line -> organ table for the organ hold-out splits, and which organs of a dataset can be held out."""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import anndata as ad
import pandas as pd

from pertdit.errors import DataError

UNKNOWN = "unknown"


def load_cell_organs(path: str | Path | None = None) -> pd.Series:
    """Series cell_id -> organ (lower case) from a TSV (`cell_id`, `organ`); the bundled table by default."""
    if path is None:
        source = resources.files("pertdit.data").joinpath("cell_organs.tsv")
        table = pd.read_csv(source.open("r"), sep="\t", comment="#", dtype=str)
    else:
        if not Path(path).is_file():
            raise DataError(f"cell-organ table not found: {path}")
        table = pd.read_csv(path, sep="\t", comment="#", dtype=str)
    if not {"cell_id", "organ"} <= set(table.columns):
        raise DataError(f"cell-organ table {path or 'bundled'} needs columns cell_id and organ")
    duplicated = table["cell_id"][table["cell_id"].duplicated()].unique()
    if len(duplicated):
        raise DataError(f"cell-organ table {path or 'bundled'} lists cell_id more than once: "
                        f"{list(duplicated)[:5]}")
    return table.set_index("cell_id")["organ"].fillna(UNKNOWN).str.strip().str.lower()


def _key(cell_id: str) -> str:
    """Cell line id for lookups: upper case without '-', '_' or spaces (HT-29, ht29 and HT_29 are one line)."""
    return re.sub(r"[-_\s]", "", str(cell_id)).upper()


def organ_of(cell_ids: Iterable[str], cell_organs: pd.Series) -> dict[str, str]:
    """{cell_id: organ} for `cell_ids`; 'unknown' for a cell line the table does not list."""
    by_key = {_key(c): o for c, o in cell_organs.items()}
    return {str(c): by_key.get(_key(c), UNKNOWN) for c in cell_ids}


def organ_summary(adata: ad.AnnData, cell_organs: pd.Series, min_cell_lines: int = 1,
                  min_profiles: int = 30) -> pd.DataFrame:
    """Which organs of a dataset have enough treated profiles for an organ hold-out.

    One row per organ (sorted by profiles): `n_cell_lines`, `n_profiles` (treated), `n_compounds` (SMILES),
    `cell_lines` (id:profiles, most first), `holdout_ok` and `why_not`. An organ can be held out when it is known,
    has at least `min_cell_lines` cell lines and `min_profiles` treated profiles, and other organs' profiles
    remain to train on.
    """
    obs = adata.obs.loc[~adata.obs["is_control"].to_numpy(bool)]
    cells = obs["cell_id"].astype(str)
    organs = organ_of(cells.unique(), cell_organs)
    table = pd.DataFrame({"organ": cells.map(organs), "cell_id": cells, "smiles": obs["smiles"].astype(str)})
    rows = []
    for organ, part in table.groupby("organ", sort=False):
        counts = part["cell_id"].value_counts()
        rows.append({"organ": organ, "n_cell_lines": len(counts), "n_profiles": len(part),
                     "n_compounds": part["smiles"].nunique(),
                     "cell_lines": ", ".join(f"{c}:{n}" for c, n in counts.items())})
    summary = pd.DataFrame(rows, columns=["organ", "n_cell_lines", "n_profiles", "n_compounds", "cell_lines"])
    summary = summary.sort_values(["n_profiles", "organ"], ascending=[False, True], ignore_index=True)
    why = []
    for row in summary.itertuples():
        reasons = []
        if row.organ == UNKNOWN:
            reasons.append("organ unknown (add the cell lines to a table: split.cell_organs)")
        if row.n_cell_lines < min_cell_lines:
            reasons.append(f"{row.n_cell_lines} < {min_cell_lines} cell lines")
        if row.n_profiles < min_profiles:
            reasons.append(f"{row.n_profiles} < {min_profiles} profiles")
        if row.n_profiles == len(table):
            reasons.append("no other organ left to train on")
        why.append("; ".join(reasons))
    summary["holdout_ok"] = [not w for w in why]
    summary["why_not"] = why
    return summary


def format_organ_summary(summary: pd.DataFrame) -> str:
    """The organ summary as text: organ, cell lines, profiles, compounds, and whether it can be held out."""
    lines = [f"{'organ':<20}{'cells':>6}{'profiles':>10}{'compounds':>11}  {'cell lines (profiles)':<40}  hold-out"]
    for row in summary.itertuples():
        verdict = "yes" if row.holdout_ok else f"no: {row.why_not}"
        cell_lines = row.cell_lines if len(row.cell_lines) <= 40 else row.cell_lines[:37] + "..."
        lines.append(f"{row.organ:<20}{row.n_cell_lines:>6}{row.n_profiles:>10}{row.n_compounds:>11}  "
                     f"{cell_lines:<40}  {verdict}")
    return "\n".join(lines)
