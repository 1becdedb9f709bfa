"""A compute budget stops training once the fit has used it, and every run records what it used."""

from __future__ import annotations

import json
import time

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from pertdit.callbacks import ComputeBudget
from pertdit.train import train
from tests.helpers import QUIET, compose_train


class BusyModel(L.LightningModule):
    """One weight; each training step burns `busy` CPU seconds, so a budget is reached after a known work."""

    def __init__(self, busy: float) -> None:
        super().__init__()
        self.busy = busy
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        end = time.process_time() + self.busy
        while time.process_time() < end:
            pass
        return (self.weight - batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(budget: ComputeBudget, busy: float = 0.02, max_epochs: int = 50) -> L.Trainer:
    data = DataLoader(TensorDataset(torch.ones(4, 1)), batch_size=1)
    trainer = L.Trainer(max_epochs=max_epochs, callbacks=[budget], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(BusyModel(busy), train_dataloaders=data)
    return trainer


def test_a_cpu_budget_stops_training_once_used():
    budget = ComputeBudget(cpu_minutes=0.3 / 60)  # 0.3 CPU seconds; a step burns 0.02
    trainer = _fit(budget)
    assert budget.summary["stopped_by_budget"]
    assert budget.summary["cpu_seconds"] >= 0.3
    assert 1 <= trainer.global_step <= 16  # at most 0.3 / 0.02 + 1 steps (Lightning uses some CPU too), not 200


def test_without_limits_the_budget_only_records():
    budget = ComputeBudget()
    trainer = _fit(budget, busy=0.0, max_epochs=2)
    assert not budget.summary["stopped_by_budget"]
    assert trainer.global_step == 8 and budget.summary["steps"] == 8 and budget.summary["epochs"] == 2


def test_the_used_budget_is_carried_across_a_resume():
    budget = ComputeBudget(cpu_minutes=1.0)
    budget.on_load_checkpoint(None, None, {ComputeBudget.KEY: {"cpu": 59.9, "wall": 70.0}})
    trainer = _fit(budget)
    assert budget.stopped and trainer.global_step <= 10  # 0.1 CPU seconds were left


def test_a_budget_must_be_positive():
    with pytest.raises(ValueError, match="cpu_minutes must be > 0"):
        ComputeBudget(cpu_minutes=0)


def test_a_run_writes_compute_json_and_stops_at_its_budget(tmp_path):
    overrides = ["model=prnet", "callbacks=default", "callbacks.model_checkpoint=null",
                 "callbacks.early_stopping=null", "callbacks.compute_budget.cpu_minutes=0.02",
                 "trainer.max_epochs=1000", "test=false", *[q for q in QUIET if not q.startswith("callbacks")]]
    cfg = compose_train(overrides, tmp_path / "run", tmp_path / "cache", tmp_path)  # data=plate is shipped
    train(cfg)
    used = json.loads((tmp_path / "run" / "compute.json").read_text())
    assert used["stopped_by_budget"] and used["cpu_seconds"] >= 1.2
    assert used["stopped_by"] == "compute_budget"
    assert 0 < used["epochs"] < 1000
    assert used["trainable_parameters"] > 100_000  # PRnet at its paper's size


@pytest.mark.parametrize(("overrides", "reason"), [
    (["trainer.max_epochs=1"], "max_epochs"),
    (["trainer.max_epochs=20", "+callbacks.early_stopping.stopping_threshold=1e9"], "early_stopping"),
])
def test_compute_json_says_why_training_stopped(tmp_path, overrides, reason):
    quiet = [q for q in QUIET if not q.startswith("callbacks")]
    cfg = compose_train(["model=prnet", "callbacks=default", "callbacks.model_checkpoint=null",
                         "trainer.limit_train_batches=2", "test=false", *quiet, *overrides],
                        tmp_path / "run", tmp_path / "cache", tmp_path)
    train(cfg)
    used = json.loads((tmp_path / "run" / "compute.json").read_text())
    assert used["stopped_by"] == reason and not used["stopped_by_budget"]
    assert used["epochs"] == 1
