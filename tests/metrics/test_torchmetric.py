"""PerturbationMetrics accumulates batches and DDP ranks and scores exactly like compute_measures."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pertdit.metrics import GROUPINGS, METRICS, PerturbationMetrics, compute_measures

from .test_measures import assert_matches_reference, make_data, reference_values


def make_tensors(seed: int = 0, n: int = 90) -> dict[str, torch.Tensor]:
    """The random data of test_measures as the tensors of a batch (cells and drugs as indices)."""
    d = make_data(seed=seed, n=n)
    return {
        "pred": torch.from_numpy(d["pred"]),
        "truth": torch.from_numpy(d["truth"]),
        "control": torch.from_numpy(d["control"]),
        "cell_index": torch.from_numpy(np.unique(d["cell"], return_inverse=True)[1]).long(),
        "drug_index": torch.from_numpy(np.unique(d["drug"], return_inverse=True)[1]).long(),
        "dose": torch.from_numpy(d["dose"]).float(),
    }


def one_shot_table(t: dict[str, torch.Tensor], **options) -> pd.DataFrame:
    """compute_measures on the whole data at once."""
    return compute_measures(
        t["truth"].numpy(),
        t["pred"].numpy(),
        t["control"].numpy(),
        t["cell_index"].numpy(),
        t["drug_index"].numpy(),
        t["dose"].numpy().astype(np.float64),
        **options,
    )


def batches(t: dict[str, torch.Tensor], bounds: list[int]) -> list[dict[str, torch.Tensor]]:
    """Split the data at row `bounds` (uneven batches on purpose)."""
    edges = [0, *bounds, len(t["pred"])]
    return [{k: v[a:b] for k, v in t.items()} for a, b in zip(edges[:-1], edges[1:])]


def test_three_batches_give_the_one_shot_measures():
    t = make_tensors()
    metric = PerturbationMetrics()
    for batch in batches(t, [17, 50]):
        metric.update(**batch)
    result = metric.compute()
    expected = one_shot_table(t)
    assert list(result) == [f"{m}/{g}" for m in METRICS for g in GROUPINGS]
    np.testing.assert_allclose(list(result.values()), expected["mean"], rtol=1e-12)
    pd.testing.assert_frame_equal(metric.table(), expected)


def test_rows_seen_twice_count_once():
    """A distributed sampler pads with repeated rows: with `row` given, each row is scored once."""
    t = make_tensors()
    rows = torch.arange(len(t["pred"]))
    metric = PerturbationMetrics()
    metric.update(**t, row=rows)
    metric.update(**{k: v[:7] for k, v in t.items()}, row=rows[:7])
    np.testing.assert_allclose(list(metric.compute().values()), one_shot_table(t)["mean"], rtol=1e-12)


def test_measures_match_the_reference_computation():
    t = make_tensors(seed=6)
    metric = PerturbationMetrics(relu=True, control_reference="cell_mean")
    for batch in batches(t, [30, 60]):
        metric.update(**batch)
    reference = reference_values(
        t["truth"].numpy(), t["pred"].numpy(), t["control"].numpy(), t["cell_index"].numpy(),
        t["drug_index"].numpy(), t["dose"].numpy(), relu=True, control_reference="cell_mean",
    )  # fmt: skip
    assert_matches_reference(metric.table(), reference)


def test_options_are_passed_on():
    t = make_tensors(seed=7)
    t["pred"] = t["pred"] - 1.5
    metric = PerturbationMetrics(relu=True, control_reference="cell_mean")
    metric.update(**t)
    pd.testing.assert_frame_equal(metric.table(), one_shot_table(t, relu=True, control_reference="cell_mean"))
    with pytest.raises(ValueError, match="control_reference"):
        PerturbationMetrics(control_reference="plate")


def test_zero_updates_give_nan_without_crashing():
    metric = PerturbationMetrics()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics warns that compute() came before update()
        result = metric.compute()
        table = metric.table()
    assert len(result) == 10 and all(np.isnan(v) for v in result.values())
    assert (table["n_groups"] == 0).all()


def test_reset_forgets_the_samples_and_update_after_compute_counts_them():
    t = make_tensors(seed=8)
    first, second = batches(t, [45])
    metric = PerturbationMetrics()
    metric.update(**first)
    metric.compute()
    metric.update(**second)
    pd.testing.assert_frame_equal(metric.table(), one_shot_table(t))
    metric.reset()
    metric.update(**second)
    pd.testing.assert_frame_equal(metric.table(), one_shot_table(batches(t, [45])[1]))


def test_batch_shape_mismatch_is_rejected():
    t = make_tensors(n=10)
    metric = PerturbationMetrics()
    with pytest.raises(ValueError, match="one shape"):
        metric.update(**{**t, "pred": t["pred"][:, :3]})
    with pytest.raises(ValueError, match="dose"):
        metric.update(**{**t, "dose": t["dose"][:4]})


def _ddp_worker(rank: int, world_size: int, tmp: str) -> None:
    """One gloo rank: score its uneven share of the data (two batches), then again with rank 1 idle."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=world_size)
    try:
        t = make_tensors()
        share = batches(t, [53])[rank]  # rank 0 gets 53 rows, rank 1 gets 37
        metric = PerturbationMetrics()
        for batch in batches(share, [20]):
            metric.update(**batch)
        result = metric.compute()
        metric.table().to_csv(f"{tmp}/table_{rank}.csv", index=False)
        torch.save(result, f"{tmp}/result_{rank}.pt")
        metric.reset()
        if rank == 0:  # rank 1 sees no batch at all this time
            metric.update(**share)
        torch.save(metric.compute(), f"{tmp}/result_idle_{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_two_gloo_ranks_give_the_single_process_measures(tmp_path: Path):
    """Also when one rank saw no batch (its empty states must still join the gather)."""
    mp.spawn(_ddp_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    expected = one_shot_table(make_tensors())
    for rank in range(2):
        result = torch.load(tmp_path / f"result_{rank}.pt")
        np.testing.assert_allclose(list(result.values()), expected["mean"], rtol=1e-9)
        table = pd.read_csv(tmp_path / f"table_{rank}.csv")
        assert (table["n_groups"] == expected["n_groups"]).all()
        assert (table["n_nan"] == expected["n_nan"]).all()
    rank0_only = one_shot_table(batches(make_tensors(), [53])[0])
    for rank in range(2):
        result = torch.load(tmp_path / f"result_idle_{rank}.pt")
        np.testing.assert_allclose(list(result.values()), rank0_only["mean"], rtol=1e-9)
