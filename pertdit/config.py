"""Hydra/OmegaConf set-up: where the configs live and the resolvers they use."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

PACKAGE_ROOT = Path(__file__).resolve().parent
CONFIG_DIR = PACKAGE_ROOT / "conf"


def default_data_dir() -> str:
    """`$PERTDIT_DATA`, else the first `../shared/data` found above the working directory or the package."""
    env = os.environ.get("PERTDIT_DATA")
    if env:
        return env
    for base in (Path.cwd(), PACKAGE_ROOT.parent):
        for parent in (base, *base.parents):
            candidate = parent.parent / "shared" / "data"
            if candidate.is_dir():
                return str(candidate)
    return str(Path.cwd() / "data")


def default_cache_dir() -> str:
    """`$PERTDIT_CACHE`, else `~/.cache/pertdit`."""
    return os.environ.get("PERTDIT_CACHE", str(Path.home() / ".cache" / "pertdit"))


def shipped_bundle() -> str:
    """Path of the harmonised L1000 bundle shipped inside the package (`pertdit/datasets/l1000_bundle`)."""
    from pertdit.data.bundle import bundle_path

    return str(bundle_path())


def shipped_basal() -> str:
    """Path of the basal profiles (164 cell lines) shipped with the bundle (`l1000_basal.h5ad`)."""
    from pertdit.data.bundle import BASAL_FILE, SHIPPED_DIR

    return str(SHIPPED_DIR / BASAL_FILE)


def fold_item(folds, fold) -> list:
    """`${pertdit_fold:FOLDS,K}`: the K-th entry of the list FOLDS (named folds, e.g. the cell lines of cell
    fold K); a clear error when K is outside the list."""
    items = list(folds or [])
    index = int(fold)
    if not 0 <= index < len(items):
        raise ValueError(f"fold {index} does not exist: {len(items)} named folds are configured ({items})")
    return list(items[index])


def register_resolvers() -> None:
    """Register `${pertdit_data_dir:}`, `${pertdit_cache_dir:}`, `${pertdit_bundle:}`, `${pertdit_basal:}` and
    `${pertdit_fold:FOLDS,K}` (idempotent)."""
    for name, fn in (("pertdit_data_dir", default_data_dir), ("pertdit_cache_dir", default_cache_dir),
                     ("pertdit_bundle", shipped_bundle), ("pertdit_basal", shipped_basal),
                     ("pertdit_fold", fold_item)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()
