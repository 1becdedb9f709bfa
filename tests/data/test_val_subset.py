"""Validation during training is a strided subset of the whole validation set; the test always uses all of it."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest

from pertdit.data.splits import kfold_split, split_rows
from pertdit.data.val_subset import strided_rows
from pertdit.train import build_datamodule, build_model
from tests.data.synthetic import dataset
from tests.helpers import QUIET, compose_train


@pytest.fixture(scope="module")
def multi():
    """6 cell lines x 10 drugs x 3 doses x 2 replicates; rows ordered cell line by cell line, as files often are."""
    adata = dataset(n_cells=6, n_drugs=10)
    column = kfold_split(adata, by="random", fold=0)
    return adata, split_rows(adata, column, "val")


def test_subset_covers_every_cell_line_and_compound_where_the_first_rows_do_not(multi):
    adata, val = multi
    obs = adata.obs
    subset = strided_rows(val, obs, max_rows=len(val) // 3)
    assert len(subset) <= len(val) // 3 and set(subset) <= set(val)
    assert set(obs["cell_id"].iloc[subset]) == set(obs["cell_id"].iloc[val])
    assert set(obs["smiles"].iloc[subset]) == set(obs["smiles"].iloc[val])
    first = val[: len(subset)]  # what limit_val_batches would see
    assert len(set(obs["cell_id"].iloc[first])) < len(set(obs["cell_id"].iloc[val]))


def test_subset_is_every_kth_row_in_cell_compound_dose_order(multi):
    adata, val = multi
    obs = adata.obs.iloc[val]
    order = val[np.lexsort((val, obs["dose"].to_numpy(), obs["smiles"].to_numpy(), obs["cell_id"].to_numpy()))]
    k = int(np.ceil(len(val) / 20))
    np.testing.assert_array_equal(strided_rows(val, adata.obs, max_rows=20), np.sort(order[::k]))


@pytest.mark.parametrize("max_rows", [None, 10_000])
def test_no_limit_or_a_large_one_keeps_every_row(multi, max_rows):
    adata, val = multi
    np.testing.assert_array_equal(strided_rows(val, adata.obs, max_rows), val)


def test_bad_limit_is_named(multi):
    adata, val = multi
    with pytest.raises(ValueError, match="data.val_max_rows"):
        strided_rows(val, adata.obs, 0)


class _SeenRows(L.Callback):
    """Records the dataset rows of every validation and test batch."""

    def __init__(self) -> None:
        self.rows = {"val": [], "test": []}

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self.rows["val"] += batch["row"].tolist()

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.rows["test"] += batch["row"].tolist()


def test_training_validates_on_the_subset_and_tests_on_everything(tmp_path, data_dir):
    cfg = compose_train(["model=prnet", "split=random_fold", "data.val_max_rows=20", "data.eval_batch_size=8",
                         *QUIET], tmp_path, tmp_path / "cache", data_dir)
    assert cfg.trainer.limit_val_batches == 1.0
    dm = build_datamodule(cfg)
    model = build_model(cfg, dm, tmp_path)
    seen = _SeenRows()
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=cfg.trainer.limit_val_batches,
                        num_sanity_val_steps=0, logger=False, enable_checkpointing=False, callbacks=[seen],
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm)
    assert len(dm.rows["val"]) > 20
    assert sorted(seen.rows["val"]) == sorted(dm.val_subset_rows.tolist()) and len(seen.rows["val"]) <= 20
    assert sorted(seen.rows["test"]) == sorted(dm.rows["test"].tolist())  # the whole test set


def test_default_configs_validate_on_a_bounded_subset(tmp_path):
    cfg = compose_train([], tmp_path, tmp_path, tmp_path)
    assert cfg.data.val_max_rows == 256 and cfg.trainer.limit_val_batches == 1.0
    # small scale (the collection): the baselines' early stopping validates on the bounded subset; the quick
    # DiTs (preset cpu_quick) do not validate during training at all
    prnet = compose_train(["experiment=figure2a", "method=prnet"], tmp_path, tmp_path, tmp_path)
    assert prnet.scale.name == "small"
    assert prnet.data.val_max_rows == 256 and prnet.trainer.limit_val_batches == 1.0
    dit = compose_train(["experiment=figure2a", "method=crossdit"], tmp_path, tmp_path, tmp_path)
    assert dit.trainer.limit_val_batches == 0
