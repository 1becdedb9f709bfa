"""Every split on the shipped multi-cell-line collection (data=bundle; no ../shared needed): no leakage,
named hold-outs, organs, and the replicate ceiling of a real training run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate

from pertdit.data.organs import load_cell_organs, organ_summary
from pertdit.data.split_spec import SplitSpec
from tests.helpers import QUIET, compose_train

SPLITS = {
    "drug_unseen": SplitSpec(kind="unseen", test_set="auto"),
    "cell_line_unseen": SplitSpec(kind="unseen", test_set="cell_line_unseen", cell_fraction=0.2),
    "both_unseen": SplitSpec(kind="unseen", test_set="both_unseen", cell_fraction=0.2),
    "random_fold": SplitSpec(kind="kfold", by="random", fold=1),
    "drug_fold": SplitSpec(kind="kfold", by="drug", fold=2),
    "cell_fold": SplitSpec(kind="kfold", by="cell", fold=3),
    "organ_colon": SplitSpec(kind="organ", organ="colon"),
}
HELD = {"drug_unseen": ["smiles"], "cell_line_unseen": ["cell_id"], "both_unseen": ["smiles", "cell_id"],
        "random_fold": [], "drug_fold": ["smiles"], "cell_fold": ["cell_id"], "organ_colon": ["cell_id"]}


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    cfg = compose_train(["data=bundle"], cache, cache, cache)
    return instantiate(cfg.data, split=None, representation=None, _recursive_=False).load()


@pytest.mark.parametrize("name", list(SPLITS))
def test_every_split_forms_on_the_collection_without_leakage(collection, name):
    spec = SPLITS[name]
    adata = collection.copy()
    column = spec.apply(adata)
    labels = adata.obs[column].astype(str)
    parts = {p: labels.isin(spec.labels(p)).to_numpy() for p in ("train", "val", "test")}
    assert all(rows.any() for rows in parts.values()), {p: int(r.sum()) for p, r in parts.items()}
    seen = parts["train"] | parts["val"]
    for key in HELD[name]:
        values = adata.obs[key].astype(str)
        assert not set(values[parts["test"]]) & set(values[seen]), key


def test_train_without_ht115_test_on_it_on_the_collection(collection):
    spec = SplitSpec(kind="unseen", test_set="auto", test_cells=["HT115"])
    adata = collection.copy()
    column = spec.apply(adata)
    obs = adata.obs
    test = obs[column].astype(str).isin(spec.labels("test")).to_numpy()
    treated_ht115 = (~obs["is_control"] & (obs["cell_id"] == "HT115")).to_numpy()
    np.testing.assert_array_equal(test, treated_ht115)
    # CPC006 A375 has the same plate map: its compounds stay in training, on A375
    seen = obs[column].astype(str).isin(["train", "val"]).to_numpy()
    assert len(set(obs.loc[test, "smiles"]) & set(obs.loc[seen, "smiles"])) > 300


def test_organs_with_enough_data_on_the_collection(collection):
    summary = organ_summary(collection, load_cell_organs()).set_index("organ")
    assert {"skin", "colon", "breast"} <= set(summary.index[summary["holdout_ok"]])
    assert summary.loc["lung", "n_cell_lines"] >= 10 and not summary.loc["lung", "holdout_ok"]


def test_skbr3_replicate_ceiling_of_a_training_run(tmp_path):
    """mean_shift trained without SKBR3 and tested on it: 2-4 replicate plates per (compound, dose, time)."""
    from pertdit.train import train
    from tests.metrics.test_replicates import _check_against_reference

    cfg = compose_train(["data=bundle", "model=mean_shift", "split.test_cells=[SKBR3]", *QUIET], tmp_path,
                        tmp_path / "cache", tmp_path)
    train(cfg)
    table = pd.read_csv(tmp_path / "metrics.csv")
    import anndata as ad

    pred = ad.read_h5ad(tmp_path / "PRED.h5ad")
    assert set(pred.obs["cell_id"]) == {"SKBR3"} and set(pred.obs["time"]) == {6.0, 24.0}
    obs = pd.DataFrame({"cell": pred.obs["cell_id"].astype(str).to_numpy(),
                        "drug": pred.obs["drug"].astype(str).to_numpy(), "dose": pred.obs["dose"].to_numpy(),
                        "group": pred.obs["replicate_group"].to_numpy()})
    truth, control = (np.asarray(pred.layers[k], dtype=np.float64) for k in ("truth", "control"))
    _check_against_reference(table, obs, truth, np.maximum(np.asarray(pred.X, dtype=np.float64), 0), control)
