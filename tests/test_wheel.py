"""PertDiT installs as a plain wheel: the configs and data tables travel inside the package, so `pertdit train`
works from any directory after `pip install .` (not only from an editable checkout)."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pertdit"


def package_data_patterns() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    return config["tool"]["setuptools"]["package-data"]["pertdit"]


def test_package_data_globs_cover_every_non_python_file_of_the_package():
    covered = {Path(PACKAGE, match).resolve() for pattern in package_data_patterns()
               for match in glob.glob(pattern, root_dir=PACKAGE, recursive=True)}
    files = {p.resolve() for p in PACKAGE.rglob("*")
             if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
    assert files, "the package has configs and tables"
    assert sorted(str(p.relative_to(PACKAGE)) for p in files - covered) == []
    assert {PACKAGE / "conf" / "train.yaml", PACKAGE / "data" / "l1000_landmark_genes.tsv"} <= covered


def _run(command: list[str], cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, text=True, capture_output=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_wheel_installs_and_trains_from_another_directory(tmp_path, data_dir):
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(PACKAGE, source / "pertdit", ignore=shutil.ignore_patterns("__pycache__"))
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PERTDIT_CACHE")}
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", ".", "-w", str(tmp_path / "dist")],
         source, clean)
    (wheel,) = (tmp_path / "dist").glob("pertdit-*.whl")
    site = tmp_path / "site"
    _run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)], tmp_path, clean)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**clean, "PYTHONPATH": str(site), "PERTDIT_DATA": str(data_dir), "PERTDIT_CACHE": str(tmp_path / "cache"),
           "OMP_NUM_THREADS": "2"}
    where = _run([sys.executable, "-c", "import pertdit; print(pertdit.__file__)"], elsewhere, env)
    assert Path(where.stdout.strip()).is_relative_to(site), "the installed wheel must be imported, not the checkout"
    pertdit = site / "bin" / "pertdit"
    helped = _run([str(pertdit), "train", "--help"], elsewhere, env)
    assert "== Configuration groups ==" in helped.stdout  # the configs were found inside the installed package
    assert re.search(r"^data: .*\bgeo\b", helped.stdout, re.M)
    assert re.search(r"^model: .*\bcrossdit\b", helped.stdout, re.M)
    run_dir = tmp_path / "run"
    _run([str(pertdit), "train", "trainer.fast_dev_run=true", "model=crossdit", "model.backbone.d_model=16",
          "model.backbone.n_layers=1", "model.backbone.n_heads=2", "model.backbone.mlp_hidden=16",
          "model.backbone.time_embed_dim=16", "logger=[]", "callbacks=none", f"paths.run_dir={run_dir}",
          f"hydra.run.dir={run_dir}"], elsewhere, env)
    assert (run_dir / "config.yaml").is_file() and (run_dir / "metrics.csv").is_file()
