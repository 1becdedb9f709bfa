"""Early stopping counts its patience only from `min_epochs` on, and says in one line when and why it
stopped."""

from __future__ import annotations

import logging

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from pertdit.callbacks import EarlyStopping


class ScriptedValidation(L.LightningModule):
    """A one-weight model whose val/mse at epoch e is `values[e]` (the last value after the end)."""

    def __init__(self, values: list[float]) -> None:
        super().__init__()
        self.values = values
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.weight - batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        value = self.values[min(self.current_epoch, len(self.values) - 1)]
        self.log("val/mse", torch.tensor(value))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(values: list[float], **stopping) -> tuple[L.Trainer, EarlyStopping]:
    data = DataLoader(TensorDataset(torch.ones(4, 1)), batch_size=4)
    callback = EarlyStopping(monitor="val/mse", mode="min", **stopping)
    trainer = L.Trainer(max_epochs=30, callbacks=[callback], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(ScriptedValidation(values), train_dataloaders=data, val_dataloaders=data)
    return trainer, callback


PLATEAU_AFTER_EPOCH_2 = [5.0, 4.0, 3.0, 3.5]


def test_without_a_minimum_patience_counts_from_the_start():
    _, callback = _fit(PLATEAU_AFTER_EPOCH_2, patience=2)
    assert callback.stopped_epoch == 4 and callback.best_epoch == 2


def test_patience_counts_only_from_min_epochs_on(caplog):
    with caplog.at_level(logging.INFO, logger="pertdit.callbacks"):
        _, callback = _fit(PLATEAU_AFTER_EPOCH_2, patience=2, min_epochs=5)
    assert callback.stopped_epoch == 6  # epochs 5 and 6 without improvement
    lines = [r.getMessage() for r in caplog.records if r.name == "pertdit.callbacks"]
    assert lines == ["early stopping after epoch 6: val/mse 3.5 has not improved on the best 3 (epoch 2) for "
                     "2 validations (patience 2, counted from epoch 5)"]


def test_an_improvement_after_min_epochs_restarts_the_count():
    values = [5.0, 4.0, 3.0, 3.5, 3.5, 3.5, 2.0, 2.5]
    _, callback = _fit(values, patience=2, min_epochs=5)
    assert callback.best_epoch == 6 and callback.stopped_epoch == 8


def test_a_non_finite_value_stops_at_once_even_before_min_epochs(caplog):
    with caplog.at_level(logging.INFO, logger="pertdit.callbacks"):
        _, callback = _fit([5.0, float("nan")], patience=2, min_epochs=10)
    assert callback.stopped_epoch == 1
    assert "is not finite" in caplog.records[-1].getMessage()


def test_a_resumed_run_keeps_the_configured_patience():
    callback = EarlyStopping(monitor="val/mse", patience=30, min_epochs=0)
    state = {**EarlyStopping(monitor="val/mse", patience=10).state_dict(), "best_epoch": 7}
    callback.load_state_dict(state)
    assert callback.patience == 30 and callback.best_epoch == 7
