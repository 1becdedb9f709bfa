"""validate_smiles: bad or missing structures are reported by compound, never raised."""
import logging

import pandas as pd
import pytest

from pertdit.errors import DataError
from pertdit.perturbation import validate_smiles


def test_every_plate_smiles_is_valid(compounds):
    valid, report = validate_smiles(compounds)
    assert len(valid) == len(compounds) == 58 and report.empty


def test_invalid_and_missing_smiles_are_reported_by_id_and_name(compounds, caplog):
    table = pd.concat(
        [
            compounds.head(3),
            pd.DataFrame(
                {"pert_id": ["BRD-U60236422", "BRD-X", "BRD-X"], "pert_iname": ["", "broken", "broken"],
                 "canonical_smiles": [None, "C1CC(", "C1CC("]}
            ),
        ],
        ignore_index=True,
    )
    with caplog.at_level(logging.WARNING):
        valid, report = validate_smiles(table)
    assert list(valid["pert_id"]) == list(compounds["pert_id"].head(3))
    assert report.to_dict("records") == [
        {"id": "BRD-U60236422", "name": "", "smiles": "", "reason": "missing SMILES", "n_rows": 1},
        {"id": "BRD-X", "name": "broken", "smiles": "C1CC(", "reason": "RDKit cannot parse", "n_rows": 2},
    ]
    assert "BRD-U60236422" in caplog.text and "BRD-X (broken)" in caplog.text


def test_control_rows_of_an_obs_are_kept_unchecked():
    obs = pd.DataFrame(
        {"pert_id": ["DMSO", "BRD-1", "BRD-2"], "smiles": ["", "CCO", "xx"],
         "is_control": [True, False, False]}
    )
    valid, report = validate_smiles(obs)
    assert list(valid["pert_id"]) == ["DMSO", "BRD-1"] and list(report["id"]) == ["BRD-2"]


def test_a_table_without_smiles_is_a_data_error():
    with pytest.raises(DataError, match="smiles_key"):
        validate_smiles(pd.DataFrame({"pert_id": ["a"]}))
