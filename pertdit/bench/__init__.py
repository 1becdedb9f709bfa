"""Benchmarks (`make bench`): training, sampling, attention, memory, data loading and scaling on the real
plate; `python -m pertdit.bench --out BENCHMARKS.md` writes the report and a CSV. See docs/benchmarks.md.

Timings live here, never in `make test` (tests/test_bench.py only checks that `--quick` runs).
"""

from pertdit.bench.runner import run_benchmarks

__all__ = ["run_benchmarks"]
