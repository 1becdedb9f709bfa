"""Records a user can trust: PRED.h5ad carries where it came from; smoke tests never look like results;
experiments.collect labels plain runs as the figures do."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import pandas as pd
import pytest
from omegaconf import OmegaConf

import pertdit
from experiments.collect import collect
from pertdit.cli import main
from pertdit.provenance import config_hash
from pertdit.train import train
from tests.helpers import QUIET, TINY_BACKBONE, compose_train

PROVENANCE = ("model", "split", "seed", "checkpoint", "config_hash", "pertdit_version", "date", "smoke_test")


@pytest.fixture(scope="module")
def mean_shift_run(tmp_path_factory, data_dir) -> Path:
    run = tmp_path_factory.mktemp("mean_shift")
    train(compose_train(["model=mean_shift", *QUIET, "seed=3"], run, run / "cache", data_dir))
    return run


def test_pred_h5ad_carries_its_provenance(mean_shift_run):
    meta = ad.read_h5ad(mean_shift_run / "PRED.h5ad").uns["pertdit"]
    assert all(key in meta for key in PROVENANCE)
    assert meta["model"] == "TrivialModule(mean_shift)"
    assert meta["split"] == "drug_unseen" and meta["seed"] == 3
    assert meta["pertdit_version"] == pertdit.__version__ and not meta["smoke_test"]
    assert meta["checkpoint"] == "final weights (no checkpoint)"
    assert meta["config_hash"] == config_hash(OmegaConf.load(mean_shift_run / "config.yaml"))


def test_config_hash_ignores_where_things_are_and_sees_what_was_run(tmp_path):
    here = compose_train(["model=prnet"], tmp_path / "a", tmp_path / "cache", tmp_path / "data")
    there = compose_train(["model=prnet"], tmp_path / "b", tmp_path / "other_cache", tmp_path / "other_data")
    other = compose_train(["model=prnet", "model.lr=0.01"], tmp_path / "a", tmp_path / "cache",
                          tmp_path / "data")
    assert config_hash(here) == config_hash(there) != config_hash(other)


def test_a_smoke_test_writes_marked_outputs_only(tmp_path, data_dir, capsys):
    train(compose_train(["model=prnet", "trainer.fast_dev_run=true", *QUIET], tmp_path, tmp_path / "c",
                        data_dir))
    assert not (tmp_path / "metrics.csv").exists() and not (tmp_path / "PRED.h5ad").exists()
    table = pd.read_csv(tmp_path / "metrics.smoke.csv")
    assert len(table) == 10 and table["smoke_test"].all()
    assert ad.read_h5ad(tmp_path / "PRED.smoke.h5ad").uns["pertdit"]["smoke_test"]
    out = tmp_path / "again.csv"
    assert main(["evaluate", str(tmp_path / "PRED.smoke.h5ad"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "smoke test (trainer.fast_dev_run): not a result" in printed and f"written: {out}" in printed
    assert pd.read_csv(out)["smoke_test"].all()
    assert collect([tmp_path]).empty, "a smoke test is never collected as a result"


def test_collect_labels_a_plain_run_as_the_figures_do(mean_shift_run, tmp_path, data_dir):
    train(compose_train(["model=prnet", *QUIET, "trainer.max_epochs=1", "preset=cpu_quick"],
                        tmp_path / "prnet", tmp_path / "c", data_dir))
    table = collect([tmp_path / "prnet", mean_shift_run]).drop_duplicates("run_dir").set_index("model")
    assert table.loc["prnet", "label"] == "PRnet" and table.loc["mean_shift", "label"] == "mean_shift"
    assert table.loc["prnet", "scale"] == "cpu_quick" and table.loc["mean_shift", "scale"] == "default"
    assert (table["experiment"] == "train").all()


def test_a_text_substitution_is_recorded_beside_the_config_and_in_metrics_csv(tmp_path, data_dir, tiny_bert_dir,
                                                                            capsys):
    """describer=auto without MolT5 weights: RDKit descriptions stand in, and the run says so outside PRED.h5ad."""
    run = tmp_path / "run"
    train(compose_train(["model=adadit_text", "trainer.fast_dev_run=true", *QUIET, *TINY_BACKBONE,
                         f"perturbation.encoder_local_dir={tiny_bert_dir}", "perturbation.describer=auto",
                         "perturbation.captioner.model_id=pertdit-tests/no-such-captioner"],
                        run, tmp_path / "cache", data_dir))
    record = OmegaConf.load(run / "provenance.yaml")
    assert record.representation.substitution_used == "RDKit-derived descriptions"
    assert record.substitution.startswith(
        "RDKit-derived descriptions instead of captions by pertdit-tests/no-such-captioner (")
    table = pd.read_csv(run / "metrics.smoke.csv")
    assert (table["representation_substitution"] == record.substitution).all()
    out = tmp_path / "again.csv"
    assert main(["evaluate", str(run / "PRED.smoke.h5ad"), "--out", str(out)]) == 0
    assert "made a substitution: RDKit-derived descriptions" in capsys.readouterr().out
    assert (pd.read_csv(out)["representation_substitution"] == record.substitution).all()


def test_a_run_without_substitution_records_its_representation_and_no_substitution_column(mean_shift_run):
    record = OmegaConf.load(mean_shift_run / "provenance.yaml")
    assert record.representation["class"] and record.substitution is None
    assert "representation_substitution" not in pd.read_csv(mean_shift_run / "metrics.csv").columns
