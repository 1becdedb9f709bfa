"""The 978 L1000 landmark genes: from a GEO `gene_info` table's landmark flag, else the bundled list.

GEO Level-3 matrices hold 12,328 genes (978 measured landmarks + inferred genes); PertDiT models the
landmarks. The bundled list (`l1000_landmark_genes.tsv`, Entrez id + LINCS 2020 symbol, TranSiGen's order)
fixes one gene order for every release, so GSE92742 and GSE70138 give the same columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from pertdit.errors import DataError

LANDMARK_FILE = Path(__file__).with_name("l1000_landmark_genes.tsv")
#: gene_info columns that flag landmark genes (GSE92742/GSE70138 call it `pr_is_lm`; plate files `pr_is_lmark`)
FLAG_COLUMNS = ("pr_is_lm", "pr_is_lmark")
SYMBOL_COLUMN = "pr_gene_symbol"
SOURCES = ("auto", "gene_info", "bundled")


@lru_cache(maxsize=1)
def bundled_landmarks() -> pd.DataFrame:
    """The bundled 978 landmarks: columns `entrez_id` (str), `symbol`, in the project's gene order."""
    table = pd.read_csv(LANDMARK_FILE, sep="\t", comment="#", dtype=str, keep_default_na=False)
    return table[["entrez_id", "symbol"]]


@dataclass(frozen=True)
class Landmarks:
    """The selected genes of one release: `positions` in its matrix rows, `entrez_ids` and `symbols` in the
    output order, and where the selection came from (`origin`)."""

    positions: np.ndarray
    entrez_ids: list[str]
    symbols: list[str]
    origin: str


def select_landmarks(row_ids: np.ndarray, gene_info: pd.DataFrame | None, source: str = "auto",
                     where: str = "GEO release") -> Landmarks:
    """The landmark rows of a matrix whose row ids are Entrez ids (GEO). `source`: `gene_info` (its
    `pr_is_lm`/`pr_is_lmark` flag; an error when it has none), `bundled` (the bundled list), `auto` (the
    flag when present, else the bundled list). Genes are ordered as in the bundled list, flagged genes it
    lacks after them; symbols from gene_info when given. DataError naming the genes the matrix lacks."""
    if source not in SOURCES:
        raise DataError(f"landmarks={source!r} is not one of {SOURCES}")
    bundled = bundled_landmarks()
    flag = None if gene_info is None else next((c for c in FLAG_COLUMNS if c in gene_info.columns), None)
    if source == "gene_info" and flag is None:
        raise DataError(f"{where}: landmarks=gene_info, but the gene_info table has no {' or '.join(FLAG_COLUMNS)} "
                        "column; use landmarks=bundled (the 978 landmark Entrez ids shipped with PertDiT)")
    if flag is not None and source != "bundled":
        flagged = gene_info.index[gene_info[flag].astype(str).str.strip().isin(["1", "1.0", "true", "True"])]
        flagged = [str(g) for g in flagged]
        known, wanted = set(bundled["entrez_id"]), set(flagged)
        entrez = [g for g in bundled["entrez_id"] if g in wanted] + [g for g in flagged if g not in known]
        origin = f"gene_info column {flag}"
    else:
        entrez = list(bundled["entrez_id"])
        origin = f"bundled list {LANDMARK_FILE.name}"
    if not entrez:
        raise DataError(f"{where}: the gene_info flag {flag} marks no gene as a landmark")
    positions = pd.Index([str(r) for r in row_ids]).get_indexer(entrez)
    missing = [g for g, p in zip(entrez, positions) if p < 0]
    if missing:
        raise DataError(
            f"{where}: {len(missing)} of the {len(entrez)} landmark genes ({origin}) are not rows of the matrix, "
            f"e.g. Entrez ids {missing[:10]}; GEO Level-3 rows are Entrez ids (is this the right file?)"
        )
    symbols = dict(zip(bundled["entrez_id"], bundled["symbol"]))
    if gene_info is not None and SYMBOL_COLUMN in gene_info.columns:
        given = gene_info[SYMBOL_COLUMN].astype(str)
        symbols.update({str(k): v for k, v in given.items() if v})
    names = [symbols.get(g, g) for g in entrez]
    if len(set(names)) != len(names):
        names = entrez  # symbols must name genes uniquely; fall back to the Entrez ids
    return Landmarks(positions=positions.astype(np.int64), entrez_ids=entrez, symbols=names, origin=origin)


def common_gene_order(selections: list[Landmarks], names: list[str]) -> list[Landmarks]:
    """Reorder every release's selection to the first one's gene order; DataError naming the genes that one
    release has and another lacks (releases are combined by Entrez id)."""
    first = selections[0]
    out = [first]
    for selection, name in zip(selections[1:], names[1:]):
        here = dict(zip(selection.entrez_ids, selection.positions))
        missing = [g for g in first.entrez_ids if g not in here]
        extra = [g for g in selection.entrez_ids if g not in set(first.entrez_ids)]
        if missing or extra:
            raise DataError(
                f"{name}: its landmark genes differ from {names[0]}'s: lacks {missing[:10]}, adds {extra[:10]} "
                "(Entrez ids); combine releases with the same landmarks (landmarks=bundled uses one list for all)"
            )
        out.append(Landmarks(positions=np.asarray([here[g] for g in first.entrez_ids], dtype=np.int64),
                             entrez_ids=first.entrez_ids, symbols=first.symbols, origin=selection.origin))
    return out
