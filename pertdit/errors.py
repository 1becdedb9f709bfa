"""Exceptions with messages that name the problem and the fix."""


class PertDiTError(Exception):
    """Base class of the errors PertDiT raises on purpose."""


class DataError(PertDiTError, ValueError):
    """An input file or AnnData does not meet the data contract (missing file, metadata, genes, NaN)."""


class SplitError(PertDiTError, ValueError):
    """A requested split cannot be formed on this dataset (e.g. a cell-line hold-out on one cell line)."""


class RepresentationError(PertDiTError, ValueError):
    """A drug representation cannot be built (bad SMILES, missing model weights, corrupt cache)."""
