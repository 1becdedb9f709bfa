"""Turn test predictions into the PRED.h5ad of the evaluation contract."""

from __future__ import annotations

import anndata as ad
import numpy as np

from pertdit.metrics.replicates import replicate_group_keys

PREDICTION_OBS_COLUMNS = ("cell_id", "drug", "dose", "time", "pert_id", "pert_iname", "smiles", "plate",
                          "cov_drug_dose", "cov_drug", "drug_dose")


def build_prediction_adata(dataset: ad.AnnData, rows: np.ndarray, preds: np.ndarray,
                           relu: bool = False, provenance: dict | None = None) -> ad.AnnData:
    """PRED AnnData: X = predictions (n, G), layers truth/control from the dataset rows, obs of those rows;
    `uns["pertdit"]` holds `relu_predictions`, the `rows` and the run's `provenance` (model, split, seed,
    checkpoint, config hash, package version, date, smoke_test: `pertdit.provenance.run_provenance`)."""
    rows = np.asarray(rows, dtype=np.int64)
    truth = np.asarray(dataset.X[rows], dtype=np.float32)
    control_rows = dataset.obs["paired_control_index"].to_numpy()[rows]
    control = np.asarray(dataset.X[control_rows], dtype=np.float32)
    obs = dataset.obs.iloc[rows][[c for c in PREDICTION_OBS_COLUMNS if c in dataset.obs]].copy()
    obs["replicate_group"] = replicate_group_keys(obs).to_numpy()  # what the replicate ceiling groups by
    pred = ad.AnnData(X=np.asarray(preds, dtype=np.float32), obs=obs, var=dataset.var.copy())
    pred.layers["truth"] = truth
    pred.layers["control"] = control
    pred.uns["pertdit"] = {**(provenance or {}), "relu_predictions": bool(relu), "rows": rows}
    return pred
