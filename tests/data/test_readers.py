"""L1000 readers: the real plate (GCT Level 3, GCTX Level 4), synthetic GEO / h5ad layouts, bad input."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest

from pertdit.data.readers import (
    read_dataset,
    read_gct,
    read_gctx,
    read_geo_release,
    read_h5ad_dataset,
    write_gctx,
)
from pertdit.data.readers import hdf5_rows
from pertdit.errors import DataError


@pytest.fixture(scope="module")
def level3(level3_path: Path) -> ad.AnnData:
    return read_gct(level3_path)


@pytest.fixture(scope="module")
def level4(level4_path: Path) -> ad.AnnData:
    return read_gctx(level4_path)


def _assert_same(left: ad.AnnData, right: ad.AnnData) -> None:
    np.testing.assert_array_equal(left.X, right.X)
    assert left.X.dtype == right.X.dtype == np.float32
    pd.testing.assert_frame_equal(left.obs, right.obs)
    pd.testing.assert_frame_equal(left.var, right.var)


# --- the real plate -------------------------------------------------------------------------------------


def test_gct_level3_is_profiles_by_genes(level3: ad.AnnData) -> None:
    assert level3.shape == (377, 978)
    assert level3.X.dtype == np.float32
    assert 4 < np.nanmedian(level3.X) < 15  # Level 3: log2 expression
    assert level3.obs_names[0] == "LJP005_A375_24H_X1_B19:A03"
    assert level3.var_names[0] == "PSME1"
    assert level3.var["rid"].iloc[0] == "200814_at"
    assert level3.var["entrez_id"].dtype == np.int64 and level3.var["entrez_id"].iloc[0] == 5720


def test_pert_type_counts_on_both_files(level3: ad.AnnData, level4: ad.AnnData) -> None:
    expected = {"trt_cp": 328, "trt_poscon": 23, "ctl_vehicle": 26}
    assert level3.obs["pert_type"].value_counts().to_dict() == expected
    assert level4.obs["pert_type"].value_counts().to_dict() == expected


def test_numeric_metadata_become_float(level3: ad.AnnData) -> None:
    assert level3.obs["pert_dose"].dtype == np.float64
    assert set(level3.obs["pert_dose"]) == {-666.0, 0.04, 0.12, 0.37, 1.11, 3.33, 10.0}
    assert set(level3.obs["pert_time"]) == {24.0}
    assert level3.obs["pert_id"].dtype == object and level3.obs["det_well"].iloc[0] == "A03"


def test_gct_and_gctx_share_conventions(level3: ad.AnnData, level4: ad.AnnData) -> None:
    common = [c for c in level3.obs.columns if c in level4.obs.columns]
    assert common == [c for c in level4.obs.columns if c in level3.obs.columns]
    assert len(common) == level3.obs.shape[1]  # Level 4 only adds its zmad_ref columns
    pd.testing.assert_series_equal(level3.obs[common].dtypes, level4.obs[common].dtypes)
    assert level3.obs_names.equals(level4.obs_names)
    pd.testing.assert_frame_equal(level3.var, level4.var)
    for name in ("pert_id", "pert_iname", "pert_type", "pert_dose", "pert_time", "cell_id", "det_plate"):
        pd.testing.assert_series_equal(level3.obs[name], level4.obs[name])


def test_gct_to_gctx_round_trip_is_identical(level3: ad.AnnData, tmp_path: Path) -> None:
    path = write_gctx(level3, tmp_path / "plate.gctx")
    _assert_same(read_gctx(path), level3)
    assert not list(tmp_path.glob(".*.tmp"))


def test_gctx_subset_reads_requested_profiles_in_order(level4_path: Path, level4: ad.AnnData) -> None:
    cids = list(level4.obs_names[[300, 5, 42, 43, 376]])
    rids = ["217140_s_at", "200814_at"]
    subset = read_gctx(level4_path, cid=cids, rid=rids)
    assert list(subset.obs_names) == cids
    assert list(subset.var["rid"]) == rids
    np.testing.assert_array_equal(subset.X, level4[cids, ["VDAC1", "PSME1"]].X)
    pd.testing.assert_frame_equal(subset.obs, level4.obs.loc[cids])


def test_read_dataset_dispatches_on_extension(level3_path: Path, level3: ad.AnnData) -> None:
    _assert_same(read_dataset(level3_path), level3)


# --- synthetic files ------------------------------------------------------------------------------------

GCT13 = [
    "#1.3",
    "2\t3\t1\t2",
    "id\tpr_gene_symbol\tP1\tP2\tP3",
    "pert_type\tna\tctl_vehicle\ttrt_cp\ttrt_cp",
    "pert_dose\tna\t-666\t0.5\t10",
    "g1\tAAA\t1.5\tNaN\t3",
    "g2\tBBB\t4\t\t6.25",
]


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _write_raw_gctx(path: Path, col: dict | None, row: dict | None, matrix: np.ndarray) -> Path:
    with h5py.File(path, "w") as handle:
        handle.create_dataset("0/DATA/0/matrix", data=matrix)
        for group, fields in (("0/META/COL", col), ("0/META/ROW", row)):
            if fields is not None:
                handle.create_group(group)
                for name, values in fields.items():
                    handle[group].create_dataset(name, data=np.array(values, dtype="S"))
    return path


def test_gct_keeps_nan_values(tmp_path: Path) -> None:
    adata = read_gct(_write_lines(tmp_path / "tiny.gct", GCT13))
    assert adata.shape == (3, 2)
    assert list(adata.var_names) == ["AAA", "BBB"] and list(adata.var["rid"]) == ["g1", "g2"]
    assert np.isnan(adata.X[1]).all() and adata.X[2, 1] == np.float32(6.25)
    assert list(adata.obs["pert_dose"]) == [-666.0, 0.5, 10.0]


def test_gct_version_1_2(tmp_path: Path) -> None:
    lines = ["#1.2", "2\t2", "Name\tDescription\tS1\tS2", "g1\tgene one\t1\t2", "g2\tgene two\t3\t4"]
    adata = read_gct(_write_lines(tmp_path / "v12.gct", lines))
    np.testing.assert_array_equal(adata.X, [[1, 3], [2, 4]])
    assert list(adata.var_names) == ["g1", "g2"] and adata.var["Description"].iloc[1] == "gene two"
    assert adata.obs.shape == (2, 0)


def test_non_unique_symbols_fall_back_to_row_ids(tmp_path: Path) -> None:
    lines = GCT13[:5] + ["g1\tAAA\t1\t2\t3", "g2\tAAA\t4\t5\t6"]
    adata = read_gct(_write_lines(tmp_path / "dup_symbol.gct", lines))
    assert list(adata.var_names) == ["g1", "g2"] and list(adata.var["pr_gene_symbol"]) == ["AAA", "AAA"]


def _write_geo(tmp_path: Path) -> dict[str, Path]:
    genes = ["5720", "7416", "55847"]
    profiles = ["i1", "i2", "i3", "i4"]
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    adata = ad.AnnData(x, obs=pd.DataFrame(index=profiles), var=pd.DataFrame(index=genes))
    paths = {"gctx": write_gctx(adata, tmp_path / "GSE_Level3_n4x3.gctx")}
    inst = pd.DataFrame({
        "inst_id": profiles,
        "rna_plate": ["PL1", "PL1", "PL2", "PL2"], "rna_well": ["A01", "A02", "A03", "A04"],
        "pert_id": ["BRD-1", "BRD-1", "BRD-2", "DMSO"], "pert_iname": ["drug1", "drug1", "drug2", "DMSO"],
        "pert_type": ["trt_cp", "trt_cp", "trt_cp", "ctl_vehicle"], "pert_dose": ["10", "1", "0.5", "-666"],
        "pert_dose_unit": ["µM", "µM", "µM", "-666"], "pert_time": ["24", "24", "6", "24"],
        "pert_time_unit": ["h"] * 4, "cell_id": ["A375", "MCF7", "A375", "A375"],
    }).iloc[::-1]  # table order differs from the matrix
    pert = pd.DataFrame({
        "pert_id": ["BRD-1", "BRD-2", "DMSO"], "pert_iname": ["drug1", "drug2", "DMSO"],
        "pert_type": ["trt_cp", "trt_cp", "ctl_vehicle"], "is_touchstone": ["1", "0", "0"],
        "inchi_key_prefix": ["AAA", "BBB", "-666"], "inchi_key": ["AAA-X", "BBB-Y", "-666"],
        "canonical_smiles": ["CCO", "c1ccccc1", "-666"], "pubchem_cid": ["702", "241", "-666"],
    })
    cell = pd.DataFrame({"cell_id": ["A375", "MCF7"], "primary_site": ["skin", "breast"]})
    for name, table in (("inst_info", inst), ("pert_info", pert), ("cell_info", cell)):
        paths[name] = tmp_path / f"GSE_{name}.txt"
        table.to_csv(paths[name], sep="\t", index=False)
    return paths


def test_geo_release_merges_info_tables(tmp_path: Path) -> None:
    paths = _write_geo(tmp_path)
    adata = read_geo_release(paths["gctx"], paths["inst_info"], paths["pert_info"], paths["cell_info"])
    assert adata.shape == (4, 3) and list(adata.obs_names) == ["i1", "i2", "i3", "i4"]
    assert list(adata.obs["pert_dose"]) == [10.0, 1.0, 0.5, -666.0]
    assert list(adata.obs["canonical_smiles"]) == ["CCO", "CCO", "c1ccccc1", "-666"]
    assert list(adata.obs["det_plate"]) == list(adata.obs["rna_plate"]) == ["PL1", "PL1", "PL2", "PL2"]
    assert list(adata.obs["det_well"]) == ["A01", "A02", "A03", "A04"]
    assert list(adata.obs["primary_site"]) == ["skin", "breast", "skin", "skin"]
    assert list(adata.obs.columns) == sorted(adata.obs.columns)
    assert list(adata.var["entrez_id"]) == [5720, 7416, 55847]
    np.testing.assert_array_equal(adata.X, np.arange(12).reshape(4, 3))


def test_geo_release_gse70138_plate_names(tmp_path: Path) -> None:
    paths = _write_geo(tmp_path)
    inst = pd.read_csv(paths["inst_info"], sep="\t", dtype=str)
    inst.rename(columns={"rna_plate": "det_plate", "rna_well": "det_well"}).to_csv(
        paths["inst_info"], sep="\t", index=False
    )
    adata = read_geo_release(paths["gctx"], paths["inst_info"])
    assert list(adata.obs["rna_plate"]) == list(adata.obs["det_plate"]) == ["PL1", "PL1", "PL2", "PL2"]


def test_geo_release_reads_a_cid_subset(tmp_path: Path) -> None:
    paths = _write_geo(tmp_path)
    adata = read_geo_release(paths["gctx"], paths["inst_info"], paths["pert_info"], cid=["i4", "i2"])
    assert list(adata.obs_names) == ["i4", "i2"] and list(adata.obs["pert_type"]) == ["ctl_vehicle", "trt_cp"]
    np.testing.assert_array_equal(adata.X, [[9, 10, 11], [3, 4, 5]])


def test_geo_release_gene_info_gives_symbols(tmp_path: Path) -> None:
    paths = _write_geo(tmp_path)
    genes = pd.DataFrame({"pr_gene_id": ["5720", "7416"], "pr_gene_symbol": ["PSME1", "VDAC1"]})
    genes.to_csv(tmp_path / "gene_info.txt", sep="\t", index=False)
    adata = read_geo_release(
        paths["gctx"], paths["inst_info"], gene_info=tmp_path / "gene_info.txt", rid=["7416", "5720"]
    )
    assert list(adata.var_names) == ["VDAC1", "PSME1"] and list(adata.var["entrez_id"]) == [7416, 5720]
    np.testing.assert_array_equal(adata.X[:, 0], [1, 4, 7, 10])


def test_geo_release_names_profiles_missing_from_inst_info(tmp_path: Path) -> None:
    paths = _write_geo(tmp_path)
    inst = pd.read_csv(paths["inst_info"], sep="\t").iloc[1:]
    inst.to_csv(paths["inst_info"], sep="\t", index=False)
    with pytest.raises(DataError, match=r"1 profile\(s\) .* have no row, e.g. \['i4'\]"):
        read_geo_release(paths["gctx"], paths["inst_info"])


def test_geo_release_names_missing_inst_columns(tmp_path: Path) -> None:
    paths = _write_geo(tmp_path)
    pd.read_csv(paths["inst_info"], sep="\t").drop(columns="pert_type").to_csv(
        paths["inst_info"], sep="\t", index=False
    )
    with pytest.raises(DataError, match=r"lacks column\(s\) \['pert_type'\]"):
        read_geo_release(paths["gctx"], paths["inst_info"])


def _write_h5ad(path: Path, obs: dict) -> Path:
    n = len(next(iter(obs.values())))
    var = pd.DataFrame({"pr_gene_id": ["5720", "7416"]}, index=["PSME1", "VDAC1"])
    obs_frame = pd.DataFrame(obs, index=[f"c{i}" for i in range(n)])
    adata = ad.AnnData(np.ones((n, 2), dtype=np.float64), obs=obs_frame, var=var)
    adata.write_h5ad(path)
    return path


def test_h5ad_prnet_layout_is_normalised(tmp_path: Path) -> None:
    path = _write_h5ad(tmp_path / "prnet.h5ad", {
        "cell_type": ["A375", "A375", "PC3"], "SMILES": ["CCO", "CS(C)=O", "c1ccccc1"],
        "dose": [10.0, 0.0, 1.0], "condition": ["drugA", "DMSO", "drugB"], "control": [0, 1, 0],
    })
    adata = read_h5ad_dataset(path)
    obs = adata.obs
    assert list(obs["cell_id"]) == ["A375", "A375", "PC3"] and list(obs["smiles"])[0] == "CCO"
    assert list(obs["pert_id"]) == list(obs["pert_iname"]) == ["drugA", "DMSO", "drugB"]
    assert list(obs["pert_type"]) == ["trt_cp", "ctl_vehicle", "trt_cp"]
    assert obs["dose"].dtype == np.float64 and list(obs["dose"]) == [10.0, 0.0, 1.0]
    assert adata.X.dtype == np.float32 and list(adata.var["entrez_id"]) == [5720, 7416]


def test_h5ad_chemcpa_layout_with_dose_scale(tmp_path: Path) -> None:
    path = _write_h5ad(tmp_path / "chemcpa.h5ad", {
        "cell_id": ["A549", "A549"], "canonical_smiles": ["CCO", "CCN"], "pert_id": ["BRD-1", "BRD-2"],
        "pert_iname": ["one", "two"], "dose_val": [1.0, 0.1], "control": [False, False],
    })
    adata = read_h5ad_dataset(path, dose_scale=10.0)
    assert list(adata.obs["dose"]) == [10.0, 1.0] and list(adata.obs["pert_iname"]) == ["one", "two"]
    assert read_dataset(path).obs["pert_type"].tolist() == ["trt_cp", "trt_cp"]


def test_h5ad_unknown_layout_names_missing_columns(tmp_path: Path) -> None:
    path = _write_h5ad(tmp_path / "other.h5ad", {"cell": ["A375"], "drug_smiles": ["CCO"], "dose": [1.0]})
    with pytest.raises(DataError, match=r"lacks cell_id .*smiles .*pert_id .*control or pert_type"):
        read_h5ad_dataset(path)
    columns = {"cell_id": "cell", "smiles": "drug_smiles", "pert_id": "drug_smiles", "pert_type": "cell"}
    mapped = read_h5ad_dataset(path, columns=columns)
    assert mapped.obs["cell_id"].tolist() == ["A375"]


def test_row_subset_reader_matches_numpy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hdf5_rows, "MAX_BLOCK_VALUES", 40)  # force many small block reads
    data = np.arange(500 * 7, dtype=np.float32).reshape(500, 7)
    rows = np.random.default_rng(0).choice(500, size=60, replace=False)
    cols = np.array([6, 0, 3])
    with h5py.File(tmp_path / "m.h5", "w") as handle:
        dataset = handle.create_dataset("m", data=data, chunks=(16, 7))
        np.testing.assert_array_equal(hdf5_rows.read_rows(dataset, rows, cols), data[rows][:, cols])
        np.testing.assert_array_equal(hdf5_rows.read_rows(dataset, rows[:0]), data[:0])


# --- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reader", [read_gct, read_gctx, read_h5ad_dataset, read_dataset])
def test_missing_file(reader, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"not found: .*nowhere\.gctx"):
        reader(tmp_path / "nowhere.gctx")


def test_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown dataset extension '\.csv'"):
        read_dataset(_write_lines(tmp_path / "table.csv", ["a,b"]))


def test_gct_bad_version_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"bad\.gct: line 1 must be the GCT version"):
        read_gct(_write_lines(tmp_path / "bad.gct", ["#1.4"] + GCT13[1:]))


def test_gct_bad_dimension_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"line 2 must hold 4 non-negative integers"):
        read_gct(_write_lines(tmp_path / "bad.gct", [GCT13[0], "2\t3\tx\t2"] + GCT13[2:]))


def test_gct_row_with_wrong_field_count_names_the_line(tmp_path: Path) -> None:
    lines = GCT13[:6] + ["g2\tBBB\t4\t5"]
    with pytest.raises(DataError, match=r"line 7 has 4 tab-separated fields, expected 5"):
        read_gct(_write_lines(tmp_path / "short.gct", lines))


def test_gct_truncated_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"file has 6 lines: it is truncated"):
        read_gct(_write_lines(tmp_path / "cut.gct", GCT13[:6]))


def test_gct_non_numeric_value_names_line_and_profile(tmp_path: Path) -> None:
    lines = GCT13[:6] + ["g2\tBBB\t4\tfour\t6"]
    with pytest.raises(DataError, match=r"line 7, profile 'P2': 'four' is not a number"):
        read_gct(_write_lines(tmp_path / "text.gct", lines))


def test_gct_duplicated_profile_ids(tmp_path: Path) -> None:
    lines = [GCT13[0], GCT13[1], "id\tpr_gene_symbol\tP1\tP2\tP1"] + GCT13[3:]
    with pytest.raises(DataError, match=r"1 duplicated profile id\(s\), e.g. \['P1'\]"):
        read_gct(_write_lines(tmp_path / "dup.gct", lines))


def test_gctx_without_col_metadata(tmp_path: Path) -> None:
    path = _write_raw_gctx(tmp_path / "nocol.gctx", None, {"id": ["g1"]}, np.zeros((2, 1), np.float32))
    with pytest.raises(DataError, match=r"nocol\.gctx: no group /0/META/COL"):
        read_gctx(path)


def test_gctx_without_id_field(tmp_path: Path) -> None:
    col = {"pert_id": ["a", "b"]}
    path = _write_raw_gctx(tmp_path / "noid.gctx", col, {"id": ["g1"]}, np.zeros((2, 1), np.float32))
    with pytest.raises(DataError, match=r"/0/META/COL has no 1-D 'id' field"):
        read_gctx(path)


def test_gctx_matrix_shape_mismatch(tmp_path: Path) -> None:
    col, row = {"id": ["a", "b"]}, {"id": ["g1", "g2", "g3"]}
    path = _write_raw_gctx(tmp_path / "shape.gctx", col, row, np.zeros((3, 2), np.float32))
    with pytest.raises(DataError, match=r"shape \(3, 2\) but the metadata describe 2 profiles .*transposed"):
        read_gctx(path)


def test_gctx_duplicated_profile_ids(tmp_path: Path) -> None:
    path = _write_raw_gctx(tmp_path / "dup.gctx", {"id": ["a", "a"]}, {"id": ["g1"]}, np.zeros((2, 1)))
    with pytest.raises(DataError, match=r"duplicated profile id\(s\), e.g. \['a'\]"):
        read_gctx(path)


def test_gctx_unknown_cid(tmp_path: Path) -> None:
    path = _write_raw_gctx(tmp_path / "ok.gctx", {"id": ["a", "b"]}, {"id": ["g1"]}, np.zeros((2, 1)))
    with pytest.raises(DataError, match=r"1 of the 2 requested cid are not in the file, e.g. \['zz'\]"):
        read_gctx(path, cid=["a", "zz"])


def test_gctx_not_hdf5(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"not a readable HDF5"):
        read_gctx(_write_lines(tmp_path / "text.gctx", GCT13))


def test_write_gctx_leaves_nothing_on_error(tmp_path: Path) -> None:
    adata = ad.AnnData(np.zeros((1, 1), np.float32), obs=pd.DataFrame({"id": ["x"]}, index=["p"]))
    with pytest.raises(DataError, match=r"obs column 'id'"):
        write_gctx(adata, tmp_path / "out.gctx")
    assert list(tmp_path.iterdir()) == []
