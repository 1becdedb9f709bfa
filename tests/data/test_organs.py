"""The bundled cell line -> organ table, and which organs of a dataset can be held out."""

from __future__ import annotations

import pandas as pd
import pytest

from pertdit.data.organs import format_organ_summary, load_cell_organs, organ_of, organ_summary
from pertdit.data.readers import read_gct
from pertdit.data.split_spec import SplitSpec
from tests.data.real_plates import A375, MCF7, PC3, real_dataset

BASAL = "l1000_basal_165cells_level3_n165x978.gct"
SOURCES = {"lincs_dcic", "cellosaurus", "unknown"}


def test_every_cell_line_of_the_collection_has_an_organ_and_a_source(data_dir):
    from importlib import resources

    table = pd.read_csv(resources.files("pertdit.data").joinpath("cell_organs.tsv").open(), sep="\t",
                        comment="#", dtype=str)
    basal = [c for c in read_gct(data_dir / BASAL).obs["cell_id"] if c != "averaged"]
    assert len(basal) == 164
    wanted = set(basal) | {"HT115", "SKBR3", "A375", "MCF7", "PC3"}
    assert wanted <= set(table["cell_id"])
    assert table["organ"].notna().all() and set(table["source"]) <= SOURCES
    assert (table["organ"] == "unknown").eq(table["source"] == "unknown").all()  # unknown is said, not guessed


def test_known_lines_map_to_their_organ():
    organs = organ_of(["HT115", "SKBR3", "A375", "MCF7", "PC3", "HT-29", "a549", "XC.L10"], load_cell_organs())
    assert organs == {"HT115": "colon", "SKBR3": "breast", "A375": "skin", "MCF7": "breast", "PC3": "prostate",
                      "HT-29": "colon", "a549": "lung", "XC.L10": "unknown"}


def test_organ_summary_counts_cells_profiles_and_says_which_can_be_held_out(data_dir):
    adata = real_dataset(data_dir, A375, MCF7, PC3)
    summary = organ_summary(adata, load_cell_organs(), min_cell_lines=1, min_profiles=30).set_index("organ")
    assert summary.loc["skin", ["n_cell_lines", "n_profiles", "n_compounds"]].tolist() == [1, 322, 54]
    assert summary.loc["breast", "n_profiles"] == 6 and summary.loc["prostate", "n_profiles"] == 6
    assert summary.loc["skin", "holdout_ok"]  # the 12 MCF7 and PC3 profiles are left to train on
    assert "6 < 30 profiles" in summary.loc["breast", "why_not"]
    relaxed = organ_summary(adata, load_cell_organs(), min_profiles=5).set_index("organ")
    assert relaxed.loc["breast", "holdout_ok"] and relaxed.loc["prostate", "holdout_ok"]
    text = format_organ_summary(relaxed.reset_index())
    assert "breast" in text and "MCF7:6" in text


def test_organ_split_with_the_bundled_table_on_real_plates(data_dir):
    adata = real_dataset(data_dir, A375, MCF7, PC3)
    column = SplitSpec(kind="organ", organ="prostate", val_fraction=0.2).apply(adata)
    test = adata.obs[column].astype(str) == "test"
    assert set(adata.obs.loc[test, "cell_id"]) == {"PC3"}


def test_pertdit_data_prints_the_organ_table(tmp_path, data_dir, capsys):
    from pertdit.tasks import data_task
    from tests.helpers import compose_train

    data_task(compose_train([], tmp_path / "run", tmp_path / "cache", data_dir))
    out = capsys.readouterr().out
    assert "organs (for split=organ" in out
    assert "skin" in out and "no other organ left to train on" in out


@pytest.mark.parametrize("bad", ["cell_id\tx\nA\tb\n", "cell_id\torgan\nA\tlung\nA\tskin\n"])
def test_bad_organ_tables_are_named(tmp_path, bad):
    path = tmp_path / "organs.tsv"
    path.write_text(bad)
    with pytest.raises(ValueError, match="organs.tsv"):
        load_cell_organs(path)
