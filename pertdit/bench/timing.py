"""A warm-up + repeated-median timer that waits for the GPU (`torch.cuda.synchronize`) around each call."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of each timed call."""

    times: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def repeats(self) -> int:
        return len(self.times)

    def describe(self, warmup: int) -> str:
        return f"median of {self.repeats} timed call(s) after {warmup} warm-up call(s)"


def synchronize(device: str | torch.device) -> None:
    """Wait for queued GPU work (no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], object], device: str | torch.device, warmup: int = 1, repeats: int = 3,
            warmup_fn: Callable[[], object] | None = None) -> Timing:
    """Run `warmup_fn` (default `fn`) `warmup` times untimed, then time `fn` `repeats` times."""
    for _ in range(warmup):
        (warmup_fn or fn)()
    synchronize(device)
    times = []
    for _ in range(max(1, repeats)):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return Timing(tuple(times))


class Stopwatch:
    """`with Stopwatch(device) as sw: ...` then `sw.seconds` (synchronised on GPU)."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = device
        self.seconds = float("nan")

    def __enter__(self) -> Stopwatch:
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._start
