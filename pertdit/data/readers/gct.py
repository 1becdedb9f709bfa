"""Read a GCT 1.2 / 1.3 text file (CMap's tab-separated matrix format) as AnnData.

Layout (1.3): `#1.3`; `n_rows n_cols n_row_meta n_col_meta`; a header `id <row fields> <profile ids>`;
one line per column-metadata field (`name <n_row_meta placeholders> <values>`); one line per gene
(`rid <row metadata> <values>`). 1.2 has `n_rows n_cols`, a header `Name Description <ids>` and no
column metadata. Profiles (columns) become `obs`, genes (rows) become `var`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from anndata import AnnData

from pertdit.errors import DataError

from .metadata import build_anndata, make_obs, make_var, require_file

#: Cells read as NaN (kept in `X`; preprocessing decides what to do with them).
NA_TOKENS = frozenset({"", "NA", "N/A", "#N/A", "NaN", "nan", "NAN", "null", "NULL", "None"})


def read_gct(path: str | Path) -> AnnData:
    """GCT 1.2/1.3 file -> AnnData (profiles x genes, `X` float32); see `metadata` for obs/var."""
    path = require_file(path, "GCT file")
    lines = _read_lines(path)
    version = lines[0].strip() if lines else ""
    if version not in ("#1.2", "#1.3"):
        raise DataError(
            f"{path}: line 1 must be the GCT version '#1.2' or '#1.3', found {version[:40]!r}; "
            "is this a GCT file? (GCTX files are HDF5: use read_gctx)"
        )
    n_rows, n_cols, n_row_meta, n_col_meta = _dimensions(path, lines, version)
    width = 1 + n_row_meta + n_cols
    expected_lines = 3 + n_col_meta + n_rows
    if len(lines) < expected_lines:
        raise DataError(
            f"{path}: line 2 announces {n_col_meta} column-metadata and {n_rows} data rows "
            f"({expected_lines} lines), but the file has {len(lines)} lines: "
            "it is truncated or line 2 is wrong"
        )
    if len(lines) > expected_lines:
        raise DataError(
            f"{path}: line {expected_lines + 1}: more rows than the {n_rows} data rows line 2 announces; "
            "fix the counts on line 2 or remove the extra lines"
        )
    header = _fields(path, lines, 3, width)
    row_fields = header[1 : 1 + n_row_meta]
    cids = header[1 + n_row_meta :]
    _check_names(path, row_fields, "row-metadata field", 3)

    col_meta: dict[str, list[str]] = {}
    for line_no in range(4, 4 + n_col_meta):
        fields = _fields(path, lines, line_no, width)
        if fields[0] in col_meta:
            raise DataError(f"{path}: line {line_no} repeats the column-metadata field '{fields[0]}'")
        col_meta[fields[0]] = fields[1 + n_row_meta :]

    first_data = 4 + n_col_meta
    rows = [_fields(path, lines, first_data + i, width) for i in range(n_rows)]
    rids = [fields[0] for fields in rows]
    row_meta = {name: [fields[1 + j] for fields in rows] for j, name in enumerate(row_fields)}
    values = _values(path, rows, 1 + n_row_meta, first_data, cids)

    where = str(path)
    return build_anndata(values.T, make_obs(cids, col_meta, where), make_var(rids, row_meta, where))


def _read_lines(path: Path) -> list[str]:
    """Lines without line endings; trailing blank lines dropped."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err}); is this a GCT file?") from err
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _dimensions(path: Path, lines: list[str], version: str) -> tuple[int, int, int, int]:
    """(n_rows, n_cols, n_row_meta, n_col_meta) from line 2."""
    expected = 2 if version == "#1.2" else 4
    fields = lines[1].split("\t") if len(lines) > 1 else []
    while fields and not fields[-1].strip():
        fields.pop()
    try:
        numbers = [int(f) for f in fields]
    except ValueError:
        numbers = []
    if len(numbers) != expected or min(numbers) < 0:
        shape = "n_rows, n_cols" if expected == 2 else "n_rows, n_cols, n_row_meta, n_col_meta"
        raise DataError(
            f"{path}: line 2 must hold {expected} non-negative integers ({shape}) for GCT {version[1:]}, "
            f"found {fields[:6]}"
        )
    if expected == 2:
        return numbers[0], numbers[1], 1, 0
    return numbers[0], numbers[1], numbers[2], numbers[3]


def _fields(path: Path, lines: list[str], line_no: int, width: int) -> list[str]:
    """Tab-separated fields of a 1-based line, checked against the expected count."""
    fields = lines[line_no - 1].split("\t")
    if len(fields) != width:
        raise DataError(
            f"{path}: line {line_no} has {len(fields)} tab-separated fields, expected {width} "
            "(id + row metadata + one per profile); fix or re-export the file"
        )
    return fields


def _check_names(path: Path, names: list[str], what: str, line_no: int) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen or not name:
            raise DataError(f"{path}: line {line_no}: empty or repeated {what} name {name!r}")
        seen.add(name)


def _values(path: Path, rows: list[list[str]], skip: int, first_line: int, cids: list[str]) -> np.ndarray:
    """(n_genes, n_profiles) float32 from the value cells; NA tokens -> NaN (kept)."""
    cells = [fields[skip:] for fields in rows]
    try:
        return np.array(cells, dtype=np.float64).astype(np.float32).reshape(len(rows), len(cids))
    except ValueError:
        pass
    out = np.empty((len(rows), len(cids)), dtype=np.float32)
    for i, row in enumerate(cells):
        try:
            out[i] = np.array(row, dtype=np.float64)
            continue
        except ValueError:
            pass
        for j, cell in enumerate(row):
            out[i, j] = _number(path, cell, first_line + i, cids[j])
    return out


def _number(path: Path, cell: str, line_no: int, cid: str) -> float:
    if cell.strip() in NA_TOKENS:
        return np.nan
    try:
        return float(cell)
    except ValueError:
        raise DataError(
            f"{path}: line {line_no}, profile '{cid}': {cell[:30]!r} is not a number (use NaN for missing)"
        ) from None
