"""Compound tables: map `pert_id` to a canonical SMILES and report the ones RDKit cannot parse."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pertdit.errors import DataError, RepresentationError

SMILES_COLUMNS = ("canonical_smiles", "smiles", "SMILES")


def load_compound_table(path: str | Path) -> pd.DataFrame:
    """Read a tab-separated compound table with `pert_id` and a SMILES column; returns pert_id -> smiles."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"compound table not found: {path} (expected a TSV with pert_id and canonical_smiles)")
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    smiles_col = next((c for c in SMILES_COLUMNS if c in table.columns), None)
    if "pert_id" not in table.columns or smiles_col is None:
        raise DataError(f"compound table {path} needs columns pert_id and one of {SMILES_COLUMNS}; "
                        f"it has {list(table.columns)}")
    table = table.rename(columns={smiles_col: "smiles"})
    duplicated = table["pert_id"][table["pert_id"].duplicated()].unique()
    if len(duplicated):
        raise DataError(f"compound table {path} lists pert_id more than once: {list(duplicated)[:5]}")
    return table.set_index("pert_id")


def canonical_smiles(smiles: str) -> str | None:
    """RDKit canonical isomeric SMILES, or None when the string is empty or does not parse."""
    if not isinstance(smiles, str) or smiles.strip() in {"-666", "nan", "restricted"}:
        return None
    from rdkit import Chem

    from pertdit.perturbation import parse_smiles

    try:
        return Chem.MolToSmiles(parse_smiles(smiles.strip()))
    except RepresentationError:
        return None
