"""Peak memory of `pertdit evaluate` (`evaluate_h5ad`, replicate ceiling included) on a large PRED.h5ad.

    python -m pertdit.bench.eval_file_memory write PATH N GENES GROUP_SIZE   # a synthetic PRED.h5ad
    python -m pertdit.bench.eval_file_memory measure PATH                    # one JSON line

`write` fills the file block by block (`DenseH5adWriter`), so writing it needs little memory: N random
profiles of GENES genes in replicate groups of GROUP_SIZE wells (cell, drug, dose, time), X = a noisy
prediction, layers truth/control. `measure` scores it in this process, as `pertdit evaluate` does, and prints
the growth of the peak resident set (VmHWM, reset just before) over the RSS after imports, the seconds taken,
and the bytes three float32 copies of the profiles would take. Run `measure` in a fresh process per
measurement; with PYTHONPATH on another checkout it measures that checkout's `evaluate_h5ad`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from pertdit.bench.memory import _proc_status_kib, _reset_peak_rss

BLOCK = 8192


def write_synthetic_prediction(path: str | Path, n: int, genes: int, group_size: int, seed: int = 0) -> Path:
    """A PRED.h5ad of `n` profiles (`genes` genes) in replicate groups of `group_size` consecutive wells."""
    from pertdit.data.h5ad_io import DenseH5adWriter

    rng = np.random.default_rng(seed)
    group = np.arange(n) // group_size
    cell, drug = group % 7, group // 7
    dose = np.array([0.1, 1.0, 10.0])[drug % 3]
    obs = pd.DataFrame({"cell_id": [f"C{c}" for c in cell], "drug": [f"D{d}" for d in drug], "dose": dose,
                        "time": 24.0, "replicate_group": [f"G{g}" for g in group]},
                       index=[f"p{i}" for i in range(n)])
    var = pd.DataFrame(index=[f"g{j}" for j in range(genes)])
    with DenseH5adWriter(path, obs, var, {"pertdit": {"relu_predictions": False}}) as writer:
        truth, control = writer.add_layer("truth"), writer.add_layer("control")
        for start in range(0, n, BLOCK):
            rows = min(BLOCK, n - start)
            base = rng.normal(7, 2, size=(rows, genes)).astype(np.float32)
            block = slice(start, start + rows)
            control[block] = base
            truth[block] = base + rng.normal(0.3, 0.5, size=(rows, genes)).astype(np.float32)
            writer.X[block] = base + rng.normal(0.2, 0.7, size=(rows, genes)).astype(np.float32)
        return writer.commit()


def measure(path: str | Path) -> dict:
    """Score `path` with `evaluate_h5ad` (ceiling on) and report the peak RSS growth and seconds."""
    from pertdit.metrics import evaluate_h5ad

    with h5py.File(path, "r") as handle:
        n, genes = handle["X"].shape
    base = _proc_status_kib("VmRSS")
    reset = _reset_peak_rss()
    start = time.perf_counter()
    table = evaluate_h5ad(path)
    seconds = time.perf_counter() - start
    peak = _proc_status_kib("VmHWM")
    return {"profiles": int(n), "genes": int(genes), "seconds": seconds, "peak_growth_bytes": (peak - base) * 1024,
            "peak_reset": reset, "profiles_bytes": 3 * n * genes * 4,
            "ceiling_profiles": int(table["ceiling_profiles"].max()) if "ceiling_profiles" in table else None}


if __name__ == "__main__":
    command, target, *rest = sys.argv[1:]
    if command == "write":
        print(write_synthetic_prediction(target, *map(int, rest)))
    elif command == "measure":
        print(json.dumps(measure(target)))
    else:
        raise SystemExit(f"unknown command {command!r}: use write or measure")
