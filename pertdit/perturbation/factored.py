"""Token features stored once per part: the description tokens once per SMILES, the dose-prompt tokens once
per prompt, joined per batch.

A condition (SMILES, dose) of a text representation is [description tokens | prompt tokens]. Stored per
condition and padded to the longest one, full L1000 (~20k compounds x ~6 doses, captions of up to 512 tokens,
d_text 1024) would take tens of GB and repeat each description for every dose. `FactoredFeatures` keeps each
part as a ragged `TokenTable` and builds a batch's tokens on demand, padded to that batch's longest sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pertdit.errors import RepresentationError
from pertdit.perturbation.base import Condition, PerturbationFeatures, condition_rows


@dataclass
class TokenTable:
    """Ragged token sequences: sequence k is `tokens[offsets[k]:offsets[k + 1]]`; tokens (T, D) float16
    (usually a read-only memory map), offsets (K + 1,) int64."""

    tokens: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


class FactoredFeatures:
    """N conditions whose tokens are the concatenation of one sequence from each table (`index` (N, P) says
    which); the interface of `PerturbationFeatures` (`pairs`, `lookup`, `gather`, `dim`, `pooled`), with
    `tokens` / `mask` built whole on first use (for small sets only)."""

    def __init__(self, tables: Sequence[TokenTable], index: np.ndarray, pairs: list[Condition],
                 parts: Sequence[str] = ()) -> None:
        self.tables, self.index, self.pairs = list(tables), np.asarray(index, dtype=np.int64), pairs
        self.parts = tuple(parts)
        if self.index.shape != (len(pairs), len(self.tables)):
            raise RepresentationError(f"index {self.index.shape} does not match {len(pairs)} conditions x "
                                      f"{len(self.tables)} token tables")
        self._row = {pair: i for i, pair in enumerate(pairs)}
        self._lengths = np.stack([t.lengths[self.index[:, p]] for p, t in enumerate(self.tables)], axis=1)
        self._whole: PerturbationFeatures | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def dim(self) -> int:
        return int(self.tables[0].tokens.shape[1])

    @property
    def max_length(self) -> int:
        """L of the longest condition (what a per-condition layout would pad every condition to)."""
        return int(self._lengths.sum(axis=1).max(initial=0))

    def lookup(self, smiles: Sequence[str], doses: Sequence[float],
               times: Sequence[float] | None = None) -> np.ndarray:
        """(N,) int64 row of each (SMILES, dose) condition, or (SMILES, dose, time) condition when the
        features were embedded per time (`times` ignored otherwise)."""
        return condition_rows(self._row, smiles, doses, times)

    def gather(self, rows: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """tokens (B, L, D) float32 and mask (B, L) of conditions `rows`, L = the longest of these B."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self._lengths[rows]
        totals = lengths.sum(axis=1)
        tokens = np.empty((len(rows), int(totals.max(initial=1)), self.dim), dtype=np.float32)
        mask = np.arange(tokens.shape[1])[None, :] < totals[:, None]
        for i, row in enumerate(rows):
            position = 0
            for p, table in enumerate(self.tables):
                start = table.offsets[self.index[row, p]]
                n = int(lengths[i, p])
                tokens[i, position:position + n] = table.tokens[start:start + n]
                position += n
            tokens[i, position:] = 0.0  # padding (written once, not zeroed first)
        return tokens, mask

    def pooled(self, chunk: int = 256) -> np.ndarray:
        """(N, D) float32 mean of each condition's tokens."""
        out = np.zeros((len(self), self.dim), dtype=np.float32)
        for start in range(0, len(self), chunk):
            tokens, mask = self.gather(np.arange(start, min(start + chunk, len(self))))
            out[start:start + len(tokens)] = tokens.sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1)
        return out

    def take(self, rows: Sequence[int] | np.ndarray) -> PerturbationFeatures:
        """A padded, in-memory copy holding only `rows` (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        tokens, mask = self.gather(rows)
        return PerturbationFeatures(tokens.astype(np.float16), mask, [self.pairs[i] for i in rows])

    def _materialised(self) -> PerturbationFeatures:
        if self._whole is None:
            whole = self.take(np.arange(len(self)))
            length = self.max_length or 1
            tokens = np.zeros((len(self), length, self.dim), dtype=np.float16)
            mask = np.zeros((len(self), length), dtype=bool)
            tokens[:, :whole.tokens.shape[1]], mask[:, :whole.mask.shape[1]] = whole.tokens, whole.mask
            self._whole = PerturbationFeatures(tokens, mask, self.pairs)
        return self._whole

    @property
    def tokens(self) -> np.ndarray:
        """(N, L, D) float16, every condition padded to the longest (built on first use; small sets only)."""
        return self._materialised().tokens

    @property
    def mask(self) -> np.ndarray:
        """(N, L) bool for `tokens`."""
        return self._materialised().mask
