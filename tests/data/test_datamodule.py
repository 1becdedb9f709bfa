"""The data module: batches pair each profile with its control by index, splits feed the right loaders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pertdit.data.datamodule import PertDataModule
from pertdit.data.split_spec import SplitSpec
from pertdit.perturbation import RDKitFingerprint


@pytest.fixture(scope="module")
def dm(level3_path, compounds_path, tmp_path_factory):
    module = PertDataModule(expression=str(level3_path), compounds=str(compounds_path),
                            split=SplitSpec(kind="unseen", test_set="drug_unseen"),
                            representation=RDKitFingerprint(), cache_dir=str(tmp_path_factory.mktemp("cache")),
                            batch_size=16)
    module.prepare_data()
    module.setup("fit")
    return module


def test_batch_keys_shapes_and_dtypes(dm):
    batch = next(iter(dm.train_dataloader()))
    assert batch["x0"].shape == batch["c_pre"].shape == (16, 978)
    assert batch["c_pert"].shape == (16, 1, 1024) and batch["c_pert"].dtype == torch.float32
    assert batch["c_pert_mask"].dtype == torch.bool and batch["c_pert_mask"].all()
    for key in ("drug_index", "cell_index", "row"):
        assert batch[key].dtype == torch.long
    assert (batch["dose"] > 0).all()


def test_control_is_the_paired_row_and_not_a_copy(dm):
    batch = next(iter(dm.val_dataloader()))
    rows = batch["row"].numpy()
    paired = dm.adata.obs["paired_control_index"].to_numpy()[rows]
    np.testing.assert_array_equal(batch["c_pre"].numpy(), dm.adata.X[paired])
    np.testing.assert_array_equal(batch["x0"].numpy(), dm.adata.X[rows])
    assert dm.assembler.X.shape[0] == dm.adata.n_obs  # one expression matrix, controls looked up in it


def test_fingerprint_times_log_dose(dm):
    batch = next(iter(dm.test_dataloader()))
    smiles = dm.adata.obs["smiles"].to_numpy()[batch["row"].numpy()]
    bits = RDKitFingerprint().bits(list(smiles))
    expected = bits * np.log10(batch["dose"].numpy()[:, None] + 1)
    np.testing.assert_allclose(batch["c_pert"][:, 0].numpy(), expected, rtol=2e-3, atol=2e-3)  # float16 cache


def test_split_rows_are_disjoint_and_test_drugs_unseen(dm):
    train, val, test = (set(dm.rows[s]) for s in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    drugs = dm.adata.obs["drug"].astype(str).to_numpy()
    assert not set(drugs[list(test)]) & set(drugs[list(train | val)])
    assert not dm.adata.obs["is_control"].to_numpy()[list(train | val | test)].any()


def test_shuffling_depends_on_seed_and_epoch_only(dm):
    loader = dm.train_dataloader()
    first = torch.cat([b["row"] for b in loader])
    again = torch.cat([b["row"] for b in dm.train_dataloader()])
    torch.testing.assert_close(first, again)
    loader.sampler.set_epoch(1)
    assert not torch.equal(first, torch.cat([b["row"] for b in loader]))


def test_dims(dm):
    assert dm.dims == {"n_genes": 978, "d_pert": 1024, "n_drugs": len(dm.drug_names), "n_cells": 1}


def test_every_batch_carries_the_profiles_time_in_hours(dm):
    batch = next(iter(dm.train_dataloader()))
    assert batch["time"].dtype == torch.float32 and batch["time"].shape == (16,)
    np.testing.assert_array_equal(batch["time"].numpy(), dm.adata.obs["time"].to_numpy()[batch["row"].numpy()])
    assert (batch["time"] == 24).all()


def test_bundle_batches_carry_both_times_of_a_two_time_source(tmp_path):
    from pertdit.data.bundle import bundle_path

    module = PertDataModule(expression=str(bundle_path()), compounds=None, sources=["LJP001-002_SKBR3"],
                            preprocess={"control_kinds": ["DMSO"], "pairing": {"levels": ["plate", "source"]}},
                            split=SplitSpec(kind="kfold", by="random"), representation=RDKitFingerprint(),
                            cache_dir=str(tmp_path), batch_size=512)
    module.prepare_data()
    module.setup("fit")
    times = torch.cat([b["time"] for b in module.train_dataloader()])
    assert set(times.tolist()) == {6.0, 24.0}
