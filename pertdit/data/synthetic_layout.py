"""The plate layout of a synthetic GEO L1000 release: which profile sits on which plate, with which
compound, dose, time and perturbagen type. A TEST FIXTURE: nothing here is measured data.

Plates of 384 wells, one cell line and one time each, as on L1000 plates: about 10 % vehicle (DMSO) wells,
a few untreated, positive-control, shRNA and missing-structure wells (which preprocessing must filter and
report), and compounds with real SMILES at the usual L1000 doses.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

PLATE_WELLS = 384
WELLS = [f"{row}{col:02d}" for row in "ABCDEFGHIJKLMNOP" for col in range(1, 25)]
DOSES = (0.04, 0.12, 0.37, 1.11, 3.33, 10.0)
ODD_DOSES = (0.5, 5.0, 20.0)
TIMES = (6.0, 24.0, 3.0, 48.0)
TIME_WEIGHTS = (0.4, 0.52, 0.04, 0.04)
#: share of a plate's wells per perturbagen type (the rest are trt_cp)
TYPE_SHARES = {"ctl_vehicle": 0.10, "ctl_untrt": 0.02, "trt_poscon": 0.03, "trt_sh": 0.03}
SH_TARGETS = ("TP53", "MYC", "KRAS", "EGFR", "PTEN", "BRAF", "CDK4", "MTOR")
INST_COLUMNS = ("inst_id", "rna_plate", "rna_well", "pert_id", "pert_iname", "pert_type", "pert_dose",
                "pert_dose_unit", "pert_time", "pert_time_unit", "cell_id")


@dataclass
class Plate:
    """One plate: its name, cell line, time and per-well metadata (`wells` rows of INST_COLUMNS), plus the
    row of each treated well's compound in the compound table (-1 for other wells) and its dose (µM)."""

    name: str
    cell: str
    time: float
    inst: pd.DataFrame
    compound_rows: np.ndarray
    doses: np.ndarray


class PlateLayout:
    """Draws plates one after another (seeded), until `n_profiles` wells in all (the last plate is cut)."""

    def __init__(self, n_profiles: int, compounds: pd.DataFrame, cells: list[str], seed: int = 0,
                 plate_prefix: str = "SYN") -> None:
        self.n_profiles = n_profiles
        self.plate_prefix = plate_prefix
        self.compounds = compounds.reset_index(drop=True)
        self.rng = np.random.default_rng(seed)
        n_cells = min(len(cells), max(3, 3 + n_profiles // 20_000))
        self.cells = list(self.rng.choice(cells, size=n_cells, replace=False))
        weights = 1.0 / np.arange(1, n_cells + 1)  # a few cell lines dominate, as in GSE92742
        self.cell_weights = weights / weights.sum()
        has_smiles = self.compounds["smiles"].astype(str).str.len() > 0
        self.with_smiles = np.flatnonzero(has_smiles.to_numpy())
        self.without_smiles = np.flatnonzero(~has_smiles.to_numpy())
        self.poscons = self.rng.choice(self.with_smiles, size=min(4, len(self.with_smiles)), replace=False)

    def plates(self) -> Iterator[Plate]:
        done, number = 0, 0
        while done < self.n_profiles:
            size = min(PLATE_WELLS, self.n_profiles - done)
            number += 1
            yield self._plate(number, size)
            done += size

    def _plate(self, number: int, size: int) -> Plate:
        rng = self.rng
        cell = str(rng.choice(self.cells, p=self.cell_weights))
        time = float(rng.choice(TIMES, p=TIME_WEIGHTS))
        name = f"{self.plate_prefix}{number:05d}_{cell}_{time:g}H_X{1 + number % 3}_B{1 + number // 50}"
        counts = {kind: int(round(share * size)) for kind, share in TYPE_SHARES.items()}
        counts["ctl_vehicle"] = max(counts["ctl_vehicle"], 1)
        kinds = [kind for kind, n in counts.items() for _ in range(n)]
        kinds += ["trt_cp"] * max(0, size - len(kinds))
        kinds = np.array(kinds[:size], dtype=object)
        rng.shuffle(kinds)
        compound_rows = np.full(size, -1, dtype=np.int64)
        doses = np.full(size, -666.0)
        treated = np.flatnonzero(kinds == "trt_cp")
        compound_rows[treated], doses[treated] = self._treatments(len(treated), missing=number % 5 == 1)
        poscon = np.flatnonzero(kinds == "trt_poscon")
        compound_rows[poscon], doses[poscon] = rng.choice(self.poscons, size=len(poscon)), 10.0
        inst = pd.DataFrame({
            "inst_id": [f"{name}:{well}" for well in WELLS[:size]],
            "rna_plate": name, "rna_well": WELLS[:size],
            "pert_id": self._pert_ids(kinds, compound_rows, rng),
            "pert_type": kinds, "pert_time": f"{time:g}", "pert_time_unit": "h", "cell_id": cell,
        })
        inst["pert_iname"] = self._names(inst["pert_id"], kinds, compound_rows)
        inst["pert_dose"] = [f"{d:g}" if d > 0 else "-666" for d in doses]
        inst.loc[kinds == "trt_sh", "pert_dose"] = "1"
        inst["pert_dose_unit"] = np.where(kinds == "trt_sh", "µL", np.where(doses > 0, "µM", "-666"))
        return Plate(name, cell, time, inst[list(INST_COLUMNS)], compound_rows, doses)

    def _treatments(self, n: int, missing: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(compound row, dose) of `n` treated wells: ~n/6 compounds at the six L1000 doses (a few odd doses;
        with `missing`, one compound without SMILES)."""
        rng = self.rng
        n_compounds = max(1, n // len(DOSES))
        chosen = rng.choice(self.with_smiles, size=n_compounds, replace=n_compounds > len(self.with_smiles))
        if missing and len(self.without_smiles):
            chosen[0] = rng.choice(self.without_smiles)
        rows = np.resize(np.repeat(chosen, len(DOSES)), n)
        doses = np.resize(np.tile(DOSES, n_compounds), n)
        odd = rng.random(n) < 0.03
        doses[odd] = rng.choice(ODD_DOSES, size=int(odd.sum()))
        return rows, doses

    def _pert_ids(self, kinds: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> list[str]:
        ids = []
        for kind, row in zip(kinds, rows):
            if row >= 0:
                ids.append(str(self.compounds.at[row, "pert_id"]))
            elif kind == "ctl_vehicle":
                ids.append("DMSO")
            elif kind == "ctl_untrt":
                ids.append("CMAP-000")
            else:  # trt_sh
                ids.append(f"TRCN{int(rng.integers(1e9, 1e10)):010d}")
        return ids

    def _names(self, ids: pd.Series, kinds: np.ndarray, rows: np.ndarray) -> list[str]:
        names = []
        for pert_id, kind, row in zip(ids, kinds, rows):
            if row >= 0:
                names.append(str(self.compounds.at[row, "pert_iname"]) or pert_id)
            elif kind == "trt_sh":
                names.append(SH_TARGETS[int(pert_id[4:]) % len(SH_TARGETS)])
            else:
                names.append({"ctl_vehicle": "DMSO", "ctl_untrt": "UnTrt"}[kind])
        return names
