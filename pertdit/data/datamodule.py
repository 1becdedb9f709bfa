"""LightningDataModule serving (x0, c_pre, c_pert, covariates) batches; controls are looked up by index."""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pertdit.data.preprocess import PreprocessConfig
from pertdit.data.sources import load_dataset
from pertdit.data.split_spec import SplitSpec
from pertdit.data.splits import split_rows
from pertdit.data.val_subset import strided_rows
from pertdit.errors import DataError

log = logging.getLogger(__name__)
Batch = dict[str, torch.Tensor]


class RowDataset(Dataset):
    """Row positions of one split; the data module's collate gathers the tensors for a whole batch at once."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> int:
        return int(self.rows[i])


class EpochSeededSampler(Sampler[int]):
    """Random order that depends only on (seed, epoch): resumed runs see the same batches as uninterrupted ones.

    Lightning calls `set_epoch` at the start of every epoch.
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n


class BatchAssembler:
    """Gathers a batch from shared tensors: expression (N, G), control index (N,), and the condition features
    (`features.gather(rows)`: tokens padded to the batch's own longest sequence)."""

    def __init__(self, X: torch.Tensor, control_index: torch.Tensor, condition_index: torch.Tensor,
                 features: Any, dose: torch.Tensor, drug_index: torch.Tensor, cell_index: torch.Tensor,
                 time: torch.Tensor | None = None) -> None:
        self.X, self.control_index, self.condition_index = X, control_index, condition_index
        self.features = features
        self.dose, self.drug_index, self.cell_index = dose, drug_index, cell_index
        self.time = time if time is not None else torch.full((X.shape[0],), float("nan"))

    def __call__(self, rows: list[int], conditions: bool = True) -> Batch:
        """The batch of dataset `rows`; `conditions=False` leaves out `c_pert`/`c_pert_mask` (statistics that
        only need profiles, e.g. `mean_shift` fitting, then never gather drug tokens)."""
        rows_t = torch.as_tensor(rows, dtype=torch.long)
        batch = {
            "x0": self.X[rows_t],
            "c_pre": self.X[self.control_index[rows_t]],
            "dose": self.dose[rows_t],
            "time": self.time[rows_t],
            "drug_index": self.drug_index[rows_t],
            "cell_index": self.cell_index[rows_t],
            "row": rows_t,
        }
        if conditions:
            tokens, mask = self.features.gather(self.condition_index[rows_t].numpy())
            batch["c_pert"] = torch.from_numpy(tokens)
            batch["c_pert_mask"] = torch.from_numpy(mask)
        return batch


def _working_copy(adata: ad.AnnData) -> ad.AnnData:
    """A copy to add split columns to; a memory-mapped `X` (a full-size dataset cache) is shared, not read."""
    if not isinstance(adata.X, np.memmap):
        return adata.copy()
    return ad.AnnData(X=adata.X, obs=adata.obs.copy(), var=adata.var.copy(), uns=copy.deepcopy(dict(adata.uns)))


def _condition_table(obs, columns: list[str]):
    """The condition columns of treated rows (`time` as float hours); a DataError naming the sources whose
    profiles have no time when the conditions need one."""
    if "time" in columns:
        if "time" not in obs:
            raise DataError("perturbation.condition_on_time=true, but the dataset has no obs['time']")
        missing = obs["time"].astype(float).isna().to_numpy()
        if missing.any():
            where = obs.loc[missing, "source"].astype(str).value_counts().to_dict() if "source" in obs else {}
            raise DataError(f"perturbation.condition_on_time=true, but {int(missing.sum())} treated profiles have "
                            f"no time (per source: {where}); keep profiles with a time (data.times=[...], "
                            "data.sources=[...]) or set perturbation.condition_on_time=false")
    return obs[columns].astype({"dose": float, **({"time": float} if "time" in columns else {})})


def _condition_lists(table) -> tuple[list[str], list[float], list[float] | None]:
    """SMILES, doses and times (None without a time column) of a condition table."""
    times = list(table["time"]) if "time" in table else None
    return list(table["smiles"]), list(table["dose"]), times


class PertDataModule(L.LightningDataModule):
    """Dataset + split + drug representation -> train/val/test loaders of dict batches (docs/ARCHITECTURE.md)."""

    def __init__(self, expression: str | None, compounds: str | None = None, inst_info: str | None = None,
                 pert_info: str | None = None, preprocess: dict | PreprocessConfig | None = None,
                 split: SplitSpec | dict | None = None, representation: Any = None,
                 cache_dir: str | None = None, batch_size: int = 64, eval_batch_size: int | None = None,
                 num_workers: int = 0, shuffle_seed: int = 0, sources: Sequence[str] | None = None,
                 times: Sequence[float] | None = None, val_max_rows: int | None = None,
                 geo: dict | None = None, basal: str | None = None) -> None:
        super().__init__()
        self.basal = basal  # basal (control) profiles per cell line, for `pertdit predict` on unseen cell lines
        self.source = {"expression": expression, "compounds": compounds, "inst_info": inst_info,
                       "pert_info": pert_info, "geo": geo}
        config = preprocess if isinstance(preprocess, PreprocessConfig) else PreprocessConfig(
            **dict(preprocess or {}))
        selection = {k: v for k, v in (("sources", sources), ("times", times)) if v is not None}
        self.preprocess_config = dataclasses.replace(config, **selection) if selection else config
        self.split = split if isinstance(split, SplitSpec) or split is None else SplitSpec(**dict(split))
        self.split = self.split or SplitSpec()
        self.representation = representation
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.shuffle_seed = shuffle_seed
        self.val_max_rows = val_max_rows  # validation during training: a strided subset (data/val_subset.py)
        self.adata: ad.AnnData | None = None
        self._loaded: ad.AnnData | None = None
        self.rows: dict[str, np.ndarray] = {}
        self._features = None  # the drug features, embedded (or read from the cache) once

    # -- building ------------------------------------------------------------------------------------------
    def load(self) -> ad.AnnData:
        """The preprocessed dataset (cached on disk after the first call, in memory after the first load)."""
        if self._loaded is None:
            self._loaded = load_dataset(preprocess_config=self.preprocess_config, cache_dir=self.cache_dir,
                                        **self.source)
        return self._loaded

    def prepare_data(self) -> None:
        adata = self.load()
        if self.representation is not None:
            self._encode_conditions(adata)

    def setup(self, stage: str | None = None) -> None:
        if self.adata is not None:
            return
        adata = _working_copy(self.load())
        self.split_column = self.split.apply(adata)
        for part in ("train", "val"):
            self.rows[part] = split_rows(adata, self.split_column, self.split.labels(part))
        self.test_set_rows = {name: split_rows(adata, self.split_column, self.split.labels("test", name))
                              for name in self.split.test_sets}
        self.select_test_set(self.split.test_sets[0])
        self.val_subset_rows = strided_rows(self.rows["val"], adata.obs, self.val_max_rows)
        treated = ~adata.obs["is_control"].to_numpy(bool)
        self.drug_names = sorted(adata.obs.loc[treated, "drug"].astype(str).unique())
        self.cell_names = sorted(adata.obs["cell_id"].astype(str).unique())
        self.genes = list(adata.var_names)
        cond_index, features = self._encode_conditions(adata)
        adata.uns.setdefault("pertdit", {})["representation"] = self.representation.provenance()
        drug_lookup = {d: i for i, d in enumerate(self.drug_names)}
        cell_lookup = {c: i for i, c in enumerate(self.cell_names)}
        self.assembler = BatchAssembler(
            X=torch.from_numpy(np.ascontiguousarray(adata.X, dtype=np.float32)),
            control_index=torch.as_tensor(adata.obs["paired_control_index"].to_numpy(), dtype=torch.long),
            condition_index=torch.as_tensor(cond_index, dtype=torch.long), features=features,
            dose=torch.as_tensor(adata.obs["dose"].to_numpy(), dtype=torch.float32),
            time=torch.as_tensor(adata.obs["time"].to_numpy(dtype=np.float32) if "time" in adata.obs
                                 else np.full(adata.n_obs, np.nan, dtype=np.float32)),
            drug_index=torch.as_tensor([drug_lookup.get(d, -1) for d in adata.obs["drug"].astype(str)]),
            cell_index=torch.as_tensor([cell_lookup[c] for c in adata.obs["cell_id"].astype(str)]))
        self.adata = adata
        tests = self.test_set_rows if self.split.scores_every_test_set else {"test": self.rows["test"]}
        sizes = {part: len(rows) for part, rows in {"train": self.rows["train"], "val": self.rows["val"],
                                                      **tests}.items()}
        log.info("split %s: %s; validation during training on %d of the %d val rows (data.val_max_rows=%s)",
                 self.split_column, sizes, len(self.val_subset_rows), len(self.rows["val"]),
                 self.val_max_rows)

    def select_test_set(self, name: str) -> None:
        """Serve test set `name` (one of `split.test_sets`) as `rows["test"]` and from `test_dataloader`."""
        if name not in self.test_set_rows:
            raise KeyError(f"test set {name!r} is not one of this split's {list(self.test_set_rows)}")
        self.test_set = name
        self.rows["test"] = self.test_set_rows[name]

    def condition_columns(self) -> list[str]:
        """The obs columns that identify a drug condition: smiles and dose, and time when the representation
        conditions on time (`perturbation.condition_on_time`)."""
        timed = bool(getattr(self.representation, "condition_on_time", False))
        return ["smiles", "dose", "time"] if timed else ["smiles", "dose"]

    def _encode_conditions(self, adata: ad.AnnData) -> tuple[np.ndarray, Any]:
        """Per-row condition index into the unique (SMILES, dose) features, or (SMILES, dose, time) ones with
        `condition_on_time` (controls map to row 0), and those features (`PerturbationFeatures` or
        `FactoredFeatures`)."""
        if self.representation is None:
            raise ValueError("PertDataModule needs a drug representation (config group `perturbation`)")
        from pertdit.perturbation import embed_conditions

        columns = self.condition_columns()
        treated = ~adata.obs["is_control"].to_numpy(bool)
        conditions = _condition_table(adata.obs.loc[treated], columns)
        cache = Path(self.cache_dir) / "embeddings" if self.cache_dir else None
        if self._features is None:  # once per data module, not at each prepare_data / setup
            smiles, doses, times = _condition_lists(conditions.drop_duplicates())
            self._features = embed_conditions(self.representation, smiles, doses, cache, times=times)
        features = self._features
        index = np.zeros(adata.n_obs, dtype=np.int64)  # controls are never served; row 0 is a placeholder
        smiles, doses, times = _condition_lists(conditions)
        index[treated] = features.lookup(smiles, doses, times)
        return index, features

    # -- what models need to know ----------------------------------------------------------------------------
    @property
    def dims(self) -> dict[str, int]:
        """Sizes a model is built with: n_genes, d_pert, n_drugs, n_cells."""
        return {"n_genes": len(self.genes), "d_pert": int(self.assembler.features.dim),
                "n_drugs": len(self.drug_names), "n_cells": len(self.cell_names)}

    def batch_of_rows(self, rows: np.ndarray, conditions: bool = True) -> Batch:
        """Assemble a batch for arbitrary dataset rows (used by baselines that fit statistics)."""
        return self.assembler(list(np.asarray(rows, dtype=np.int64)), conditions=conditions)

    def iter_batches(self, part: str = "train", chunk_rows: int = 4096, conditions: bool = False):
        """The rows of a split as consecutive batches of at most `chunk_rows` (statistics over a whole split
        in bounded memory)."""
        rows = self.rows[part]
        for start in range(0, len(rows), chunk_rows):
            yield self.batch_of_rows(rows[start:start + chunk_rows], conditions=conditions)

    # -- loaders -------------------------------------------------------------------------------------------
    def _loader(self, part: str, shuffle: bool, rows: np.ndarray | None = None) -> DataLoader:
        dataset = RowDataset(self.rows[part] if rows is None else rows)
        sampler = EpochSeededSampler(len(dataset), self.shuffle_seed) if shuffle else None
        return DataLoader(dataset, batch_size=self.batch_size if shuffle else self.eval_batch_size,
                          sampler=sampler, collate_fn=self.assembler, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0,
                          # its own generator: starting an epoch does not draw from the global RNG, so a
                          # resumed run's random draws match an uninterrupted one's (pertdit.callbacks.ExactResume)
                          generator=torch.Generator().manual_seed(self.shuffle_seed))

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """The validation subset (every k-th val row, at most `val_max_rows`); `rows["val"]` holds them all."""
        return self._loader("val", shuffle=False, rows=self.val_subset_rows)

    def test_dataloader(self) -> DataLoader:
        """Every row of the selected test set (`select_test_set`), always."""
        return self._loader("test", shuffle=False)
