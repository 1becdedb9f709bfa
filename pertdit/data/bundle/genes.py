"""Align every file's genes by Entrez id into the order of `l1000_landmark_genes.tsv`.

Files with `var["entrez_id"]` are aligned by it; PRnet's `.h5ad` has gene symbols only and is mapped
through the table's `prnet_symbol` (then `symbol`, then `aliases_in_sources`). Genes of a file that map to
no landmark are reported by name; a landmark that a file lacks is an error naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from pertdit.errors import DataError

GENE_TABLE_COLUMNS = ("entrez_id", "symbol", "aliases_in_sources", "prnet_symbol")


def load_landmarks(path: str | Path) -> pd.DataFrame:
    """The landmark table: one row per gene, in the bundle's gene order (`entrez_id` int64, `symbol`, ...)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"landmark gene table not found: {path} (l1000_landmark_genes.tsv of the data folder)")
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in GENE_TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: lacks column(s) {missing}; has {list(table.columns)}")
    table["entrez_id"] = table["entrez_id"].astype(np.int64)
    for column in ("entrez_id", "symbol"):
        if table[column].duplicated().any():
            raise DataError(f"{path}: repeated {column}: {list(table.loc[table[column].duplicated(), column])[:5]}")
    return table


@dataclass
class GeneAlignment:
    """Column of the file for each landmark (in landmark order), the file's genes that map to none, and the
    file's own gene order (Entrez ids and symbols of its mapped genes, as the file lists them)."""

    columns: np.ndarray
    unmapped: list[str] = field(default_factory=list)
    by: str = "entrez_id"
    file_entrez: list[int] = field(default_factory=list)
    file_symbols: list[str] = field(default_factory=list)


def _symbol_lookup(landmarks: pd.DataFrame) -> dict[str, int]:
    """Symbol -> landmark row; PRnet's name first, then the LINCS 2020 symbol, then older aliases."""
    lookup: dict[str, int] = {}
    for column in ("aliases_in_sources", "symbol", "prnet_symbol"):  # later columns take precedence
        for row, names in enumerate(landmarks[column]):
            for name in str(names).split("|"):
                if name:
                    lookup[name] = row
    return lookup


def match_genes(var: pd.DataFrame, landmarks: pd.DataFrame, where: str) -> GeneAlignment:
    """Map a file's `var` onto the landmarks: by `entrez_id` when present, else by symbol (`var_names`)."""
    if "entrez_id" in var.columns:
        ids = pd.to_numeric(var["entrez_id"], errors="coerce")
        landmark_row = pd.Index(landmarks["entrez_id"]).get_indexer(ids.fillna(-1).astype(np.int64))
        by = "entrez_id"
    else:
        lookup = _symbol_lookup(landmarks)
        landmark_row = np.array([lookup.get(str(name), -1) for name in var.index], dtype=np.int64)
        by = "symbol (l1000_landmark_genes.tsv prnet_symbol)"
    unmapped = [str(name) for name in var.index[landmark_row < 0]]
    mapped = landmark_row[landmark_row >= 0]
    if len(np.unique(mapped)) != len(mapped):
        repeated = pd.Index(landmarks["symbol"].to_numpy()[mapped]).duplicated()
        raise DataError(f"{where}: several genes map to the same landmark, e.g. "
                        f"{list(landmarks['symbol'].to_numpy()[mapped][repeated][:5])}; one row per gene needed")
    columns = np.full(len(landmarks), -1, dtype=np.int64)
    columns[mapped] = np.flatnonzero(landmark_row >= 0)
    absent = landmarks["symbol"].to_numpy()[columns < 0]
    if len(absent):
        raise DataError(f"{where}: {len(absent)} of {len(landmarks)} landmark genes are missing (matched by {by}), "
                        f"e.g. {list(absent[:10])}; every file of the bundle must measure the 978 landmarks")
    mapped_rows = np.flatnonzero(landmark_row >= 0)
    file_entrez = landmarks["entrez_id"].to_numpy()[landmark_row[mapped_rows]]
    return GeneAlignment(columns=columns, unmapped=unmapped, by=by, file_entrez=[int(e) for e in file_entrez],
                         file_symbols=[str(name) for name in var.index[mapped_rows]])


def landmark_var(landmarks: pd.DataFrame) -> pd.DataFrame:
    """The bundle's `var`: indexed by LINCS 2020 symbol, with `entrez_id` (int64)."""
    var = pd.DataFrame({"entrez_id": landmarks["entrez_id"].to_numpy(np.int64),
                        "symbol": landmarks["symbol"].to_numpy(dtype=object)},
                       index=pd.Index(landmarks["symbol"].to_numpy(dtype=object)))
    var.index.name = None
    return var


def align_to_landmarks(adata: ad.AnnData, landmarks: pd.DataFrame, where: str) -> tuple[np.ndarray, GeneAlignment]:
    """`X` (profiles x 978, float32) with columns in landmark order, and how the genes were matched."""
    alignment = match_genes(adata.var, landmarks, where)
    return np.ascontiguousarray(np.asarray(adata.X)[:, alignment.columns], dtype=np.float32), alignment


def in_file_gene_order(adata: ad.AnnData, source: str) -> ad.AnnData:
    """A bundle AnnData with its genes in the order, and under the symbols, of one source file.

    `data=plate` uses it so that its dataset equals reading that file (gene order matters to models with
    per-position gene embeddings); `var["entrez_id"]` and `var["symbol"]` (LINCS 2020) are kept.
    """
    records = adata.uns.get("bundle", {}).get("sources", {})
    if source not in records:
        raise DataError(f"gene_order={source!r}: not a source of this bundle ({list(records)}); "
                        "gene_order needs the bundle (data=bundle/plate) and one of its source names")
    entrez = np.asarray(records[source]["file_entrez"], dtype=np.int64)
    columns = pd.Index(adata.var["entrez_id"].to_numpy()).get_indexer(entrez)
    out = adata[:, columns].copy()
    out.var_names = pd.Index([str(s) for s in records[source]["file_symbols"]], dtype=object)
    return out
