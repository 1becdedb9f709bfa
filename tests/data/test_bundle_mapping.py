"""Each file kind's metadata mapped to the one obs schema, and genes aligned by Entrez id across files.

Checked against the raw files read independently (`read_dataset`) and the collection's own tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pertdit.data.readers import read_dataset
from pertdit.data.bundle import source_by_name

LANDMARKS = "l1000_landmark_genes.tsv"
COMPOUNDS = "l1000_compounds_all.tsv"


@pytest.fixture(scope="module")
def raw(data_dir):
    """name -> the raw file of a bundle source, read with the project's readers."""
    cache: dict = {}

    def read(name: str):
        if name not in cache:
            cache[name] = read_dataset(data_dir / source_by_name(name).file)
        return cache[name]

    return read


@pytest.fixture(scope="module")
def landmarks(data_dir) -> pd.DataFrame:
    return pd.read_csv(data_dir / LANDMARKS, sep="\t", dtype=str, keep_default_na=False)


def _rows(bundle, source):
    """The profiles of one source, with text columns as plain strings."""
    rows = bundle[(bundle.obs["source"] == source).to_numpy()].copy()
    rows.obs = rows.obs.apply(lambda c: c.astype(str) if isinstance(c.dtype, pd.CategoricalDtype) else c)
    return rows


# --- metadata, one test per file kind ---------------------------------------------------------------------


def test_old_cmap_style_plate_maps_upper_case_types_exp_fields_and_desc(fresh_bundle, raw):
    obs = _rows(fresh_bundle, "CPC006_A375_6H").obs
    file_obs = raw("CPC006_A375_6H").obs
    assert obs["pert_type"].value_counts().to_dict() == {"trt_cp": 355, "ctl_vehicle": 16}
    assert (obs["time"] == 6.0).all()
    treated = obs["control_kind"] == ""
    np.testing.assert_array_equal(obs.loc[treated, "dose"], file_obs.loc[obs.index[treated], "exp_pert_dose"])
    assert obs.loc[file_obs["pert_desc"] == "GELDANAMYCIN", "pert_iname"].tolist() == ["geldanamycin"]
    assert obs.loc[file_obs["pert_desc"] == "GELDANAMYCIN", "pert_iname_file"].tolist() == ["GELDANAMYCIN"]


def test_old_cmap_style_controls_are_chosen_by_type_not_by_their_dose_of_10(fresh_bundle, raw):
    obs = _rows(fresh_bundle, "CPC006_A375_6H").obs
    dmso = raw("CPC006_A375_6H").obs["pert_type"] == "CTL_VEHICLE"
    assert (raw("CPC006_A375_6H").obs.loc[dmso, "exp_pert_dose"] == 10).all()
    assert (obs.loc[dmso.to_numpy(), "control_kind"] == "DMSO").all()
    assert (obs.loc[dmso.to_numpy(), "dose"] == 0).all()


def test_old_cmap_style_treated_well_with_dose_zero_is_reported_by_name(fresh_bundle):
    record = fresh_bundle.uns["bundle"]["sources"]["CPC006_A375_6H"]
    assert list(record["treated_without_dose"]) == ["CPC006_A375_6H_X1:M24 (BRD-K88510285, dose 0)"]
    assert list(record["compounds_without_smiles"]) == ["BRD-K49213416"]


def test_new_style_plate_keeps_poscon_type_names_from_the_compound_table_and_the_file(fresh_bundle, raw):
    obs = _rows(fresh_bundle, "LJP005_A375_24H").obs
    file_obs = raw("LJP005_A375_24H").obs
    assert list(obs.index) == list(file_obs.index)
    assert obs["pert_type"].value_counts().to_dict() == {"trt_cp": 328, "ctl_vehicle": 26, "trt_poscon": 23}
    np.testing.assert_array_equal(obs["pert_iname_file"], file_obs["pert_iname"].astype(str))
    assert set(obs.loc[obs["pert_id"] == "BRD-K29395450", "pert_iname"]) == {"PIK-93"}  # file: the BRD id
    assert set(obs["plate"]) == {"LJP005_A375_24H_X1_B19"} and (obs["time"] == 24).all()
    record = fresh_bundle.uns["bundle"]["sources"]["LJP005_A375_24H"]
    assert list(record["compounds_without_smiles"]) == ["BRD-U60236422"]
    assert "qc_iqr" in set(record["columns_not_carried"])  # unknown columns are named, not silently lost


def test_prnet_h5ad_keeps_its_own_pairing_by_obs_name_and_its_two_plates(fresh_bundle, raw):
    obs = _rows(fresh_bundle, "CPC006_HT115_6H").obs
    file_obs = raw("CPC006_HT115_6H").obs
    np.testing.assert_array_equal(obs["source_control"], file_obs["paired_control_index"].astype(str))
    assert set(obs["plate"]) == {"CPC006_HT115_6H_X1", "CPC006_HT115_6H_X2"}  # det_plate is empty: rna_plate
    assert (obs["time"] == 6.0).all() and obs.loc[obs["control_kind"] == "", "smiles"].str.len().gt(0).all()


def test_transigen_pairs_keep_their_pairs_and_flag_dose_and_time_as_assumptions(fresh_bundle):
    obs = _rows(fresh_bundle, "transigen_LINCS2020_pairs").obs
    treated = obs["control_kind"] == ""
    assert (obs.loc[treated, "source_control"] == obs.index[treated].str.replace("_trt", "_ctl")).all()
    assert obs["cell_id"].nunique() == 43 and (obs.loc[treated, "dose"] == 10).all() and (obs["time"] == 24).all()
    assumptions = " ".join(fresh_bundle.uns["bundle"]["sources"]["transigen_LINCS2020_pairs"]["assumptions"])
    assert "dose 10 uM and time 24 h are not in the source file" in assumptions
    assert set(obs["plate"]) == {""}


def test_skbr3_controls_are_dmso_h2o_and_untreated_with_h2o_only_on_control_plates(fresh_bundle):
    obs = _rows(fresh_bundle, "LJP001-002_SKBR3").obs
    controls = obs["control_kind"] != ""
    assert obs.loc[controls, "control_kind"].value_counts().to_dict() == {"DMSO": 182, "H2O": 83, "untreated": 8}
    treated_plates = set(obs.loc[~controls, "plate"])
    assert not set(obs.loc[obs["control_kind"] == "H2O", "plate"]) & treated_plates
    assert set(obs.loc[obs["control_kind"] == "H2O", "time"]) == {1.0, 3.0, 6.0, 24.0}
    assert set(obs.loc[~controls, "time"]) == {6.0, 24.0}


def test_one_compound_one_name_and_smiles_across_files(fresh_bundle):
    treated = fresh_bundle.obs[fresh_bundle.obs["control_kind"] == ""]
    per_compound = treated.groupby("pert_id", observed=True)[["pert_iname", "smiles"]].nunique()
    assert (per_compound <= 1).all().all()


def test_smiles_come_from_the_compound_table(fresh_bundle, data_dir):
    table = pd.read_csv(data_dir / COMPOUNDS, sep="\t", dtype=str, keep_default_na=False).set_index("pert_id")
    treated = fresh_bundle.obs[fresh_bundle.obs["control_kind"] == ""]
    np.testing.assert_array_equal(treated["smiles"], treated["pert_id"].map(table["canonical_smiles"]))


# --- genes ----------------------------------------------------------------------------------------------


def test_genes_follow_the_landmark_table_order(fresh_bundle, landmarks):
    assert list(fresh_bundle.var["entrez_id"]) == landmarks["entrez_id"].astype(int).tolist()
    assert list(fresh_bundle.var_names) == landmarks["symbol"].tolist()


@pytest.mark.parametrize("source", ["LJP005_A375_24H", "CPC006_A375_6H", "LJP001-002_SKBR3",
                                    "transigen_LINCS2020_pairs", "LJP005_MCF7_24H", "LJP006_PC3_24H"])
def test_a_genes_value_equals_the_raw_files_value_for_the_same_entrez_id(fresh_bundle, raw, source):
    bundle = _rows(fresh_bundle, source)
    file = raw(source)
    columns = pd.Index(file.var["entrez_id"].astype(int)).get_indexer(bundle.var["entrez_id"])
    assert (columns >= 0).all()
    np.testing.assert_array_equal(bundle.X, file[bundle.obs_names].X[:, columns])


def test_prnet_symbols_map_to_entrez_through_the_gene_table(fresh_bundle, raw, landmarks):
    bundle = _rows(fresh_bundle, "CPC006_HT115_6H")
    file = raw("CPC006_HT115_6H")
    entrez_of_symbol = dict(zip(landmarks["prnet_symbol"], landmarks["entrez_id"].astype(int)))
    columns = pd.Index([entrez_of_symbol[s] for s in file.var_names]).get_indexer(bundle.var["entrez_id"])
    np.testing.assert_array_equal(bundle.X, file[bundle.obs_names].X[:, columns])
    # a renamed gene: PRnet's TMEM5 is RXYLT1 (LINCS 2020) in the bundle
    np.testing.assert_array_equal(bundle[:, "RXYLT1"].X, file[bundle.obs_names][:, "TMEM5"].X)
