"""The harmonised L1000 collection: every expression file of `shared/data` in one obs schema and one gene
order, shipped inside the package (`pertdit/datasets/l1000_bundle/`) so a fresh clone runs without it.

- `catalog`: the files, their provenance and licences.
- `genes`: alignment by Entrez id into the order of `l1000_landmark_genes.tsv`.
- `harmonise`: one file -> the obs schema of `pertdit.data.schema` (+ compound names and SMILES).
- `build`: all files -> `l1000_bundle.h5ad`, `l1000_basal.h5ad`, `PROVENANCE.md`, `licenses/`.
- `load`: read it back (`load_bundle`, `load_basal`).

Rebuild: `python -m pertdit.data.bundle build [--src DIR] [--out DIR] [--include LJP009_A375_24H]`.
"""

from .build import BASAL_FILE, BUNDLE_FILE, build_bundle
from .catalog import SOURCES, default_sources, source_by_name, source_name_of_file
from .load import SHIPPED_DIR, bundle_path, is_bundle, load_basal, load_bundle

__all__ = [
    "BASAL_FILE",
    "BUNDLE_FILE",
    "SHIPPED_DIR",
    "SOURCES",
    "build_bundle",
    "bundle_path",
    "default_sources",
    "is_bundle",
    "load_basal",
    "load_bundle",
    "source_by_name",
    "source_name_of_file",
]
