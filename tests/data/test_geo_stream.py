"""data=geo streams a GEO release: landmarks and trt_cp/vehicle columns only, in blocks, never the whole matrix.

The result must equal the in-memory computation (read the whole release, select the landmarks, preprocess)
on the same files; bad releases stop with an error naming the file, and nothing half-written is cached.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate

from pertdit.data import geo_stream
from pertdit.data.geo_release import GeoRelease
from pertdit.data.h5ad_io import read_h5ad_mapped
from pertdit.data.landmarks import bundled_landmarks
from pertdit.data.preprocess import PreprocessConfig, preprocess
from pertdit.data.readers import read_geo_release
from pertdit.data.sources import load_dataset
from pertdit.data.synthetic_release import BASAL_FILE, COMPOUNDS_FILE, SynthOptions, release_files, \
    write_synthetic_release
from pertdit.errors import DataError

from tests.helpers import compose_train

PROFILES = 800  # 3 plates; blocks of 64 profiles make 12 reads


def _release(data_dir: Path, out: Path, seed: int = 0, prefix: str = "SYN") -> dict[str, Path]:
    options = SynthOptions(profiles=PROFILES, seed=seed, plate_prefix=prefix, chunk_rows=100, block_rows=300)
    return write_synthetic_release(out, options, data_dir / COMPOUNDS_FILE, data_dir / BASAL_FILE)


@pytest.fixture(scope="module")
def release(data_dir: Path, tmp_path_factory) -> dict[str, Path]:
    return _release(data_dir, tmp_path_factory.mktemp("synthetic_release"))


@pytest.fixture
def own_release(release, tmp_path: Path) -> dict[str, Path]:
    """A private copy of the release, to damage."""
    folder = tmp_path / "release"
    shutil.copytree(Path(release["level3"]).parent, folder)
    return release_files(folder)


def in_memory(files: dict[str, Path], genes: list[str]) -> ad.AnnData:
    """The non-streaming computation: the whole matrix in memory, then the landmarks, then preprocess."""
    full = read_geo_release(files["level3"], files["inst_info"], files["pert_info"], files["cell_info"],
                            gene_info=files["gene_info"])
    return preprocess(full, None, PreprocessConfig(genes=genes), source="in memory")


def assert_same_dataset(streamed: ad.AnnData, expected: ad.AnnData) -> None:
    """Same values, same obs (but the source name), same genes, same report (but the source name)."""
    np.testing.assert_array_equal(np.asarray(streamed.X), expected.X)
    pd.testing.assert_frame_equal(streamed.obs.drop(columns="source"), expected.obs.drop(columns="source"),
                                  check_dtype=False, check_categorical=False)
    assert list(streamed.var_names) == list(expected.var_names)
    np.testing.assert_array_equal(streamed.var["entrez_id"], expected.var["entrez_id"])
    found, wanted = streamed.uns["pertdit"]["preprocess"], expected.uns["pertdit"]["preprocess"]
    for key in ("n_input", "n_output", "n_controls", "n_compounds", "too_few_observations", "pairing"):
        assert found[key] == wanted[key], key
    assert list(found["invalid_smiles"]) == list(wanted["invalid_smiles"])
    assert [dict(v) for v in found["profiles"].values()] == [dict(v) for v in wanted["profiles"].values()]


def test_the_data_geo_path_equals_the_in_memory_computation(release, data_dir: Path, tmp_path: Path):
    folder = Path(release["level3"]).parent
    cfg = compose_train(["data=geo_synthetic", "data.geo.chunk_profiles=64"], tmp_path / "run", tmp_path / "cache",
                        folder)
    dm = instantiate(cfg.data, split=instantiate(cfg.split), representation=None, _recursive_=False)
    streamed = dm.load()
    assert isinstance(streamed.X, np.memmap)  # the cache is opened memory-mapped
    assert list(streamed.var["entrez_id"].astype(str)) == list(bundled_landmarks()["entrez_id"])
    assert streamed.uns["pertdit"]["geo"]["landmarks"] == "gene_info column pr_is_lm"
    assert streamed.uns["pertdit"]["transform"] == "prnet"
    assert set(streamed.obs["pert_type"]) == {"trt_cp", "ctl_vehicle"}
    assert streamed.n_obs < PROFILES and len(streamed.uns["pertdit"]["preprocess"]["invalid_smiles"])
    assert_same_dataset(streamed, in_memory(release, list(streamed.var_names)))
    assert set(streamed.obs["source"]) == {"SYNTH"}  # the release's name (data.geo.releases[].name)


def test_the_streamed_path_records_the_prnet_target_total_as_the_in_memory_path_does(release, tmp_path: Path):
    """So `pertdit predict` can put a raw or basal profile on the streamed dataset's scale."""
    from pertdit.data.transforms import prnet_transform, transform_like

    streamed = load_dataset(geo={"releases": [release], "chunk_profiles": 64}, cache_dir=tmp_path / "cache")
    raw = in_memory(release, list(streamed.var_names))
    raw_again = preprocess(read_geo_release(release["level3"], release["inst_info"], release["pert_info"],
                                            release["cell_info"], gene_info=release["gene_info"]),
                           None, PreprocessConfig(genes=list(streamed.var_names), transform="none"), source="raw")
    target = streamed.uns["pertdit"]["transform_target_sum"]
    assert target == pytest.approx(raw.uns["pertdit"]["transform_target_sum"], rel=1e-12)
    np.testing.assert_array_equal(prnet_transform(raw_again.X, target_sum=target), np.asarray(streamed.X))
    new_profile = raw_again.X[:1] * 1.5  # a raw profile that is not in the dataset
    np.testing.assert_allclose(transform_like(new_profile, streamed.uns["pertdit"]),
                               prnet_transform(new_profile, target_sum=raw.uns["pertdit"]["transform_target_sum"]))


def test_the_result_does_not_depend_on_the_block_size(release, tmp_path: Path):
    one = load_dataset(geo={"releases": [release], "chunk_profiles": 1}, cache_dir=tmp_path / "one")
    whole = load_dataset(geo={"releases": [release], "chunk_profiles": 100_000}, cache_dir=tmp_path / "whole")
    np.testing.assert_array_equal(np.asarray(one.X), np.asarray(whole.X))


def test_without_a_landmark_flag_the_bundled_list_selects_the_same_genes(release, own_release, tmp_path: Path):
    genes = pd.read_csv(own_release["gene_info"], sep="\t", dtype=str).drop(columns="pr_is_lm")
    genes.to_csv(own_release["gene_info"], sep="\t", index=False)
    flagged = load_dataset(geo={"releases": [release]}, cache_dir=tmp_path / "flag")
    bundled = load_dataset(geo={"releases": [own_release]}, cache_dir=tmp_path / "bundled")
    assert bundled.uns["pertdit"]["geo"]["landmarks"].startswith("bundled list")
    np.testing.assert_array_equal(np.asarray(bundled.X), np.asarray(flagged.X))


def test_two_releases_become_one_table_in_one_gene_order(release, data_dir: Path, tmp_path: Path):
    other = _release(data_dir, tmp_path / "other", seed=1, prefix="OTH")  # landmarks at other matrix rows
    both = load_dataset(geo={"releases": [{**release, "name": "A"}, {**other, "name": "B"}],
                             "chunk_profiles": 50}, cache_dir=tmp_path / "cache")
    genes = list(both.var_names)
    parts = [read_geo_release(f["level3"], f["inst_info"], f["pert_info"], f["cell_info"],
                              gene_info=f["gene_info"]) for f in (release, other)]
    parts = [p[:, genes] for p in parts]  # each release's landmark columns, in one order
    together = ad.concat(parts, merge="same")
    for name in ("rna_plate", "canonical_smiles", "pert_iname"):
        together.obs[name] = pd.concat([p.obs[name] for p in parts]).to_numpy()
    together.obs["source"] = np.repeat(["A", "B"], [p.n_obs for p in parts])  # each profile's release
    expected = preprocess(together, None, PreprocessConfig(), source="in memory")
    assert_same_dataset(both, expected)
    assert set(both.obs["source"]) == {"A", "B"}


# --- bad releases: an error naming the file, and nothing in the cache -----------------------------------------


def _load_fails(files: dict[str, Path], cache: Path, match: str) -> None:
    with pytest.raises(DataError, match=match):
        load_dataset(geo={"releases": [files], "chunk_profiles": 64}, cache_dir=cache)
    assert not list((cache / "datasets").glob("*")) if (cache / "datasets").exists() else True


def test_a_missing_file_is_named(own_release, tmp_path: Path):
    own_release["pert_info"].unlink()
    _load_fails(own_release, tmp_path / "cache", r"file not found: .*SYNTH_Broad_LINCS_pert_info\.txt")


def test_a_truncated_matrix_is_named(own_release, tmp_path: Path):
    path = own_release["level3"]
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)
    _load_fails(own_release, tmp_path / "cache", r"SYNTH_Broad_LINCS_Level3_INF_mlr12k\.gctx: .*truncated")


def test_a_truncated_table_is_named(own_release, tmp_path: Path):
    path = own_release["inst_info"]
    text = path.read_text()
    path.write_text(text[: len(text) - 25])  # cut inside the last line
    _load_fails(own_release, tmp_path / "cache", r"inst_info\.txt: the last line .* fields; the file is truncated")


def test_an_inst_info_of_other_profiles_is_named(own_release, tmp_path: Path):
    table = pd.read_csv(own_release["inst_info"], sep="\t", dtype=str)
    table.iloc[:-1].to_csv(own_release["inst_info"], sep="\t", index=False)
    _load_fails(own_release, tmp_path / "cache", r"inst_info\.txt: describes 799 profiles but .*gctx holds 800")
    table.loc[3, "inst_id"] = "ELSEWHERE:A01"
    table.to_csv(own_release["inst_info"], sep="\t", index=False)
    _load_fails(own_release, tmp_path / "cache", r"inst_info\.txt: 1 profile\(s\) of .* have no row")


def test_a_gene_info_of_other_genes_is_named(own_release, tmp_path: Path):
    genes = pd.read_csv(own_release["gene_info"], sep="\t", dtype=str)
    genes.iloc[5:].to_csv(own_release["gene_info"], sep="\t", index=False)
    _load_fails(own_release, tmp_path / "cache", r"gene_info\.txt: 5 of the 12328 genes .* have no row")


def test_a_nan_value_names_the_profile_and_leaves_no_cache(own_release, tmp_path: Path):
    import h5py

    with h5py.File(own_release["level3"], "r+") as handle:
        matrix = handle["0/DATA/0/matrix"]
        is_landmark = pd.read_csv(own_release["gene_info"], sep="\t")["pr_is_lm"].to_numpy() == 1
        matrix[700, np.flatnonzero(is_landmark)[3]] = np.nan
        bad_id = handle["0/META/COL/id"][700].decode()
    types = pd.read_csv(own_release["inst_info"], sep="\t", index_col="inst_id")["pert_type"]
    if types[bad_id] not in ("trt_cp", "ctl_vehicle"):
        pytest.skip("profile 700 is filtered out by its pert_type in this release")
    _load_fails(own_release, tmp_path / "cache", rf"1 NaN/infinite landmark values .*{bad_id}")


def test_an_interrupted_run_leaves_nothing_in_the_cache(release, tmp_path: Path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(geo_stream, "scale_log1p", interrupt)  # dies in the second pass
    with pytest.raises(KeyboardInterrupt):
        load_dataset(geo={"releases": [release]}, cache_dir=tmp_path)
    assert list((tmp_path / "datasets").iterdir()) == []


def test_the_cache_file_is_a_valid_h5ad(release, tmp_path: Path):
    streamed = load_dataset(geo={"releases": [release]}, cache_dir=tmp_path)
    (path,) = (tmp_path / "datasets").glob("*.h5ad")
    again = ad.read_h5ad(path)  # plain anndata reads what the streaming writer wrote
    np.testing.assert_array_equal(again.X, np.asarray(streamed.X))
    assert again.obs.equals(read_h5ad_mapped(path).obs)


def test_a_release_entry_with_unknown_keys_is_refused():
    with pytest.raises(DataError, match=r"unknown key\(s\) \['gctx'\]"):
        GeoRelease.from_config({"gctx": "x.gctx", "inst_info": "i.txt"})
