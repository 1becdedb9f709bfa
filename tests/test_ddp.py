"""DDP on CPU: two gloo processes (`trainer=ddp_cpu`) give the single-process test measures, and train.

The distributed sampler pads an uneven test set with repeated rows; the measures and PRED.h5ad must count
each row once. The fixed model is `mean_shift` (deterministic, fitted once in the parent process).
A diffusion model's training draws (timesteps, noise, guidance dropout) differ across ranks and a resumed
2-process run ends with the weights of an uninterrupted one.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional  # noqa: UP035 - OmegaConf reads these annotations

import anndata as ad
import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.utils import instantiate

from pertdit.config import CONFIG_DIR, register_resolvers
from pertdit.demo import QUICK_MODEL
from pertdit.metrics import GROUPINGS, METRICS
from pertdit.train import build_datamodule, build_model, train
from tests.helpers import QUIET, TINY_BACKBONE, compose_train

MEASURES = [f"test/{m}/{g}" for m in METRICS for g in GROUPINGS]


def _train(overrides: list[str], run_dir: Path, cache: Path) -> dict[str, float]:
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "logger=[]", "trainer.enable_progress_bar=false",
                                          "trainer.enable_model_summary=false", f"paths.run_dir={run_dir}",
                                          f"paths.cache_dir={cache}"])
    return train(cfg)


# random_fold fold 0 has 65 test rows: rank 1 gets a repeat of the first row as padding
MEAN_SHIFT = ["model=mean_shift", "split=random_fold", "callbacks=none", "data.eval_batch_size=16"]


@pytest.fixture(scope="module")
def single_process(data_dir, tmp_path_factory) -> tuple[Path, dict[str, float]]:
    run_dir = tmp_path_factory.mktemp("one")
    return run_dir, _train([*MEAN_SHIFT, "trainer=cpu"], run_dir, run_dir.parent / "cache")


def _assert_same_run(run_dir: Path, reference: Path) -> None:
    """Same PRED.h5ad rows and predictions, same metrics.csv as the single-process run."""
    pred, expected = ad.read_h5ad(run_dir / "PRED.h5ad"), ad.read_h5ad(reference / "PRED.h5ad")
    assert expected.n_obs % 2 == 1, "the test set must be uneven for the sampler to pad it"
    np.testing.assert_array_equal(pred.uns["pertdit"]["rows"], expected.uns["pertdit"]["rows"])
    np.testing.assert_array_equal(pred.X, expected.X)
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "metrics.csv"),
                                  pd.read_csv(reference / "metrics.csv"), rtol=1e-6)


@pytest.mark.timeout(300)
def test_two_gloo_processes_give_the_single_process_measures(single_process, tmp_path: Path):
    reference, single = single_process
    double = _train([*MEAN_SHIFT, "trainer=ddp_cpu"], tmp_path / "two", reference.parent / "cache")
    for key in MEASURES:  # logged by rank 0 from the metric synced across both ranks
        assert math.isfinite(single[key])
        assert double[key] == single[key], key
    _assert_same_run(tmp_path / "two", reference)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_diffusion_model_trains_and_tests_under_ddp_launched_by_the_command_line(single_process, tmp_path):
    """`strategy=ddp` (not spawned), as on a GPU node: Lightning re-runs `pertdit train ...` for rank 1.
    Slow (~25 s: two interpreters start Hydra and Lightning); the spawned gloo test covers DDP by default."""
    reference, _ = single_process
    run_dir = tmp_path / "popen"
    quick = [o for o in QUICK_MODEL if not o.startswith(("callbacks=", "trainer.max_epochs="))]
    env = {**os.environ, "PERTDIT_CACHE": str(reference.parent / "cache")}
    done = subprocess.run([sys.executable, "-m", "pertdit.cli", "train", "model=crossdit", *quick,
                           "split=random_fold", "trainer=ddp_cpu", "trainer.strategy.start_method=popen",
                           "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                           "+trainer.num_sanity_val_steps=0", "callbacks=default",  # the preset: no early stopping
                           "~callbacks.lr_monitor", "logger=[]",
                           "data.eval_batch_size=16", f"paths.run_dir={run_dir}", f"hydra.run.dir={run_dir}"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (run_dir / "train_ddp_process_1.log").is_file()  # Hydra's log of the rank Lightning started
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    pred = ad.read_h5ad(run_dir / "PRED.h5ad")
    expected_rows = ad.read_h5ad(reference / "PRED.h5ad").uns["pertdit"]["rows"]
    np.testing.assert_array_equal(pred.uns["pertdit"]["rows"], expected_rows)  # each test row once
    table = pd.read_csv(run_dir / "metrics.csv")
    assert len(table) == 10 and (table.loc[table["grouping"] == "per_sample", "n_groups"] == pred.n_obs).all()


class RecordTrainingDraws(L.Callback):
    """On every rank, saves the draws of each training step (`DiffusionModule.training_draws`) to a file."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.draws = Path(folder), []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        with torch.no_grad():
            t, noise, drop = module.training_draws(module.to_model_space(batch))
        self.draws.append({"step": trainer.global_step, "t": t, "noise": noise, "drop": drop})

    def on_train_end(self, trainer, module) -> None:
        torch.save(self.draws, self.folder / f"draws_rank{trainer.global_rank}.pt")


def _ddp_fit(run_dir: Path, cache: Path, data_dir: Path, epochs: int, ckpt_path: Path | None = None,
             record: bool = False) -> Path:
    """A tiny CrossDiT (with guidance dropout) trained by 2 gloo processes; returns its last.ckpt."""
    overrides = ["model=crossdit", *QUIET, *TINY_BACKBONE, "trainer=ddp_cpu", "split=random_fold",
                 "trainer.limit_val_batches=0", "trainer.limit_train_batches=2", f"trainer.max_epochs={epochs}",
                 "data.batch_size=8", "model.warmup_steps=2", "model.cosine_steps=8", "diffusion.cfg_drop_prob=0.5",
                 "trainer.strategy.find_unused_parameters=false"]
    cfg = compose_train(overrides, run_dir, cache, data_dir)
    L.seed_everything(cfg.seed)
    dm = build_datamodule(cfg)
    model = build_model(cfg, dm, run_dir)
    callbacks = [L.pytorch.callbacks.ModelCheckpoint(dirpath=run_dir / "ckpt", save_last=True)]
    if record:
        callbacks.append(RecordTrainingDraws(run_dir))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=False)
    trainer.fit(model, datamodule=dm, ckpt_path=None if ckpt_path is None else str(ckpt_path))
    return run_dir / "ckpt" / "last.ckpt"


@pytest.mark.timeout(300)
def test_ranks_draw_their_own_noise(tmp_path, data_dir):
    _ddp_fit(tmp_path / "full", tmp_path / "cache", data_dir, epochs=2, record=True)
    rank0, rank1 = (torch.load(tmp_path / "full" / f"draws_rank{r}.pt") for r in (0, 1))
    assert [d["step"] for d in rank0] == [d["step"] for d in rank1] == [0, 1, 2, 3]
    for a, b in zip(rank0, rank1):  # same batch shape on both ranks, different draws
        assert a["noise"].shape == b["noise"].shape and not torch.equal(a["noise"], b["noise"])
        assert not torch.equal(a["t"], b["t"])
    assert any(not torch.equal(a["drop"], b["drop"]) for a, b in zip(rank0, rank1))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_resumed_ddp_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, data_dir):
    """Three 2-process fits (~40 s); the single-process resume tests cover the same logic in the default suite."""
    cache = tmp_path / "cache"
    uninterrupted = _ddp_fit(tmp_path / "full", cache, data_dir, epochs=2)
    half = _ddp_fit(tmp_path / "half", cache, data_dir, epochs=1)
    resumed = _ddp_fit(tmp_path / "resumed", cache, data_dir, epochs=2, ckpt_path=half)
    expected = torch.load(uninterrupted, weights_only=False)["state_dict"]
    got = torch.load(resumed, weights_only=False)["state_dict"]
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], msg=f"{name} differs after resume")
    changed = torch.load(half, weights_only=False)["state_dict"]
    assert any(not torch.equal(changed[n], expected[n]) for n in expected), "the second epoch must train"


@dataclass
class SlurmQueueStandIn:
    """hydra-submitit-launcher 1.2's `SlurmQueueConf` (same names, defaults), for when it is not installed."""

    _target_: str = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    submitit_folder: str = "${hydra.sweep.dir}/.submitit/%j"
    timeout_min: int = 60
    cpus_per_task: Optional[int] = None
    gpus_per_node: Optional[int] = None
    tasks_per_node: int = 1
    mem_gb: Optional[int] = None
    nodes: int = 1
    name: str = "${hydra.job.name}"
    stderr_to_stdout: bool = False
    partition: Optional[str] = None
    qos: Optional[str] = None
    comment: Optional[str] = None
    constraint: Optional[str] = None
    exclude: Optional[str] = None
    gres: Optional[str] = None
    cpus_per_gpu: Optional[int] = None
    gpus_per_task: Optional[int] = None
    mem_per_gpu: Optional[str] = None
    mem_per_cpu: Optional[str] = None
    account: Optional[str] = None
    signal_delay_s: int = 120
    max_num_timeout: int = 0
    additional_parameters: Dict[str, Any] = field(default_factory=dict)
    array_parallelism: int = 256
    setup: Optional[List[str]] = None


def _submitit_plugin_installed() -> bool:
    try:
        return importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is not None
    except ModuleNotFoundError:  # no hydra_plugins package at all
        return False


def test_the_slurm_launcher_config_runs_one_task_per_gpu_on_the_partition_from_env(monkeypatch):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        default = compose("train", overrides=["paths.run_dir=/tmp/x"], return_hydra_config=True)
        assert "BasicLauncher" in default.hydra.launcher._target_  # not loaded unless asked for
        if not _submitit_plugin_installed():
            ConfigStore.instance().store(group="hydra/launcher", name="submitit_slurm",
                                         node=SlurmQueueStandIn, provider="test_ddp")
        monkeypatch.setenv("PERTDIT_SLURM_PARTITION", "gpu-long")
        cfg = compose("train", overrides=["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=4",
                                          "trainer=ddp", "paths.run_dir=/tmp/x"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.tasks_per_node == launcher.gpus_per_node == 4
    assert launcher.partition == "gpu-long"
    assert launcher.timeout_min > 0
    assert cfg.trainer.strategy._target_.endswith("DDPStrategy")
