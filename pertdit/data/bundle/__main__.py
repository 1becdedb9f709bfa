"""`python -m pertdit.data.bundle build|info`: rebuild the shipped L1000 bundle, or summarise one."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pertdit.config import default_data_dir
from pertdit.errors import PertDiTError

from .build import build_bundle
from .catalog import SOURCES
from .load import SHIPPED_DIR, bundle_path, load_bundle


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def _build(args: argparse.Namespace) -> int:
    paths = build_bundle(args.src, args.out, include=args.include, exclude=args.exclude)
    for role, path in paths.items():
        print(f"{role}: {path}")
    print(f"total size: {_size_mb(Path(args.out)):.2f} MB")
    return 0


def source_table(obs) -> "pd.DataFrame":
    """Per source: profiles, treated, controls of each kind, cell lines, compounds and times (h)."""
    import pandas as pd

    rows = {}
    for name, group in obs.groupby("source", observed=True, sort=False):
        treated = group["control_kind"].astype(str) == ""
        kinds = group.loc[~treated, "control_kind"].astype(str).value_counts()
        rows[name] = {"profiles": len(group), "treated": int(treated.sum()),
                      **{f"ctl_{k}": int(v) for k, v in kinds.items()},
                      "cell_lines": group["cell_id"].nunique(), "compounds": group.loc[treated, "pert_id"].nunique(),
                      "times_h": ",".join(f"{t:g}" for t in sorted(group["time"].unique()))}
    table = pd.DataFrame.from_dict(rows, orient="index")
    controls = sorted(c for c in table.columns if c.startswith("ctl_"))
    table[controls] = table[controls].fillna(0).astype(int)
    return table[["profiles", "treated", *controls, "cell_lines", "compounds", "times_h"]]


def _info(args: argparse.Namespace) -> int:
    adata = load_bundle(bundle_path(args.dir))
    print(f"{bundle_path(args.dir)}: {adata.n_obs} profiles x {adata.n_vars} genes, "
          f"{_size_mb(Path(args.dir or SHIPPED_DIR)):.2f} MB in the folder")
    print(source_table(adata.obs).to_string())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: `build` writes the bundle, `info` prints its profiles per source, cell line and time."""
    parser = argparse.ArgumentParser(prog="python -m pertdit.data.bundle", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="harmonise the raw collection into a bundle folder")
    build.add_argument("--src", type=Path, default=None,
                       help="raw collection (default: $PERTDIT_DATA, else ../shared/data above this folder)")
    build.add_argument("--out", type=Path, default=SHIPPED_DIR, help=f"output folder (default: {SHIPPED_DIR})")
    names = [s.name for s in SOURCES]
    build.add_argument("--include", nargs="*", default=[], choices=names, metavar="SOURCE",
                       help="opt-in sources left out of the shipped copy (LJP009_A375_24H: research-use licence)")
    build.add_argument("--exclude", nargs="*", default=[], choices=names, metavar="SOURCE",
                       help="sources to leave out")
    info = commands.add_parser("info", help="profiles per source, cell line, time and pert_type")
    info.add_argument("--dir", type=Path, default=None, help="bundle folder (default: the shipped copy)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "build" and args.src is None:
        args.src = Path(default_data_dir())
    try:
        return _build(args) if args.command == "build" else _info(args)
    except PertDiTError as exc:
        print(f"python -m pertdit.data.bundle {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
