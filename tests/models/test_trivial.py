"""mean_shift is fitted by streaming the training rows: chunk by chunk gives the statistics of one batch."""

from __future__ import annotations

import torch

from pertdit.lit.trivial import TrivialModule


def _batch(n: int = 50, genes: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    control = torch.rand(n, genes, generator=g)
    return {"x0": control + torch.randn(n, genes, generator=g), "c_pre": control,
            "drug_index": torch.randint(0, 4, (n,), generator=g),
            "dose": torch.tensor([0.1, 1.0, 10.0])[torch.randint(0, 3, (n,), generator=g)]}


class RowChunks:
    """The part of a data module `fit_statistics` uses: `iter_batches` over the training rows."""

    def __init__(self, batch: dict[str, torch.Tensor]) -> None:
        self.batch = batch

    def iter_batches(self, part: str, chunk_rows: int, conditions: bool = True):
        assert part == "train" and not conditions  # no drug tokens are gathered for statistics
        n = len(self.batch["x0"])
        for start in range(0, n, chunk_rows):
            yield {k: v[start:start + chunk_rows] for k, v in self.batch.items()}


def test_fitting_in_chunks_gives_the_one_batch_statistics():
    batch = _batch()
    whole = TrivialModule(n_genes=6, n_drugs=5)
    whole.fit_statistics(batch)
    chunked = TrivialModule(n_genes=6, n_drugs=5, fit_chunk_rows=7)
    chunked.fit_statistics(RowChunks(batch))
    for name in ("global_shift", "drug_shift", "drug_seen", "dose_keys", "dose_shift"):
        torch.testing.assert_close(getattr(chunked, name), getattr(whole, name), rtol=1e-6, atol=1e-6)
    shift = batch["x0"] - batch["c_pre"]
    torch.testing.assert_close(whole.global_shift, shift.mean(0), rtol=1e-6, atol=1e-6)
    assert not whole.drug_seen[4]  # drug 4 has no training row: it falls back to the global shift


def test_predictions_use_the_dose_then_the_drug_then_the_global_shift():
    batch = _batch(seed=1)
    model = TrivialModule(n_genes=6, n_drugs=5)
    model.fit_statistics([batch])
    query = {"c_pre": torch.zeros(3, 6), "drug_index": torch.tensor([0, 0, 4]),
             "dose": torch.tensor([1.0, 3.3, 1.0])}
    shift = batch["x0"] - batch["c_pre"]
    same_dose = (batch["drug_index"] == 0) & (batch["dose"] == 1.0)
    expected = torch.stack([shift[same_dose].mean(0), shift[batch["drug_index"] == 0].mean(0), shift.mean(0)])
    torch.testing.assert_close(model.predict_batch(query), expected, rtol=1e-5, atol=1e-5)
