"""A split chosen by config: which column to form and which labels feed train, val and test."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import anndata as ad

from pertdit.data.holdouts import named_suffix
from pertdit.data.organs import load_cell_organs, organ_summary
from pertdit.data.splits import UNSEEN_TEST_SETS, kfold_split, organ_split, unseen_split
from pertdit.errors import SplitError

log = logging.getLogger(__name__)
KINDS = ("kfold", "unseen", "organ")
AUTO = "auto"
#: `split.test_set=all`: one training scored on each of the three unseen test sets (metrics_<set>.csv)
ALL = "all"


def resolved_test_set(test_set: str, test_cells=None, test_drugs=None) -> str:
    """The unseen test set a `test_set` value stands for: `auto` follows the named hold-outs.

    auto: both_unseen when cells and drugs are named, cell_line_unseen when only cells are, else drug_unseen.
    `all` stays `all` (every unseen test set, `SplitSpec.test_sets`).
    """
    if test_set != AUTO:
        return test_set
    if test_cells and test_drugs:
        return "both_unseen"
    return "cell_line_unseen" if test_cells else "drug_unseen"


@dataclass
class SplitSpec:
    """One Hydra `split` node. `kind`: kfold (by random/drug/cell, fold), unseen (test_set), organ (organ).

    `test_cells` / `test_drugs` name hold-outs (cell ids; drug names, pert_ids or SMILES), for every kind
    (docs/splits.md). With kind=unseen and test_set=auto, only the named units are held out, and the test set is
    the one they define; with an explicit test_set the named units replace the random choice of their kind.
    `test_set=all` (kind unseen): the one training is scored on drug_unseen, cell_line_unseen and both_unseen.
    """

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
    min_organ_cell_lines: int = 1
    min_organ_profiles: int = 30
    test_cells: list[str] = field(default_factory=list)
    test_drugs: list[str] = field(default_factory=list)
    seed: int = 0

    def __post_init__(self) -> None:
        self.test_cells = [str(c) for c in (self.test_cells or [])]
        self.test_drugs = [str(d) for d in (self.test_drugs or [])]
        if self.kind not in KINDS:
            raise SplitError(f"unknown split kind {self.kind!r}; choose one of {KINDS}")
        if self.kind != "unseen":
            return
        choices = (*UNSEEN_TEST_SETS, AUTO, ALL)
        if self.test_set not in choices:
            raise SplitError(f"unknown test set {self.test_set!r}; choose one of {choices}")
        no_cells = self.cell_fraction <= 0 and not self.test_cells
        no_drugs = self.drug_fraction <= 0 and not self.test_drugs
        for test_set in self.test_sets:
            if test_set in ("cell_line_unseen", "both_unseen") and no_cells:
                raise SplitError(f"test set {test_set!r} needs split.cell_fraction > 0 or split.test_cells")
            if test_set in ("drug_unseen", "both_unseen") and no_drugs:
                raise SplitError(f"test set {test_set!r} needs split.drug_fraction > 0 or split.test_drugs")

    @property
    def current_test_set(self) -> str:
        """The test set of an unseen split, with `auto` resolved (`all` for every unseen test set)."""
        return resolved_test_set(self.test_set, self.test_cells, self.test_drugs)

    @property
    def scores_every_test_set(self) -> bool:
        """True for `test_set=all`: one training, scored on each unseen test set (metrics_<set>.csv)."""
        return self.kind == "unseen" and self.test_set == ALL

    @property
    def test_sets(self) -> tuple[str, ...]:
        """The test sets a run scores: the three unseen ones for `test_set=all`, else the one of `name`."""
        return UNSEEN_TEST_SETS if self.scores_every_test_set else (self.name,)

    @property
    def name(self) -> str:
        """Readable name of the split, used in run directories and tables (`unseen_all` for test_set=all)."""
        if self.kind == "kfold":
            return f"{self.by}_fold{self.fold}"
        if self.scores_every_test_set:
            return f"unseen_{ALL}"
        return self.current_test_set if self.kind == "unseen" else f"organ_{self.organ}"

    def apply(self, adata: ad.AnnData) -> str:
        """Write the split column into `adata.obs` and return its name."""
        named = {"test_cells": self.test_cells, "test_drugs": self.test_drugs}
        suffix = named_suffix(self.test_cells, self.test_drugs)
        if self.kind == "kfold":
            return kfold_split(adata, by=self.by, fold=self.fold, n_folds=self.n_folds, seed=self.seed,
                               column=f"split_{self.by}_fold{self.fold}{suffix}", **named)
        if self.kind == "unseen":
            drug_fraction, cell_fraction = self.drug_fraction, self.cell_fraction
            if self.test_set == AUTO and (self.test_cells or self.test_drugs):  # hold out exactly what is named
                drug_fraction, cell_fraction = 0.0, 0.0
            column = f"split_unseen_d{drug_fraction:g}_c{cell_fraction:g}_s{self.seed}{suffix}"
            return unseen_split(adata, drug_fraction=drug_fraction, cell_fraction=cell_fraction,
                                val_fraction=self.val_fraction, seed=self.seed, column=column, **named)
        organs = load_cell_organs(self.cell_organs)
        column = organ_split(adata, organ=self.organ, cell_organs=organs, val_fraction=self.val_fraction,
                             seed=self.seed, column=f"split_organ_{self.organ}{suffix}", **named)
        self._warn_small_organ(adata, organs)
        return column

    def _warn_small_organ(self, adata: ad.AnnData, organs) -> None:
        summary = organ_summary(adata, organs, self.min_organ_cell_lines, self.min_organ_profiles)
        row = summary[summary["organ"] == self.organ]
        if len(row) and not bool(row["holdout_ok"].iloc[0]):
            log.warning("organ hold-out %r is small: %s (split.min_organ_cell_lines=%d, "
                        "split.min_organ_profiles=%d); its scores will be noisy", self.organ,
                        row["why_not"].iloc[0], self.min_organ_cell_lines, self.min_organ_profiles)

    def labels(self, stage: str, test_set: str | None = None) -> list[str]:
        """Split labels that feed `stage` (train, val or test); for test, those of `test_set` (one of
        `test_sets`; default: the first)."""
        if stage != "test":
            return [stage]
        if test_set is not None and test_set not in self.test_sets:
            raise SplitError(f"test set {test_set!r} is not scored by split {self.name!r}; "
                             f"it scores {self.test_sets}")
        if self.kind == "unseen":
            return [test_set or self.test_sets[0]]
        return [stage]
