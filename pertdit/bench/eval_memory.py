"""Peak memory of scoring N test profiles with `PerturbationMetrics` (streamed) in a fresh child process.

`python -m pertdit.bench.eval_memory N GENES GROUP_SIZE` prints one JSON line: the growth of the peak
resident set (VmHWM) over the process's RSS after imports, the seconds taken, and the bytes that three float32
copies of the N profiles (truth, prediction, control) would take. Batches of 64 random profiles are drawn one
at a time, so the data themselves never sit in memory; (cell, drug, dose) groups hold GROUP_SIZE samples.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch

from pertdit.bench.memory import _proc_status_kib, _reset_peak_rss

BATCH = 64


def measure(n: int, genes: int, group_size: int) -> dict:
    from pertdit.metrics import PerturbationMetrics

    metric = PerturbationMetrics()
    rng = np.random.default_rng(0)
    n_groups = max(1, n // group_size)
    base = _proc_status_kib("VmRSS")
    reset = _reset_peak_rss()
    start = time.perf_counter()
    for first in range(0, n, BATCH):
        rows = np.arange(first, min(first + BATCH, n))
        group = rows % n_groups
        truth = torch.from_numpy(rng.normal(7, 2, size=(len(rows), genes)).astype(np.float32))
        metric.update(truth + 0.1 * torch.randn_like(truth), truth, truth - 0.3,
                      torch.from_numpy(group % 13), torch.from_numpy(group // 13), torch.full((len(rows),), 10.0),
                      row=torch.from_numpy(rows))
    table = metric.table()
    seconds = time.perf_counter() - start
    peak = _proc_status_kib("VmHWM")
    return {"profiles": n, "genes": genes, "groups": int(table["n_groups"].iloc[1]), "seconds": seconds,
            "peak_growth_bytes": (peak - base) * 1024, "peak_reset": reset,
            "profiles_bytes": 3 * n * genes * 4}


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(json.dumps(measure(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))))
