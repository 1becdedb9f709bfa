"""Building the bundle: deterministic, equal to the shipped copy, opt-in sources with their licence caveat."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from pertdit.data.bundle import BASAL_FILE, BUNDLE_FILE, SHIPPED_DIR, SOURCES, build_bundle, load_basal, load_bundle
from pertdit.data.bundle.__main__ import main as bundle_main
from pertdit.errors import DataError


def _same_uns(left, right) -> None:
    if isinstance(left, dict):
        assert set(left) == set(right)
        for key in left:
            _same_uns(left[key], right[key])
    elif isinstance(left, np.ndarray):
        np.testing.assert_array_equal(left, right)
    else:
        assert left == right


def test_two_builds_are_byte_identical(fresh_bundle_dir, data_dir, tmp_path):
    build_bundle(data_dir, tmp_path)
    for name in (BUNDLE_FILE, BASAL_FILE, "PROVENANCE.md"):
        assert (tmp_path / name).read_bytes() == (fresh_bundle_dir / name).read_bytes(), name


def test_the_shipped_copy_equals_a_fresh_build(fresh_bundle, shipped_bundle):
    np.testing.assert_array_equal(shipped_bundle.X, fresh_bundle.X)
    pd.testing.assert_frame_equal(shipped_bundle.obs, fresh_bundle.obs)
    pd.testing.assert_frame_equal(shipped_bundle.var, fresh_bundle.var)
    _same_uns(shipped_bundle.uns["bundle"], fresh_bundle.uns["bundle"])


def test_shipped_provenance_and_basal_equal_a_fresh_build(fresh_bundle_dir):
    assert (SHIPPED_DIR / "PROVENANCE.md").read_bytes() == (fresh_bundle_dir / "PROVENANCE.md").read_bytes()
    shipped, fresh = (load_basal(folder / BASAL_FILE) for folder in (SHIPPED_DIR, fresh_bundle_dir))
    np.testing.assert_array_equal(shipped.X, fresh.X)
    pd.testing.assert_frame_equal(shipped.obs, fresh.obs)


def test_opt_in_source_is_built_only_on_request_with_its_licence_caveat(data_dir, tmp_path, caplog):
    others = [s.name for s in SOURCES if s.name != "LJP009_A375_24H"]
    with caplog.at_level(logging.WARNING):
        build_bundle(data_dir, tmp_path, include=["LJP009_A375_24H"], exclude=others)
    assert "research use only" in caplog.text
    built = load_bundle(tmp_path / BUNDLE_FILE)
    assert set(built.obs["source"]) == {"LJP009_A375_24H"} and built.n_obs == 371
    assert (tmp_path / "licenses" / "LICENSE-l1ktools.txt").is_file()
    assert "research use" in (tmp_path / "PROVENANCE.md").read_text()


def test_build_command_names_a_missing_source_folder(tmp_path, capsys):
    assert bundle_main(["build", "--src", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 1
    assert "raw collection not found" in capsys.readouterr().err


def test_build_stops_on_a_file_that_lacks_landmark_genes(data_dir, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for path in data_dir.iterdir():
        (source / path.name).symlink_to(path)
    broken = "l1000_LJP005_MCF7_24H_level3_n10x978.gct"
    (source / broken).unlink()
    lines = (data_dir / broken).read_text().splitlines()
    header = lines[1].split("\t")
    lines[1] = "\t".join([str(int(header[0]) - 1), *header[1:]])
    (source / broken).write_text("\n".join(lines[:-1]) + "\n")  # drop the last gene row
    with pytest.raises(DataError, match=r"1 of 978 landmark genes are missing .*entrez_id"):
        build_bundle(source, tmp_path / "out", exclude=[s.name for s in SOURCES if s.name != "LJP005_MCF7_24H"])
