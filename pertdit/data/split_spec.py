"""A split chosen by config: which column to form and which labels feed train, val and test."""

from __future__ import annotations

from dataclasses import dataclass

import anndata as ad

from pertdit.data.organs import load_cell_organs
from pertdit.data.splits import UNSEEN_TEST_SETS, kfold_split, organ_split, unseen_split
from pertdit.errors import SplitError

KINDS = ("kfold", "unseen", "organ")


@dataclass
class SplitSpec:
    """One Hydra `split` node. `kind`: kfold (by random/drug/cell, fold), unseen (test_set), organ (organ)."""

    kind: str = "unseen"
    by: str = "random"
    fold: int = 0
    n_folds: int = 5
    test_set: str = "drug_unseen"
    drug_fraction: float = 0.2
    cell_fraction: float = 0.0
    val_fraction: float = 0.15
    organ: str = "lung"
    cell_organs: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SplitError(f"unknown split kind {self.kind!r}; choose one of {KINDS}")
        if self.kind == "unseen" and self.test_set not in UNSEEN_TEST_SETS:
            raise SplitError(f"unknown test set {self.test_set!r}; choose one of {UNSEEN_TEST_SETS}")
        needs_cells = self.test_set in ("cell_line_unseen", "both_unseen")
        if self.kind == "unseen" and needs_cells and self.cell_fraction <= 0:
            raise SplitError(f"test set {self.test_set!r} needs split.cell_fraction > 0")
        if self.kind == "unseen" and self.test_set in ("drug_unseen", "both_unseen") and self.drug_fraction <= 0:
            raise SplitError(f"test set {self.test_set!r} needs split.drug_fraction > 0")

    @property
    def name(self) -> str:
        """Readable name of the split, used in run directories and tables."""
        if self.kind == "kfold":
            return f"{self.by}_fold{self.fold}"
        return self.test_set if self.kind == "unseen" else f"organ_{self.organ}"

    def apply(self, adata: ad.AnnData) -> str:
        """Write the split column into `adata.obs` (if absent) and return its name."""
        if self.kind == "kfold":
            return kfold_split(adata, by=self.by, fold=self.fold, n_folds=self.n_folds, seed=self.seed)
        if self.kind == "unseen":
            column = f"split_unseen_d{self.drug_fraction:g}_c{self.cell_fraction:g}_s{self.seed}"
            return unseen_split(adata, drug_fraction=self.drug_fraction, cell_fraction=self.cell_fraction,
                                val_fraction=self.val_fraction, seed=self.seed, column=column)
        return organ_split(adata, organ=self.organ, cell_organs=load_cell_organs(self.cell_organs),
                           val_fraction=self.val_fraction, seed=self.seed)

    def labels(self, stage: str) -> list[str]:
        """Split labels that feed `stage` (train, val or test)."""
        if stage == "test" and self.kind == "unseen":
            return [self.test_set]
        return [stage]
