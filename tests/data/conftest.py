"""Bundle fixtures: the shipped copy (always there), a fresh build from ../shared/data (once per session),
and the datasets the `data=bundle` / `data=plate` configs give."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import pytest
from hydra.utils import instantiate

from pertdit.data.bundle import build_bundle, bundle_path, load_bundle
from tests.helpers import compose_train


@pytest.fixture(scope="session")
def fresh_bundle_dir(data_dir: Path, tmp_path_factory) -> Path:
    """A bundle built from the raw collection in a temporary folder."""
    out = tmp_path_factory.mktemp("bundle")
    build_bundle(data_dir, out)
    return out


@pytest.fixture(scope="session")
def fresh_bundle(fresh_bundle_dir: Path) -> ad.AnnData:
    return load_bundle(bundle_path(fresh_bundle_dir))


@pytest.fixture(scope="session")
def shipped_bundle() -> ad.AnnData:
    return load_bundle()


def load_configured(overrides: list[str], tmp_path: Path, data_dir: Path | str = "/nonexistent") -> ad.AnnData:
    """The preprocessed dataset of the `train` config with `overrides` (cache in `tmp_path`)."""
    cfg = compose_train(overrides, tmp_path / "run", tmp_path / "cache", Path(data_dir))
    return instantiate(cfg.data, split=None, representation=None, _recursive_=False).load()


@pytest.fixture(scope="session")
def bundle_dataset(tmp_path_factory) -> ad.AnnData:
    """`data=bundle` with its defaults, from the shipped copy only (no ../shared needed)."""
    return load_configured(["data=bundle"], tmp_path_factory.mktemp("bundle_dataset"))
