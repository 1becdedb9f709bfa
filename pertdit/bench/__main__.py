"""`python -m pertdit.bench --out BENCHMARKS.md` (what `make bench` runs); see docs/benchmarks.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pertdit.bench.settings import SECTIONS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pertdit.bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"), help="markdown report to write")
    parser.add_argument("--csv", type=Path, default=None, help="CSV to write (default: benchmarks.csv beside --out)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: the CPU, plus the GPU when one is available")
    parser.add_argument("--quick", action="store_true", help="tiny smoke mode: checks it runs, times nothing useful")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), metavar="SECTION",
                        help=f"subset of sections to run ({', '.join(SECTIONS)})")
    parser.add_argument("--data-dir", default=None, help="folder of the plate (default: $PERTDIT_DATA or ../shared/data)")
    parser.add_argument("--cache-dir", default=None, help="preprocessing/embedding cache (default: $PERTDIT_CACHE)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice, all usable cores; --quick uses 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale-dir", default=None,
                        help="datascale: folder for the synthetic releases, kept for reuse (default: a temp dir)")
    parser.add_argument("--scale-profiles", type=int, nargs="+", default=None, metavar="N",
                        help="datascale: release sizes (default 20000 100000 400000)")
    args = parser.parse_args(argv)
    from pertdit.bench.runner import run_benchmarks

    out, csv_path = run_benchmarks(args.out, args.csv, device=args.device, quick=args.quick, sections=args.sections,
                                   data_dir=args.data_dir, cache_dir=args.cache_dir, seed=args.seed,
                                   threads=args.threads, scale_dir=args.scale_dir,
                                   scale_profiles=args.scale_profiles)
    print(f"written: {out} and {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
