"""Small multi-cell-line L1000-like AnnData built in tests (the real plate has one cell line only)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from pertdit.data.preprocess import PreprocessConfig, preprocess


def raw_anndata(n_cells: int = 5, n_drugs: int = 10, doses=(0.1, 1.0, 10.0), reps: int = 2, n_controls: int = 3,
                n_genes: int = 24, seed: int = 0, n_smiles: int | None = None) -> ad.AnnData:
    """Raw profiles x genes with the GCT metadata names (pert_type, pert_id, pert_dose, cell_id, det_plate).

    `n_smiles`: when smaller than `n_drugs`, drug d gets the SMILES of drug d % n_smiles, so several
    `pert_id`s / names share one structure (as on full L1000).
    """
    n_smiles = n_smiles or n_drugs
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_cells):
        cell = f"CELL{c}"
        rows += [dict(cell_id=cell, pert_type="ctl_vehicle", pert_id="DMSO", pert_iname="DMSO", pert_dose=-666.0,
                      canonical_smiles="", det_plate=f"P{c}") for _ in range(n_controls)]
        for d in range(n_drugs):
            for dose in doses:
                rows += [dict(cell_id=cell, pert_type="trt_cp", pert_id=f"BRD-{d:04d}", pert_iname=f"drug{d}",
                              pert_dose=dose, canonical_smiles="C" * (d % n_smiles + 1) + "O",
                              det_plate=f"P{c}")
                         for _ in range(reps)]
    obs = pd.DataFrame(rows, index=[f"prof{i}" for i in range(len(rows))])
    base = rng.uniform(4, 12, size=n_genes)
    cell_effect = rng.normal(0, 0.5, size=(n_cells, n_genes))
    drug_effect = rng.normal(0, 0.5, size=(n_drugs, n_genes))
    X = np.empty((len(obs), n_genes), dtype=np.float32)
    for i, r in enumerate(obs.itertuples()):
        x = base + cell_effect[int(r.cell_id[4:])]
        if r.pert_type == "trt_cp":
            x = x + drug_effect[int(r.pert_id[4:])] * np.log10(1 + r.pert_dose)
        X[i] = x + rng.normal(0, 0.1, size=n_genes)
    var = pd.DataFrame({"entrez_id": [str(1000 + g) for g in range(n_genes)]},
                       index=[f"GENE{g}" for g in range(n_genes)])
    return ad.AnnData(X=X, obs=obs, var=var)


def dataset(transform: str = "none", **kwargs) -> ad.AnnData:
    """The preprocessed dataset AnnData of `raw_anndata(**kwargs)`."""
    return preprocess(raw_anndata(**kwargs), config=PreprocessConfig(transform=transform, min_observations=2))
