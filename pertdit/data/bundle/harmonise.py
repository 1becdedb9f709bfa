"""One source file -> harmonised profiles: the one obs schema, genes in landmark order, compound SMILES.

Compound names and SMILES come from the collection's compound table (`l1000_compounds_all.tsv`, keyed by
`pert_id`), so one compound has one name and one structure in every file; the file's own name is kept in
`pert_iname_file`. Everything the mapping does not carry or cannot map is listed in the source's record.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd

from pertdit.data.schema import KINDS, harmonise_obs

from .catalog import SourceFile
from .genes import align_to_landmarks

log = logging.getLogger(__name__)
#: Columns the readers add from others (normalised copies), not data of the file itself.
READER_COLUMNS = {"smiles", "dose", "pert_type", "pert_iname"}


@dataclass
class HarmonisedSource:
    """Profiles of one source: `X` (n, 978) float32, harmonised `obs`, and what the mapping reports."""

    X: np.ndarray
    obs: pd.DataFrame
    record: dict


def compound_names(obs: pd.DataFrame, compounds: pd.DataFrame) -> np.ndarray:
    """Harmonised `pert_iname`: the compound table's name, else the file's name unless it is only the id.

    Controls keep the file's vehicle name (`DMSO`, `H2O`, `UnTrt`); `""` when the only name is the id.
    """
    treated = obs["control_kind"].to_numpy() == ""
    table_name = obs["pert_id"].map(compounds["pert_iname"]).fillna("").to_numpy(dtype=object)
    file_name = obs["pert_iname"].to_numpy(dtype=object)
    own = np.where(file_name == obs["pert_id"].to_numpy(dtype=object), "", file_name)
    return np.where(treated, np.where(table_name != "", table_name, own), file_name).astype(object)


def harmonise_source(adata: ad.AnnData, source: SourceFile, landmarks: pd.DataFrame,
                     compounds: pd.DataFrame) -> HarmonisedSource:
    """Map one file (read by the project's readers) to the bundle's obs schema and gene order."""
    kind = KINDS[source.kind]
    obs = harmonise_obs(adata.obs, source.name, kind, where=source.file)
    obs["pert_iname_file"] = obs["pert_iname"].to_numpy()
    obs["pert_iname"] = compound_names(obs, compounds)
    treated = obs["control_kind"].to_numpy() == ""
    smiles = obs["pert_id"].map(compounds["smiles"]).fillna("").to_numpy(dtype=object)
    obs["smiles"] = np.where(treated, smiles, "").astype(object)
    X, alignment = align_to_landmarks(adata, landmarks, source.file)

    record = source.provenance()
    pert_ids = obs["pert_id"].to_numpy()
    not_in_table = sorted(set(pert_ids[treated & ~obs["pert_id"].isin(compounds.index).to_numpy()]))
    no_smiles = obs.loc[treated & (obs["smiles"] == "").to_numpy(), ["pert_id", "pert_iname_file"]]
    no_dose = obs.loc[treated & ~(obs["dose"].to_numpy() > 0)]
    record.update({
        "n_profiles": int(len(obs)),
        "pert_types": _counts(obs["pert_type"]),
        "control_kinds": _counts(obs.loc[~treated, "control_kind"]),
        "cell_lines": sorted(set(obs["cell_id"])),
        "times_h": sorted({float(t) for t in obs["time"] if np.isfinite(t)}),
        "n_plates": int(obs.loc[obs["plate"] != "", "plate"].nunique()),
        "own_pairing": bool((obs["source_control"] != "").any()),
        "columns_not_carried": sorted(set(adata.obs.columns) - kind.used_columns() - READER_COLUMNS),
        "genes_matched_by": alignment.by,
        "genes_unmapped": alignment.unmapped,
        "file_entrez": alignment.file_entrez,
        "file_symbols": alignment.file_symbols,
        "compounds_not_in_table": not_in_table,
        "compounds_without_smiles": sorted({f"{pid} ({name})" if name and name != pid else pid
                                            for pid, name in no_smiles.itertuples(index=False)}),
        "treated_without_dose": [f"{pid} ({row.pert_id}, dose {row.dose:g})" for pid, row in no_dose.iterrows()],
        "file_notes": {str(k): str(v) for k, v in adata.uns.items() if isinstance(v, str)},
    })
    for key in ("compounds_without_smiles", "treated_without_dose", "genes_unmapped", "compounds_not_in_table"):
        if record[key]:
            log.warning("%s: %s: %s", source.name, key.replace("_", " "), ", ".join(record[key])[:400])
    if record["columns_not_carried"]:
        log.info("%s: columns not carried into the bundle: %s", source.name, ", ".join(record["columns_not_carried"]))
    return HarmonisedSource(X=X, obs=obs, record=record)


def _counts(column: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(column.value_counts().items())}
