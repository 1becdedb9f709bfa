"""Interrupted runs lose at most one epoch: last.ckpt every epoch, `pertdit train --resume RUN_DIR`, the CSV
log history kept, and the resumed run ending with the weights of an uninterrupted one (even for models that draw
from the global RNG, such as PRnet's decoder noise and dropout)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from pertdit.checkpoints import load_checkpoint
from pertdit.loggers import HistoryWriter, trim_metrics_csv
from pertdit.resume import ResumeError, resume_config
from pertdit.train import train
from tests.helpers import compose_train, probe_epochs

PRNET = ["model=prnet", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
         "test=false", "model.lr_patience=1"]  # the plateau scheduler reduces the learning rate during these few epochs


def _pertdit(args: list[str], cwd: Path, cache: Path, data_dir: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PERTDIT_CACHE": str(cache), "PERTDIT_DATA": str(data_dir), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen([sys.executable, "-m", "pertdit.cli", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)


def _same_weights(a: Path, b: Path) -> None:
    first, second = load_checkpoint(a), load_checkpoint(b)
    assert first["global_step"] == second["global_step"]
    for name, value in first["state_dict"].items():
        torch.testing.assert_close(value, second["state_dict"][name], rtol=0, atol=0, msg=f"{name} differs")


@pytest.mark.slow  # ~45 s: three processes; the in-process sibling below runs by default
def test_a_killed_run_resumes_losing_at_most_one_epoch(tmp_path, data_dir):
    """SIGKILL a real `pertdit train` mid-epoch, `pertdit train --resume` it: the interrupted epoch is the
    only one trained twice, csv/metrics.csv holds every epoch once, the weights equal an uninterrupted run's."""
    epochs, run_dir, probe = 10, tmp_path / "run", tmp_path / "probe.txt"
    args = ["train", *PRNET, f"trainer.max_epochs={epochs}", f"hydra.run.dir={run_dir}",
            "+callbacks.probe._target_=tests.helpers.EpochProbe", f"+callbacks.probe.path={probe}",
            "+callbacks.probe.batch_sleep=0.1"]
    process = _pertdit(args, tmp_path, tmp_path / "cache", data_dir)
    deadline = time.monotonic() + 240
    while max(probe_epochs(probe)[1], default=-1) < 3 and process.poll() is None:
        assert time.monotonic() < deadline, "the run did not reach epoch 3"
        time.sleep(0.05)
    time.sleep(0.25)  # into the next epoch (4 batches of 0.1 s)
    process.send_signal(signal.SIGKILL)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == -signal.SIGKILL, output[-3000:]
    started_before, _ = probe_epochs(probe)
    saved_epoch = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["epoch"]
    assert saved_epoch >= max(started_before) - 1, "more than the interrupted epoch is lost"

    resumed = _pertdit(["train", "--resume", str(run_dir)], tmp_path, tmp_path / "cache", data_dir)
    output = resumed.communicate(timeout=240)[0]
    assert resumed.returncode == 0, output[-3000:]
    assert f"resuming from {run_dir / 'checkpoints' / 'last.ckpt'} (after epoch {saved_epoch})" in output
    started = probe_epochs(probe)[0]
    assert started[len(started_before):] == list(range(saved_epoch + 1, epochs))
    repeated = set(started_before) & set(started[len(started_before):])
    assert len(repeated) <= 1 and repeated <= {max(started_before)}

    log = pd.read_csv(run_dir / "csv" / "metrics.csv")
    validated = log.dropna(subset=["val/mse"])["epoch"].astype(int).tolist()
    assert validated == list(range(epochs)), "every epoch's validation once, in order"

    reference = compose_train([*PRNET, f"trainer.max_epochs={epochs}"], tmp_path / "reference",
                              tmp_path / "cache", data_dir)
    train(reference)
    _same_weights(tmp_path / "reference" / "checkpoints" / "last.ckpt", run_dir / "checkpoints" / "last.ckpt")


def test_resume_in_process_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, data_dir):
    """The fast sibling of the kill test: stop PRnet after 3 of 6 epochs, resume with ckpt_path=RUN_DIR."""
    full = compose_train([*PRNET, "trainer.max_epochs=6", "logger=[]"], tmp_path / "full", tmp_path / "c",
                         data_dir)
    train(full)
    part = [*PRNET, "logger=csv"]
    train(compose_train([*part, "trainer.max_epochs=3"], tmp_path / "part", tmp_path / "c", data_dir))
    train(compose_train([*part, "trainer.max_epochs=6", f"ckpt_path={tmp_path / 'part'}"], tmp_path / "part",
                        tmp_path / "c", data_dir))
    _same_weights(tmp_path / "full" / "checkpoints" / "last.ckpt",
                  tmp_path / "part" / "checkpoints" / "last.ckpt")
    log = pd.read_csv(tmp_path / "part" / "csv" / "metrics.csv")
    assert log.dropna(subset=["val/mse"])["epoch"].astype(int).tolist() == list(range(6))


def test_last_checkpoint_is_the_last_epoch_not_the_best(tmp_path, data_dir):
    cfg = compose_train([*PRNET, "trainer.max_epochs=4", "logger=[]"], tmp_path, tmp_path / "c", data_dir)
    train(cfg)
    assert load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["epoch"] == 3


def _saved_run(tmp_path: Path, **config) -> Path:
    (tmp_path / "checkpoints").mkdir(parents=True)
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    base = {"seed": 0, "ckpt_path": None, "paths": {"run_dir": str(tmp_path)},
            "trainer": {"max_epochs": 10}, "model": {"lr": 0.001},
            "callbacks": {"last_checkpoint": {"dirpath": f"{tmp_path}/checkpoints"}}}
    OmegaConf.save(OmegaConf.merge(base, config), tmp_path / "config.yaml")
    return tmp_path


def test_resume_restores_the_runs_config_and_its_last_checkpoint(tmp_path):
    run = _saved_run(tmp_path)
    cfg = resume_config(run, ["trainer.max_epochs=30"])
    assert cfg.trainer.max_epochs == 30 and cfg.model.lr == 0.001
    assert cfg.ckpt_path == str(run / "checkpoints" / "last.ckpt")


@pytest.mark.parametrize("override",
                         ["model.lr=0.1", "seed=1", "+trainer.max_epochs=3", "trainer.max_epochs"])
def test_resume_refuses_overrides_that_change_what_is_trained(tmp_path, override):
    with pytest.raises(ResumeError, match="start a new run") as err:
        resume_config(_saved_run(tmp_path), [override])
    assert override in str(err.value) and "trainer.max_epochs" in str(err.value)


def test_resume_of_a_moved_run_folder_writes_into_the_new_place(tmp_path):
    run = _saved_run(tmp_path / "old")
    moved = tmp_path / "new"
    run.rename(moved)
    cfg = resume_config(moved)
    assert cfg.paths.run_dir == str(moved)
    assert cfg.callbacks.last_checkpoint.dirpath == f"{moved}/checkpoints"


def test_resume_needs_a_last_checkpoint(tmp_path):
    run = _saved_run(tmp_path)
    (run / "checkpoints" / "last.ckpt").unlink()
    with pytest.raises(ResumeError, match="no checkpoints/last.ckpt"):
        resume_config(run)


def test_log_history_is_cut_after_the_checkpoint_epoch_and_appended_to(tmp_path):
    path = tmp_path / "metrics.csv"
    rows = {"epoch": [0, 0, 1, 1, 2, 2], "step": [1, 2, 3, 4, 5, 6], "train/loss": [1, 2, 3, 4, 5, 6]}
    pd.DataFrame(rows).to_csv(path, index=False)
    assert trim_metrics_csv(path, until_epoch=1) == 4
    writer = HistoryWriter(str(tmp_path))
    writer.log_metrics({"epoch": 2, "train/loss": 7.0, "val/mse": 0.5}, step=7)
    writer.save()
    log = pd.read_csv(path)
    assert log["epoch"].tolist() == [0, 0, 1, 1, 2]
    assert log["train/loss"].tolist() == [1, 2, 3, 4, 7] and log["val/mse"].iloc[-1] == 0.5
