"""L1000 file readers: GCT, GCTX, GEO releases and PRnet/ChemCPA `.h5ad` -> AnnData (profiles x genes).

Every reader returns `X` float32 (profiles as rows, genes as columns), `obs` indexed by the profile id
and `var` indexed by gene symbol, with `var["rid"]` and `var["entrez_id"]`; see `metadata` for the
conventions shared by all readers.
"""

from .dispatch import read_dataset
from .gct import read_gct
from .gctx import read_gctx
from .gctx_write import write_gctx
from .geo import read_geo_release
from .h5ad import COLUMN_CANDIDATES, read_h5ad_dataset

__all__ = [
    "COLUMN_CANDIDATES",
    "read_dataset",
    "read_gct",
    "read_gctx",
    "read_geo_release",
    "read_h5ad_dataset",
    "write_gctx",
]
