"""Turn test predictions into the PRED.h5ad of the evaluation contract."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from pertdit.metrics.replicates import BLOCK_ROWS as CEILING_BLOCK_ROWS
from pertdit.metrics.replicates import replicate_group_keys, streamed_ceiling

PREDICTION_OBS_COLUMNS = ("cell_id", "drug", "dose", "time", "pert_id", "pert_iname", "smiles", "plate",
                          "cov_drug_dose", "cov_drug", "drug_dose")
#: profiles written per block by `write_prediction_h5ad`
BLOCK_ROWS = 8192


def prediction_obs(dataset: ad.AnnData, rows: np.ndarray) -> pd.DataFrame:
    """obs of the PRED file: the contract's columns of the dataset `rows`, and each row's replicate group."""
    obs = dataset.obs.iloc[rows][[c for c in PREDICTION_OBS_COLUMNS if c in dataset.obs]].copy()
    obs["replicate_group"] = replicate_group_keys(obs).to_numpy()  # what the replicate ceiling groups by
    return obs


def prediction_uns(rows: np.ndarray, relu: bool, dataset: ad.AnnData | None = None,
                   provenance: dict | None = None) -> dict:
    """uns of the PRED file: the run's `provenance` (model, split, seed, checkpoint, config hash, package
    version, date, smoke_test: `pertdit.provenance.run_provenance`), whether predictions are ReLU'd before
    scoring, the dataset rows, and the drug representation that produced the conditions (with any
    substitution it made), when the dataset records it."""
    meta = {**(provenance or {}), "relu_predictions": bool(relu), "rows": np.asarray(rows, dtype=np.int64)}
    representation = {} if dataset is None else dataset.uns.get("pertdit", {}).get("representation")
    if representation:
        meta["representation"] = dict(representation)
    return {"pertdit": meta}


def build_prediction_adata(dataset: ad.AnnData, rows: np.ndarray, preds: np.ndarray,
                           relu: bool = False, provenance: dict | None = None) -> ad.AnnData:
    """PRED AnnData: X = predictions (n, G), layers truth/control from the dataset rows, obs of those rows,
    uns of `prediction_uns` (with the run's `provenance`)."""
    rows = np.asarray(rows, dtype=np.int64)
    truth = np.asarray(dataset.X[rows], dtype=np.float32)
    control_rows = dataset.obs["paired_control_index"].to_numpy()[rows]
    control = np.asarray(dataset.X[control_rows], dtype=np.float32)
    pred = ad.AnnData(X=np.asarray(preds, dtype=np.float32), obs=prediction_obs(dataset, rows),
                      var=dataset.var.copy())
    pred.layers["truth"] = truth
    pred.layers["control"] = control
    pred.uns.update(prediction_uns(rows, relu, dataset, provenance))
    return pred


def write_prediction_h5ad(dataset: ad.AnnData, rows: np.ndarray, preds: np.ndarray, path: str | Path,
                          relu: bool = False, block_rows: int = BLOCK_ROWS,
                          provenance: dict | None = None, layers: dict[str, np.ndarray] | None = None) -> Path:
    """Write the PRED.h5ad of `build_prediction_adata` block by block: truth and control profiles are read
    from the dataset (memory-mapped at full size) and written `block_rows` at a time, so only the predictions
    (and any extra `layers`, each (n, G): the predicted spread) are ever held whole. Atomic: the file appears
    only when complete."""
    from pertdit.data.h5ad_io import DenseH5adWriter

    rows = np.asarray(rows, dtype=np.int64)
    control_rows = dataset.obs["paired_control_index"].to_numpy()[rows]
    with DenseH5adWriter(path, prediction_obs(dataset, rows), dataset.var.copy(),
                         prediction_uns(rows, relu, dataset, provenance)) as writer:
        truth, control = writer.add_layer("truth"), writer.add_layer("control")
        extra = {name: writer.add_layer(name) for name in (layers or {})}
        for start in range(0, len(rows), block_rows):
            block = slice(start, start + block_rows)
            writer.X[block] = np.asarray(preds[block], dtype=np.float32)
            for name, target in extra.items():
                target[block] = np.asarray(layers[name][block], dtype=np.float32)
            truth[block] = np.asarray(dataset.X[rows[block]], dtype=np.float32)
            control[block] = np.asarray(dataset.X[control_rows[block]], dtype=np.float32)
        return writer.commit()


def ceiling_of_rows(dataset: ad.AnnData, rows: np.ndarray, preds: np.ndarray, relu: bool = False,
                    control_reference: str = "paired", block_rows: int = CEILING_BLOCK_ROWS) -> pd.DataFrame:
    """The replicate ceiling table (`pertdit.metrics.replicates`) of predictions `preds` (n, G) of dataset
    `rows` (n,), grouped as their PRED.h5ad would be (`prediction_obs`), reading truth and control profiles
    from the (memory-mapped) dataset one block of whole replicate groups at a time."""
    rows = np.asarray(rows, dtype=np.int64)
    obs = prediction_obs(dataset, rows)
    control_rows = dataset.obs["paired_control_index"].to_numpy()[rows]

    def read(block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.asarray(dataset.X[rows[block]], dtype=np.float32), np.asarray(preds[block], dtype=np.float32),
                np.asarray(dataset.X[control_rows[block]], dtype=np.float32))

    return streamed_ceiling(read, obs["cell_id"].to_numpy(), obs["drug"].to_numpy(), obs["dose"].to_numpy(float),
                            obs["replicate_group"].to_numpy(), relu=relu, control_reference=control_reference,
                            block_rows=block_rows)
