"""Checkpoints are data, not code: every load is weights-only; a checkpoint carrying a pickled callable is
refused with an error naming the file, before anything in it runs."""

from __future__ import annotations

import os

import pytest
import torch

from pertdit.checkpoints import SAFE_GLOBALS, CheckpointError, load_checkpoint, resume_checkpoint
from pertdit.cli import main
from pertdit.train import train
from tests.helpers import QUIET, TINY_BACKBONE, compose_train

ONE_EPOCH = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
             "test=false", "logger=[]", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


class RunsCode:
    """Unpickling this object runs a shell command (what a malicious checkpoint would do)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    """One short run of each trainable model family: {model: run folder}."""
    runs = {}
    cache = tmp_path_factory.mktemp("cache")
    for model, extra in (("crossdit", [*TINY_BACKBONE, "diffusion=ddim", "diffusion.sampling_steps=2",
                                       "diffusion.eval_samples=1"]), ("prnet", []), ("chemcpa", [])):
        run = tmp_path_factory.mktemp(model)
        train(compose_train([f"model={model}", *ONE_EPOCH, *extra], run, cache, data_dir))
        runs[model] = run
    return runs


@pytest.mark.parametrize("model", ["crossdit", "prnet", "chemcpa"])
def test_checkpoints_hold_nothing_beyond_the_allow_list(trained, model):
    for path in sorted((trained[model] / "checkpoints").glob("*.ckpt")):
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        assert set(unsafe) <= {f"{t.__module__}.{t.__qualname__}" for t in SAFE_GLOBALS}, (path, unsafe)
        assert "state_dict" in load_checkpoint(path)


@pytest.fixture
def malicious(tmp_path):
    """A checkpoint whose unpickling would create `marker`."""
    marker = tmp_path / "code_ran"
    path = tmp_path / "shared.ckpt"
    torch.save({"state_dict": {}, "epoch": 0, "payload": RunsCode(marker)}, path)
    return path, marker


def test_a_checkpoint_carrying_a_callable_is_refused_and_nothing_runs(malicious):
    path, marker = malicious
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value) and "could run code" in str(err.value) and "system" in str(err.value)
    assert not marker.exists()


def test_resuming_from_a_malicious_checkpoint_is_refused_before_lightning_loads_it(malicious, data_dir):
    path, marker = malicious
    cfg = compose_train(["model=prnet", *ONE_EPOCH, f"ckpt_path={path}"], path.parent / "run", path.parent,
                        data_dir)
    with pytest.raises(CheckpointError, match="refused to load"):
        train(cfg)
    with pytest.raises(CheckpointError, match="refused to load"):
        resume_checkpoint(path, path.parent)
    assert not marker.exists()


def test_predict_refuses_it_with_one_error_line(malicious, trained, capsys):
    path, marker = malicious
    code = main(["predict", "--checkpoint", str(path), "--config", str(trained["prnet"] / "config.yaml"),
                 "--smiles", "CCO", "--dose", "1", "--cell-line", "A375",
                 "--out", str(path.parent / "p.h5ad")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith(f"pertdit predict: error: refused to load {path}")
    assert not marker.exists()


def test_a_truncated_checkpoint_is_named(trained, tmp_path):
    source = trained["prnet"] / "checkpoints" / "last.ckpt"
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(source.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=f"cannot read checkpoint {cut}"):
        load_checkpoint(cut)
