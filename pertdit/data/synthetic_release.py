"""`pertdit synth-release`: write a synthetic GEO L1000 release of any size, streamed to disk.

A TEST FIXTURE for the full-data path and its benchmarks, never a result: its values are drawn around real
basal profiles (`l1000_basal_165cells_level3_n165x978.gct`) with made-up compound effects, so they say
nothing about biology. The layout is GEO's (GSE92742): a Level-3 GCTX (profiles x 12,328 genes, ids only,
978 landmark rows scattered among inferred ones), `inst_info`, `pert_info` (real SMILES from
`l1000_compounds_all.tsv`), `gene_info` (`pr_is_lm`) and `cell_info` tables, plus `synthetic_release.json`
and a README that say what it is. Profiles are generated and written block by block (memory ~ one block),
each file under a temporary name renamed when complete.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pertdit.data.compounds import load_compound_table
from pertdit.data.landmarks import bundled_landmarks
from pertdit.data.readers.gct import read_gct
from pertdit.data.readers.gctx import COL_META, MATRIX, ROW_META
from pertdit.data.synthetic_layout import INST_COLUMNS, PlateLayout
from pertdit.errors import DataError

PREFIX = "SYNTH_Broad_LINCS"
N_GENES = 12328
FIXTURE_NOTE = ("SYNTHETIC L1000 release written by `pertdit synth-release`: a test fixture for the full-data "
                "path and its benchmarks. Its values are made up around real basal profiles; they are not "
                "measurements and say nothing about biology. Never report results computed on it.")
BASAL_FILE = "l1000_basal_165cells_level3_n165x978.gct"
COMPOUNDS_FILE = "l1000_compounds_all.tsv"


@dataclass(frozen=True)
class SynthOptions:
    """What `synth-release` writes: `profiles` columns, `seed`, matrix chunking (`chunk_rows` x `chunk_cols`,
    cmapPy's default layout), `compression` (None or "gzip"), generation `block_rows`, and the prefix of the
    plate names (profile ids are `<plate>:<well>`; give releases to be combined different prefixes)."""

    profiles: int
    seed: int = 0
    plate_prefix: str = "SYN"
    chunk_rows: int = 1000
    chunk_cols: int = 262
    compression: str | None = None
    block_rows: int = 4000


def release_files(out_dir: str | Path) -> dict[str, Path]:
    """The file of each part of a synthetic release in `out_dir` (what `data=geo_synthetic` reads)."""
    out = Path(out_dir)
    return {"level3": out / f"{PREFIX}_Level3_INF_mlr12k.gctx", "inst_info": out / f"{PREFIX}_inst_info.txt",
            "pert_info": out / f"{PREFIX}_pert_info.txt", "gene_info": out / f"{PREFIX}_gene_info.txt",
            "cell_info": out / f"{PREFIX}_cell_info.txt"}


def write_synthetic_release(out_dir: str | Path, options: SynthOptions, compounds: str | Path,
                            basal: str | Path) -> dict[str, Path]:
    """Write the release into `out_dir` and return its files (see `release_files`)."""
    if options.profiles < 1:
        raise DataError(f"--profiles must be >= 1, got {options.profiles}")
    table = load_compound_table(compounds).reset_index()
    cells, basal_values = _basal_profiles(basal)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = release_files(out)
    tmp = {key: path.with_name(f".{path.name}.tmp{os.getpid()}") for key, path in files.items()}
    rng = np.random.default_rng(options.seed)
    genes = _genes(rng)
    start = time.time()
    try:
        layout = PlateLayout(options.profiles, table, cells, options.seed, options.plate_prefix)
        model = ProfileModel(basal_values, genes["is_landmark"], options.seed)
        inst_ids = _write_matrix(tmp["level3"], tmp["inst_info"], layout, model, genes, options)
        _write_tables(tmp, table, layout, genes)
        for key, path in files.items():
            os.replace(tmp[key], path)
    finally:
        for path in tmp.values():
            path.unlink(missing_ok=True)
    meta = {"fixture": True, "note": FIXTURE_NOTE, "options": asdict(options), "profiles": len(inst_ids),
            "genes": N_GENES, "landmarks": int(genes["is_landmark"].sum()), "cell_lines": layout.cells,
            "compounds": str(compounds), "basal": str(basal), "seconds": round(time.time() - start, 1),
            "files": {key: path.name for key, path in files.items()},
            "use": f"pertdit data data=geo_synthetic paths.data_dir={out}"}
    (out / "synthetic_release.json").write_text(json.dumps(meta, indent=1))
    (out / "README_SYNTHETIC.txt").write_text(FIXTURE_NOTE + "\n")
    return files


class ProfileModel:
    """Level-3-like log2 values: landmarks = basal profile of the cell line + plate shift + compound effect
    x dose response + noise; inferred genes = a linear function of one landmark each + noise."""

    def __init__(self, basal: dict[str, np.ndarray], is_landmark: np.ndarray, seed: int) -> None:
        self.basal, self.seed = basal, seed
        rng = np.random.default_rng([seed, 1])
        self.landmark_cols = np.flatnonzero(is_landmark)
        self.inferred_cols = np.flatnonzero(~is_landmark)
        n_lm = len(self.landmark_cols)
        self.source = rng.integers(0, n_lm, size=len(self.inferred_cols))
        self.slope = rng.uniform(0.3, 0.9, size=len(self.inferred_cols)).astype(np.float32)
        self.offset = ((1 - self.slope) * rng.uniform(5.0, 9.0, size=len(self.inferred_cols))).astype(np.float32)
        pool = (0.25 * rng.standard_normal(1 << 23)).astype(np.float32)
        self.noise_pool = np.concatenate([pool, pool])  # any window of len(pool) values is contiguous
        self._effects: dict[int, np.ndarray] = {}

    def effect(self, compound_row: int) -> np.ndarray:
        """(978,) the made-up effect of one compound at full response (40 % of compounds act)."""
        if compound_row not in self._effects:
            rng = np.random.default_rng([self.seed, 2, compound_row])
            effect = np.zeros(len(self.landmark_cols), dtype=np.float32)
            if rng.random() < 0.4:
                genes = rng.choice(len(effect), size=40, replace=False)
                effect[genes] = rng.normal(0.0, 0.8, size=40)
            self._effects[compound_row] = effect
        return self._effects[compound_row]

    def plate_values(self, plate, rng: np.random.Generator) -> np.ndarray:
        """(wells, 12,328) float32 values of one plate."""
        n = len(plate.inst)
        landmarks = np.empty((n, len(self.landmark_cols)), dtype=np.float32)
        landmarks[:] = self.basal[plate.cell] + rng.normal(0.0, 0.1, size=len(self.landmark_cols))
        response = plate.doses / (plate.doses + 1.0) * (1.0 if plate.time >= 24 else 0.5)
        for i in np.flatnonzero(plate.compound_rows >= 0):
            landmarks[i] += response[i] * self.effect(int(plate.compound_rows[i]))
        landmarks += rng.standard_normal(landmarks.shape, dtype=np.float32) * 0.3
        values = np.empty((n, len(self.landmark_cols) + len(self.inferred_cols)), dtype=np.float32)
        values[:, self.landmark_cols] = landmarks
        size = n * len(self.inferred_cols)
        start = int(rng.integers(0, len(self.noise_pool) // 2 - size + 1))
        noise = self.noise_pool[start:start + size].reshape(n, len(self.inferred_cols))
        values[:, self.inferred_cols] = landmarks[:, self.source] * self.slope + self.offset + noise
        return np.clip(values, 0.0, 15.0, out=values)


def _basal_profiles(path: str | Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Cell lines and their basal profiles (978,) in the bundled landmark order, from the basal GCT."""
    if not Path(path).is_file():
        raise DataError(f"basal profiles not found: {path}; pass --basal (the {BASAL_FILE} of the shared data "
                        "folder) or set PERTDIT_DATA")
    basal = read_gct(path)
    entrez = basal.var["entrez_id"].astype(str) if "entrez_id" in basal.var else basal.var["rid"].astype(str)
    order = pd.Index(entrez).get_indexer(bundled_landmarks()["entrez_id"])
    if (order < 0).any():
        raise DataError(f"{path}: lacks {int((order < 0).sum())} of the 978 landmark genes")
    cells = [c for c in basal.obs["cell_id"].astype(str) if c != "averaged"]
    rows = {c: i for i, c in enumerate(basal.obs["cell_id"].astype(str))}
    return cells, {c: np.asarray(basal.X[rows[c], order], dtype=np.float32) for c in cells}


def _genes(rng: np.random.Generator) -> pd.DataFrame:
    """12,328 genes: the 978 landmarks (real Entrez ids and symbols, in the bundled order) at scattered rows,
    made-up inferred genes elsewhere (ids 900000000 + n, symbols SYNTHG<n>)."""
    landmarks = bundled_landmarks()
    rows = np.sort(rng.choice(N_GENES, size=len(landmarks), replace=False))
    is_landmark = np.zeros(N_GENES, dtype=bool)
    is_landmark[rows] = True
    ids = np.array([f"{900_000_000 + i}" for i in range(N_GENES)], dtype=object)
    symbols = np.array([f"SYNTHG{i:05d}" for i in range(N_GENES)], dtype=object)
    ids[rows], symbols[rows] = landmarks["entrez_id"].to_numpy(), landmarks["symbol"].to_numpy()
    return pd.DataFrame({"pr_gene_id": ids, "pr_gene_symbol": symbols, "is_landmark": is_landmark})


def _write_matrix(gctx: Path, inst_path: Path, layout: PlateLayout, model: ProfileModel, genes: pd.DataFrame,
                  options: SynthOptions) -> list[str]:
    """Generate the plates, write the matrix (in blocks aligned to the chunk rows) and inst_info; return ids."""
    n = layout.n_profiles
    block = max(options.chunk_rows, options.block_rows // options.chunk_rows * options.chunk_rows)
    rng = np.random.default_rng([options.seed, 3])
    ids: list[str] = []
    with h5py.File(gctx, "w") as handle, open(inst_path, "w", encoding="utf-8") as inst:
        handle.attrs["version"] = "GCTX1.0"
        handle.attrs["pertdit_synthetic_fixture"] = FIXTURE_NOTE
        chunks = (min(options.chunk_rows, n), min(options.chunk_cols, N_GENES))
        matrix = handle.create_dataset(MATRIX, shape=(n, N_GENES), dtype=np.float32, chunks=chunks,
                                       compression=options.compression)
        inst.write("\t".join(INST_COLUMNS) + "\n")
        buffer = np.empty((block, N_GENES), dtype=np.float32)
        filled = written = 0
        with tqdm(total=n, desc="synthetic profiles", unit="profile", disable=n < 50_000) as bar:
            for plate in layout.plates():
                values = model.plate_values(plate, rng)
                plate.inst.to_csv(inst, sep="\t", header=False, index=False, lineterminator="\n")
                ids += plate.inst["inst_id"].tolist()
                taken = 0
                while taken < len(values):
                    step = min(block - filled, len(values) - taken)
                    buffer[filled:filled + step] = values[taken:taken + step]
                    filled, taken = filled + step, taken + step
                    if filled == block:
                        matrix[written:written + filled] = buffer
                        written, filled = written + filled, 0
                bar.update(len(values))
        if filled:
            matrix[written:written + filled] = buffer[:filled]
        string = h5py.string_dtype("utf-8")
        handle.create_dataset(f"{COL_META}/id", data=ids, dtype=string)
        handle.create_dataset(f"{ROW_META}/id", data=genes["pr_gene_id"].tolist(), dtype=string)
    return ids


def _write_tables(tmp: dict[str, Path], compounds: pd.DataFrame, layout: PlateLayout, genes: pd.DataFrame) -> None:
    """pert_info (every compound of the table + DMSO; -666 where no SMILES), gene_info, cell_info."""
    pert = pd.DataFrame({
        "pert_id": compounds["pert_id"], "pert_iname": compounds["pert_iname"], "pert_type": "trt_cp",
        "is_touchstone": "0", "inchi_key_prefix": "-666", "inchi_key": "-666",
        "canonical_smiles": compounds["smiles"].replace("", "-666"), "pubchem_cid": "-666"})
    control = pd.DataFrame([{"pert_id": "DMSO", "pert_iname": "DMSO", "pert_type": "ctl_vehicle",
                             "is_touchstone": "0", "inchi_key_prefix": "-666", "inchi_key": "-666",
                             "canonical_smiles": "CS(C)=O", "pubchem_cid": "679"}])
    pd.concat([pert, control]).to_csv(tmp["pert_info"], sep="\t", index=False)
    gene_info = genes.assign(pr_gene_title="synthetic", pr_is_lm=genes["is_landmark"].astype(int).astype(str),
                             pr_is_bing="1")
    gene_info.drop(columns="is_landmark").to_csv(tmp["gene_info"], sep="\t", index=False)
    pd.DataFrame({"cell_id": layout.cells, "cell_type": "cell line", "primary_site": "synthetic"}).to_csv(
        tmp["cell_info"], sep="\t", index=False)


def default_input(name: str) -> Path:
    """`$PERTDIT_DATA/<name>`, else the shared data folder found above the working directory."""
    from pertdit.config import default_data_dir

    return Path(default_data_dir()) / name


def synth_release_cli(argv: list[str]) -> int:
    """`pertdit synth-release --profiles N --out DIR`."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="pertdit synth-release",
        description="Write a synthetic GEO L1000 release (a TEST FIXTURE for the full-data path and its "
                    "benchmarks, not data: its values say nothing about biology).")
    parser.add_argument("--profiles", type=int, required=True, help="number of profiles (GCTX columns)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the release into")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plate-prefix", default="SYN", help="prefix of the plate names (and so of the ids)")
    parser.add_argument("--compounds", type=Path, default=None,
                        help=f"compound table with real SMILES (default: $PERTDIT_DATA/{COMPOUNDS_FILE})")
    parser.add_argument("--basal", type=Path, default=None,
                        help=f"basal profiles the values are drawn around (default: $PERTDIT_DATA/{BASAL_FILE})")
    parser.add_argument("--compression", choices=("none", "gzip"), default="none",
                        help="HDF5 compression of the matrix (GEO's files are read either way)")
    args = parser.parse_args(argv)
    options = SynthOptions(profiles=args.profiles, seed=args.seed, plate_prefix=args.plate_prefix,
                           compression=None if args.compression == "none" else args.compression)
    print(f"pertdit synth-release: {FIXTURE_NOTE}")
    files = write_synthetic_release(args.out, options, args.compounds or default_input(COMPOUNDS_FILE),
                                    args.basal or default_input(BASAL_FILE))
    for key, path in files.items():
        print(f"  {key:<9} {path}")
    print(f"read it through the data=geo path with:\n  pertdit data data=geo_synthetic paths.data_dir={args.out}")
    return 0
