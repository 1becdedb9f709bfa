"""Shared fixtures: the real L1000 plate from ../shared/data (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

REPO = Path(__file__).resolve().parents[1]
LEVEL3 = "l1000_LJP005_A375_24H_level3_n377x978.gct"
LEVEL4 = "l1000_LJP005_A375_24H_level4_zscore_n377x978.gctx"
COMPOUNDS = "l1000_LJP005_compounds.tsv"


def shared_data_dir() -> Path | None:
    """`$PERTDIT_DATA` or `<repo>/../shared/data`, when it holds the plate."""
    candidate = Path(os.environ.get("PERTDIT_DATA", REPO.parent / "shared" / "data"))
    return candidate if (candidate / LEVEL3).is_file() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    found = shared_data_dir()
    if found is None:
        pytest.skip("real L1000 plate not found: set PERTDIT_DATA or provide ../shared/data")
    return found


@pytest.fixture(scope="session")
def level3_path(data_dir: Path) -> Path:
    return data_dir / LEVEL3


@pytest.fixture(scope="session")
def level4_path(data_dir: Path) -> Path:
    return data_dir / LEVEL4


@pytest.fixture(scope="session")
def compounds_path(data_dir: Path) -> Path:
    return data_dir / COMPOUNDS
