"""The bundle's provenance file (`PROVENANCE.md`) and the licence texts of its sources (`licenses/`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import anndata as ad

from pertdit.errors import DataError

from .catalog import ATTRIBUTION, LICENCE_FILES, RESTRICTED_LICENCE_FILES, SUPPORT, SourceFile

PROVENANCE_FILE = "PROVENANCE.md"
LICENCE_DIR = "licenses"


def write_licences(src: Path, out: Path, sources: Sequence[SourceFile]) -> Path:
    """Copy the licence texts of `sources` (and of the tables) from `src` into `out/licenses/`."""
    names = list(LICENCE_FILES) + [RESTRICTED_LICENCE_FILES[s.name] for s in sources
                                   if s.name in RESTRICTED_LICENCE_FILES]
    folder = out / LICENCE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        if not (src / name).is_file():
            raise DataError(f"licence text {src / name} not found; the bundle ships every source's licence")
        tmp = folder / f".{name}.tmp{os.getpid()}"
        shutil.copyfile(src / name, tmp)
        os.replace(tmp, folder / name)
    for stale in folder.iterdir():
        if stale.name not in names:
            stale.unlink()
    return folder


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"


def provenance_text(expression: ad.AnnData, sources: Sequence[SourceFile]) -> str:
    """Markdown: attribution, one row per source (repository, path, commit, licence), caveats, counts."""
    records = expression.uns["bundle"]["sources"]
    lines = ["# Provenance of the PertDiT L1000 bundle", "", ATTRIBUTION, "",
             "Built by `python -m pertdit.data.bundle build` from the files of `shared/data` (see its "
             "README.md). Values are the sources' raw Level-3 log2 expression (float32); genes aligned by "
             "Entrez id into the order of `l1000_landmark_genes.tsv`. Licence texts: `licenses/`.", "",
             "## Expression sources", "",
             _row(["source", "file", "repository", "path", "commit", "licence", "licence text", "profiles"]),
             _row(["---"] * 8)]
    for source in sources:
        lines.append(_row([source.name, source.file, source.repository, source.path, source.commit,
                           source.licence, source.licence_file, records[source.name]["n_profiles"]]))
    lines += ["", "## Tables and basal profiles", "",
              _row(["table", "file", "repository", "path", "commit", "licence", "licence text"]),
              _row(["---"] * 7)]
    for table in SUPPORT:
        lines.append(_row([table.name, table.file, table.repository, table.path, table.commit, table.licence,
                           table.licence_file]))
    lines += ["", "## Assumptions and caveats", ""]
    for source in sources:
        for note in (*source.assumptions, *([source.caveat] if source.caveat else [])):
            lines.append(f"- {source.name}: {note}")
    lines += ["", "## What the mapping reported", ""]
    for source in sources:
        record = records[source.name]
        for key in ("compounds_without_smiles", "treated_without_dose", "genes_unmapped", "columns_not_carried"):
            values = list(record[key])
            if values:
                lines.append(f"- {source.name}: {key.replace('_', ' ')}: {', '.join(map(str, values))}")
    return "\n".join(lines) + "\n"


def write_provenance(out: Path, expression: ad.AnnData, sources: Sequence[SourceFile]) -> Path:
    """Write `PROVENANCE.md` (temp file, then rename)."""
    path = out / PROVENANCE_FILE
    tmp = out / f".{PROVENANCE_FILE}.tmp{os.getpid()}"
    tmp.write_text(provenance_text(expression, sources), encoding="utf-8")
    os.replace(tmp, path)
    return path
