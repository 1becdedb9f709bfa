"""The harmonised obs schema on small hand-made metadata frames (one rule per test)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from pertdit.data.schema import KINDS, detect_kind, harmonise_obs
from pertdit.errors import DataError


def _cmap(**columns) -> pd.DataFrame:
    base = {"cell_id": ["A", "A", "A"], "pert_id": ["DMSO", "BRD-1", "BRD-2"],
            "pert_type": ["ctl_vehicle", "trt_cp", "trt_cp"], "pert_iname": ["DMSO", "one", "two"],
            "pert_dose": [-666.0, 10.0, 500.0], "pert_dose_unit": ["-666", "um", "nM"],
            "pert_time": [24.0, 24.0, 24.0], "pert_time_unit": ["h", "h", "h"], "det_plate": ["P1", "P1", "P1"]}
    base.update(columns)
    return pd.DataFrame(base, index=["w1", "w2", "w3"])


def test_layouts_are_detected_by_their_dose_column():
    assert detect_kind(_cmap()).name == "cmap_gct"
    old = _cmap().rename(columns={"pert_dose": "exp_pert_dose", "pert_time": "exp_pert_time"})
    assert detect_kind(old).name == "cmap_gct_old"
    assert detect_kind(_cmap().rename(columns={"pert_dose": "dose"})).name == "prnet_h5ad"


def test_doses_are_converted_to_micromolar_and_controls_get_zero():
    obs = harmonise_obs(_cmap(), "s")
    np.testing.assert_allclose(obs["dose"], [0.0, 10.0, 0.5])
    assert list(obs["control_kind"]) == ["DMSO", "", ""] and (obs["time"] == 24).all()


def test_an_unknown_dose_unit_is_read_as_missing_and_logged(caplog):
    with caplog.at_level(logging.WARNING):
        obs = harmonise_obs(_cmap(pert_dose_unit=["-666", "um", "ng/ml"]), "s")
    assert np.isnan(obs["dose"].iloc[2]) and "['ng/ml']" in caplog.text


def test_upper_case_types_are_lowered_and_untreated_is_a_control_kind():
    obs = harmonise_obs(_cmap(pert_type=["CTL_UNTRT", "TRT_CP", "TRT_POSCON"], pert_id=["CMAP-000", "B1", "B2"]),
                        "s")
    assert list(obs["pert_type"]) == ["ctl_untrt", "trt_cp", "trt_poscon"]
    assert list(obs["control_kind"]) == ["untreated", "", ""]


def test_missing_time_is_nan_and_the_plate_falls_back_to_rna_plate():
    frame = _cmap(det_plate=["", "", ""]).drop(columns=["pert_time", "pert_time_unit"])
    frame["rna_plate"] = ["R1", "R1", "R2"]
    obs = harmonise_obs(frame, "s")
    assert obs["time"].isna().all() and list(obs["plate"]) == ["R1", "R1", "R2"]


def test_own_pairing_by_row_position_becomes_profile_ids():
    frame = _cmap().rename(columns={"pert_dose": "dose"})
    frame["paired_control_index"] = [0, 0, 0]
    assert list(harmonise_obs(frame, "s", KINDS["prnet_h5ad"])["source_control"]) == ["w1", "w1", "w1"]


def test_own_pairing_outside_the_file_is_an_error():
    frame = _cmap().rename(columns={"pert_dose": "dose"})
    frame["paired_control_index"] = [0, 0, 7]
    with pytest.raises(DataError, match=r"row positions outside 0..2"):
        harmonise_obs(frame, "s", KINDS["prnet_h5ad"])


def test_missing_required_metadata_is_named():
    with pytest.raises(DataError, match=r"lacks \['cell_id'\]"):
        harmonise_obs(_cmap().drop(columns="cell_id"), "s")
