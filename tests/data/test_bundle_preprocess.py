"""Preprocessing the bundle: every profile accounted for, per-source settings, pairing, `data=plate` unchanged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pertdit.data.filters import REASONS
from pertdit.data.preprocess import PreprocessConfig, preprocess
from pertdit.data.readers import read_gct, read_h5ad_dataset
from pertdit.errors import DataError
from tests.data.conftest import load_configured


def _report(dataset):
    return dataset.uns["pertdit"]["preprocess"]


# --- accounting ---------------------------------------------------------------------------------------


def test_every_profile_is_accounted_for_per_source(bundle_dataset, shipped_bundle):
    profiles = _report(bundle_dataset)["profiles"]
    read = shipped_bundle.obs["source"].value_counts()
    for source, entry in profiles.items():
        assert entry["read"] == entry["kept"] + sum(entry[why] for why in REASONS), source
        assert entry["kept"] == entry["kept_treated"] + entry["kept_controls"], source
        if source != "total":
            assert entry["read"] == read[source]
            assert entry["kept"] == int((bundle_dataset.obs["source"] == source).sum())
    assert profiles["total"]["read"] == shipped_bundle.n_obs and profiles["total"]["kept"] == bundle_dataset.n_obs


def test_dropped_profiles_are_counted_by_reason_and_named(bundle_dataset):
    report = _report(bundle_dataset)
    ljp005, cpc006, skbr3 = (report["profiles"][s] for s in ("LJP005_A375_24H", "CPC006_A375_6H", "LJP001-002_SKBR3"))
    assert ljp005["pert_type_not_used"] == 23 and dict(report["dropped_pert_types"]) == {"trt_poscon": 23}
    assert ljp005["invalid_smiles"] == 6 and "BRD-U60236422 (WH-4-025)" in list(report["invalid_smiles"])
    assert cpc006["dose_not_positive"] == 1 and cpc006["invalid_smiles"] == 1
    assert list(report["dose_not_positive"]) == ["CPC006_A375_6H_X1:M24 (BRD-K88510285, dose 0)"]
    assert skbr3["control_kind_not_used"] == 91 and dict(report["dropped_control_kinds"]) == {"H2O": 83, "untreated": 8}


def test_time_filter_is_a_counted_reason(tmp_path):
    dataset = load_configured(["data=bundle", "data.times=[24]"], tmp_path)
    profiles = _report(dataset)["profiles"]
    assert set(dataset.obs["time"]) == {24.0}
    assert profiles["CPC006_HT115_6H"]["time_filter"] == 681
    assert profiles["LJP001-002_SKBR3"]["time_filter"] == 580 - 300  # 300 SKBR3 profiles are at 24 h


# --- per-source settings -------------------------------------------------------------------------------


def test_default_min_observations_would_drop_every_ht115_compound(shipped_bundle):
    ht115 = shipped_bundle[(shipped_bundle.obs["source"] == "CPC006_HT115_6H").to_numpy()].copy()
    with pytest.raises(DataError, match="no treated profile left"):
        preprocess(ht115, config=PreprocessConfig(transform="none", min_observations=5))
    kept = preprocess(ht115, config=PreprocessConfig(transform="none", min_observations_per_source={
        "CPC006_HT115_6H": 1}))
    assert int((~kept.obs["is_control"]).sum()) == 661


def test_min_observations_counts_a_compound_over_every_source_kept(shipped_bundle):
    both = shipped_bundle[shipped_bundle.obs["source"].isin(["CPC006_A375_6H", "CPC006_HT115_6H"]).to_numpy()].copy()
    only_ht115 = preprocess(both, config=PreprocessConfig(
        transform="none", min_observations=3, min_observations_per_source={"CPC006_A375_6H": 3}))
    counts = both.obs[both.obs["control_kind"] == ""].groupby("pert_id", observed=True).size()
    expected = set(counts[counts >= 3].index) - {"BRD-K49213416", "BRD-K88510285"}
    assert set(only_ht115.obs.loc[~only_ht115.obs["is_control"], "pert_id"]) == expected


def test_unknown_source_in_a_per_source_setting_is_named(shipped_bundle):
    with pytest.raises(DataError, match=r"min_observations_per_source names source\(s\) \['HT-115'\]"):
        preprocess(shipped_bundle.copy(), config=PreprocessConfig(min_observations_per_source={"HT-115": 1}))


def test_h2o_controls_are_opt_in(tmp_path):
    dataset = load_configured(["data=bundle", "data.sources=[LJP001-002_SKBR3]",
                               "data.preprocess.control_kinds=[DMSO,H2O]"], tmp_path)
    assert dataset.obs.loc[dataset.obs["is_control"], "control_kind"].astype(str).value_counts().to_dict() == {
        "DMSO": 182, "H2O": 83}
    assert _report(dataset)["profiles"]["LJP001-002_SKBR3"]["control_kind_not_used"] == 8


# --- pairing --------------------------------------------------------------------------------------------


def test_every_profile_is_paired_with_a_control_of_its_cell_line_and_time(bundle_dataset):
    obs = bundle_dataset.obs
    paired = obs["paired_control_index"].to_numpy()
    assert obs["is_control"].to_numpy()[paired].all()
    for column in ("cell_id", "source", "time"):
        np.testing.assert_array_equal(obs[column].to_numpy()[paired], obs[column].to_numpy())


def test_plate_sources_are_paired_on_the_same_plate(bundle_dataset):
    obs = bundle_dataset.obs
    by_plate = (obs["pairing"] == "plate").to_numpy()
    plates = obs["plate"].astype(str).to_numpy()
    np.testing.assert_array_equal(plates[obs["paired_control_index"].to_numpy()][by_plate], plates[by_plate])
    treated = obs[~obs["is_control"]]
    assert set(treated.loc[treated["source"] != "transigen_LINCS2020_pairs", "pairing"]) == {"plate"}
    assert set(obs.loc[obs["is_control"], "pairing"]) == {"self"}


def test_transigen_pairs_keep_their_own_pairs(bundle_dataset):
    obs = bundle_dataset.obs
    pairs = obs[(obs["source"] == "transigen_LINCS2020_pairs") & ~obs["is_control"]]
    assert set(pairs["pairing"]) == {"own"} and len(pairs) == 100
    partner = obs.index.to_numpy()[pairs["paired_control_index"].to_numpy()]
    np.testing.assert_array_equal(partner, pairs.index.str.replace("_trt", "_ctl"))


def test_ht115_keeps_the_files_pairing_on_request(tmp_path, shipped_bundle):
    dataset = load_configured(["data=bundle", "data.sources=[CPC006_HT115_6H]",
                               "data.preprocess.pairing.keep_own=[CPC006_HT115_6H]"], tmp_path)
    obs = dataset.obs
    treated = obs[~obs["is_control"]]
    assert set(treated["pairing"]) == {"own"}
    partner = obs.index.to_numpy()[treated["paired_control_index"].to_numpy()]
    np.testing.assert_array_equal(partner, shipped_bundle.obs.loc[treated.index, "source_control"].astype(str))
    same_plate = (obs["plate"].to_numpy()[treated["paired_control_index"].to_numpy()] == treated["plate"]).mean()
    assert 0.3 < same_plate < 0.7  # PRnet drew its controls across the two replicate plates


# --- data=plate is the plate it was ---------------------------------------------------------------------


def test_data_plate_equals_reading_the_raw_plate(tmp_path, level3_path, compounds_path):
    plate = load_configured(["data=plate"], tmp_path)
    today = preprocess(read_gct(level3_path), compounds_path, PreprocessConfig(), source=str(level3_path))
    assert plate.n_obs == today.n_obs == 348 and list(plate.obs_names) == list(today.obs_names)
    assert list(plate.var_names) == list(today.var_names)  # the file's gene order and symbols
    np.testing.assert_array_equal(plate.var["entrez_id"], today.var["entrez_id"])
    np.testing.assert_array_equal(plate.X, today.X)
    for column in today.obs.columns.drop("source"):
        np.testing.assert_array_equal(plate.obs[column].astype(str).to_numpy(), today.obs[column].astype(str).to_numpy(),
                                      err_msg=column)
    treated = ~plate.obs["is_control"]
    assert int(treated.sum()) == 322 and plate.obs.loc[treated, "pert_id"].nunique() == 54


def test_bundle_gene_order_can_follow_a_source_file(shipped_bundle, data_dir):
    ordered = preprocess(shipped_bundle.copy(), config=PreprocessConfig(
        transform="none", gene_order="CPC006_HT115_6H", sources=["CPC006_HT115_6H"], min_observations=1))
    file = read_h5ad_dataset(data_dir / "l1000_CPC006_HT115_6H_level3_n681x978_prnet.h5ad")
    assert list(ordered.var_names) == list(file.var_names)
    np.testing.assert_array_equal(ordered.X, file[ordered.obs_names].X)


# --- a file's own pairing (data=h5ad) -------------------------------------------------------------------


def test_h5ad_own_pairing_is_kept_as_row_positions_after_filtering(data_dir):
    raw = read_h5ad_dataset(data_dir / "l1000_CPC006_HT115_6H_level3_n681x978_prnet.h5ad")
    dataset = preprocess(raw.copy(), config=PreprocessConfig(transform="none", min_observations=2))
    obs = dataset.obs
    treated = obs[~obs["is_control"]]
    assert set(treated["pairing"]) == {"own"}
    partner = obs.index.to_numpy()[treated["paired_control_index"].to_numpy()]
    np.testing.assert_array_equal(partner, raw.obs.loc[treated.index, "paired_control_index"].astype(str))


def test_h5ad_pairing_given_as_row_positions_is_kept(data_dir):
    raw = read_h5ad_dataset(data_dir / "l1000_CPC006_HT115_6H_level3_n681x978_prnet.h5ad")
    names = raw.obs["paired_control_index"].astype(str).to_numpy()
    raw.obs["paired_control_index"] = raw.obs_names.get_indexer(names)
    dataset = preprocess(raw, config=PreprocessConfig(transform="none", min_observations=1))
    treated = dataset.obs[~dataset.obs["is_control"]]
    assert set(treated["pairing"]) == {"own"}
    partner = dataset.obs_names.to_numpy()[treated["paired_control_index"].to_numpy()]
    np.testing.assert_array_equal(partner, pd.Series(names, index=raw.obs_names)[treated.index])


def test_h5ad_pointer_to_a_filtered_control_is_re_paired_and_reported(data_dir):
    raw = read_h5ad_dataset(data_dir / "l1000_CPC006_HT115_6H_level3_n681x978_prnet.h5ad")
    lost = raw.obs["paired_control_index"].astype(str).iloc[0]
    raw.obs["pert_time"] = np.where(raw.obs_names == lost, 3.0, raw.obs["pert_time"])  # dropped by data.times
    dataset = preprocess(raw, config=PreprocessConfig(transform="none", min_observations=1, times=[6]))
    report = _report(dataset)
    pointing = raw.obs_names[(raw.obs["paired_control_index"].astype(str) == lost) & (raw.obs["control"] == 0)]
    assert sorted(report["own_pairing_replaced"]) == sorted(f"{row} -> {lost}" for row in pointing)
    assert set(dataset.obs.loc[pointing, "pairing"]) == {"plate"}
    assert report["profiles"]["total"]["time_filter"] == 1


def test_h5ad_pointer_outside_the_file_is_a_clear_error(data_dir):
    raw = read_h5ad_dataset(data_dir / "l1000_CPC006_HT115_6H_level3_n681x978_prnet.h5ad")
    raw.obs["paired_control_index"] = raw.obs["paired_control_index"].astype(str).replace(
        {raw.obs["paired_control_index"].astype(str).iloc[0]: "NOT-A-ROW"})
    with pytest.raises(DataError, match=r"names .* profile\(s\) that are not in the file, e.g. \['NOT-A-ROW'"):
        preprocess(raw, config=PreprocessConfig(transform="none", min_observations=1))


def test_h5ad_pairing_can_be_re_done_by_plate(data_dir):
    raw = read_h5ad_dataset(data_dir / "l1000_CPC006_HT115_6H_level3_n681x978_prnet.h5ad")
    dataset = preprocess(raw, config=PreprocessConfig(transform="none", min_observations=1,
                                                      pairing={"keep_own": False}))
    obs = dataset.obs
    assert set(obs.loc[~obs["is_control"], "pairing"]) == {"plate"}
    plates = obs["plate"].to_numpy()
    np.testing.assert_array_equal(plates[obs["paired_control_index"].to_numpy()], plates)


def test_data_h5ad_defaults_to_the_authors_transform_and_keeps_the_files_pairing(tmp_path, data_dir):
    path = data_dir / "l1000_CPC006_HT115_6H_level3_n681x978_prnet.h5ad"
    dataset = load_configured(["data=h5ad", f"data.expression={path}", "data.preprocess.min_observations=1"],
                              tmp_path, data_dir)
    assert dataset.uns["pertdit"]["transform"] == "prnet"
    assert dataset.X.max() < 3  # natural log of normalised counts, no longer log2 Level 3 (up to 15)
    assert set(dataset.obs.loc[~dataset.obs["is_control"], "pairing"]) == {"own"}
