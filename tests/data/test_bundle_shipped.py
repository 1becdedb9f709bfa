"""The bundle shipped inside the package: always present, small, attributed, and usable without ../shared."""

from __future__ import annotations

import numpy as np
import pytest

from pertdit.data.bundle import SHIPPED_DIR, SOURCES, default_sources, load_basal, load_bundle
from pertdit.data.schema import SCHEMA
from pertdit.errors import DataError
from tests.data.conftest import load_configured


def test_shipped_copy_holds_every_shipped_source_in_one_schema(shipped_bundle):
    assert shipped_bundle.shape == (2229, 978)
    assert shipped_bundle.X.dtype == np.float32
    assert set(SCHEMA) <= set(shipped_bundle.obs.columns)
    assert list(shipped_bundle.obs["source"].unique()) == default_sources()
    assert "LJP009_A375_24H" not in set(shipped_bundle.obs["source"])  # research-use licence: opt-in only


def test_values_are_raw_level3_not_transformed(shipped_bundle):
    assert 0.3 < shipped_bundle.X.min() and shipped_bundle.X.max() < 15.1  # log2 Level 3, capped near 15
    assert "not transformed" in shipped_bundle.uns["bundle"]["values"]


def test_genes_are_unique_entrez_ids_with_symbols(shipped_bundle):
    var = shipped_bundle.var
    assert var["entrez_id"].dtype == np.int64 and var["entrez_id"].is_unique
    assert list(var.index) == list(var["symbol"])


def test_every_profile_has_a_time_and_controls_have_dose_zero(shipped_bundle):
    obs = shipped_bundle.obs
    assert np.isfinite(obs["time"]).all() and set(obs["time"]) == {1.0, 3.0, 6.0, 24.0}
    controls = obs["control_kind"].astype(str) != ""
    assert (obs.loc[controls, "dose"] == 0).all()
    assert set(obs.loc[controls, "control_kind"]) == {"DMSO", "H2O", "untreated"}


def test_shipped_folder_is_small_and_carries_provenance_and_licences():
    files = [p for p in SHIPPED_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 15e6
    provenance = (SHIPPED_DIR / "PROVENANCE.md").read_text()
    assert "LINCS L1000" in provenance and "Broad Institute" in provenance
    for source in SOURCES:
        if source.shipped:
            assert source.repository in provenance and source.commit in provenance and source.path in provenance
            assert (SHIPPED_DIR / "licenses" / source.licence_file).is_file(), source.licence_file
    assert not (SHIPPED_DIR / "licenses" / "LICENSE-l1ktools.txt").exists()


def test_basal_profiles_of_164_cell_lines_in_the_bundle_gene_order(shipped_bundle):
    basal = load_basal()
    assert basal.shape == (165, 978)
    assert list(basal.var["entrez_id"]) == list(shipped_bundle.var["entrez_id"])
    assert (basal.obs["profile"] == "cell_line_basal").sum() == 164 and basal.obs_names[-1] == "averaged"


def test_data_bundle_runs_without_shared_data(bundle_dataset):
    obs = bundle_dataset.obs
    assert bundle_dataset.n_obs == 2107 and int(obs["is_control"].sum()) == 352
    assert obs["cell_id"].nunique() == 45
    assert bundle_dataset.uns["pertdit"]["transform"] == "prnet"


def test_data_plate_runs_without_shared_data(tmp_path):
    plate = load_configured(["data=plate"], tmp_path)
    treated = ~plate.obs["is_control"]
    assert plate.n_obs == 348 and int(treated.sum()) == 322
    assert plate.obs.loc[treated, "pert_id"].nunique() == 54


def test_unknown_source_is_named(shipped_bundle):
    with pytest.raises(DataError, match=r"source\(s\) \['NOPE'\] not in the bundle"):
        load_bundle(sources=["NOPE"])


def test_opt_in_source_missing_from_the_shipped_copy_says_how_to_build_it(tmp_path):
    with pytest.raises(DataError, match=r"\['LJP009_A375_24H'\] that the data does not have.*--include LJP009"):
        load_configured(["data=bundle", "data.sources=[LJP009_A375_24H]"], tmp_path)
    with pytest.raises(DataError, match="--include LJP009_A375_24H"):
        load_bundle(sources=["LJP009_A375_24H"])
