"""RDKit FCFP4 fingerprint weighted by dose, as PRnet encodes a drug (one token per condition); optionally
(beyond the paper) with the time of the condition as one more feature."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import rdkit
from rdkit.Chem import rdFingerprintGenerator

from pertdit.errors import RepresentationError
from pertdit.perturbation.base import (
    PerturbationFeatures,
    PerturbationRepresentation,
    check_doses,
    check_times,
    parse_smiles,
    stable_hash,
)

#: dose (µM, >= 0) -> factor the 0/1 bits are multiplied by
DOSE_WEIGHTINGS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "log10p1": lambda dose: np.log10(dose + 1.0),  # PRnet: bits x log10(dose + 1); a control (0 µM) -> zeros
    "none": lambda dose: np.ones_like(dose),  # bits only, the dose is ignored
}


class RDKitFingerprint(PerturbationRepresentation):
    """Morgan fingerprint bits (0/1) x dose weight, tokens (N, 1, n_bits).

    Defaults give FCFP4: radius 2, feature invariants, 1024 bits, the same bits as RDKit's
    `GetMorganFingerprintAsBitVect(mol, 2, nBits=1024, useFeatures=True)`, weighted by log10(dose + 1).
    `condition_on_time=True` (beyond the paper) appends log2(time in hours) to the bits before the dose
    weight is applied: tokens (N, 1, n_bits + 1) = weight(dose) x [bits, log2(time)], so a vehicle (dose 0)
    is still a zero vector and a model that normalises the vector (ChemCPA) sees a direction that does not
    depend on the dose, as it does for the bits alone.
    """

    def __init__(
        self,
        n_bits: int = 1024,
        radius: int = 2,
        use_features: bool = True,
        dose_weighting: str = "log10p1",
        cache_dir: str | None = None,
        condition_on_time: bool = False,
    ) -> None:
        if dose_weighting not in DOSE_WEIGHTINGS:
            raise RepresentationError(
                f"dose_weighting={dose_weighting!r} is not one of {sorted(DOSE_WEIGHTINGS)}"
            )
        if n_bits < 1 or radius < 0:
            raise RepresentationError(f"n_bits must be >= 1 and radius >= 0; got {n_bits}, {radius}")
        self.n_bits = int(n_bits)
        self.radius = int(radius)
        self.use_features = bool(use_features)
        self.dose_weighting = dose_weighting
        self.cache_dir = cache_dir
        self.condition_on_time = bool(condition_on_time)
        self._generator = self._make_generator()
        self.name = f"{'fcfp' if use_features else 'ecfp'}{2 * self.radius}_{self.n_bits}"
        if self.condition_on_time:
            self.name += "_time"

    def _make_generator(self):
        invariants = rdFingerprintGenerator.GetMorganFeatureAtomInvGen() if self.use_features else None
        return rdFingerprintGenerator.GetMorganGenerator(
            radius=self.radius, fpSize=self.n_bits, atomInvariantsGenerator=invariants
        )

    def __getstate__(self) -> dict:
        # RDKit generators cannot be pickled (DDP spawn, DataLoader workers): rebuild on unpickling
        return {k: v for k, v in self.__dict__.items() if k != "_generator"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._generator = self._make_generator()

    @property
    def dim(self) -> int:
        return self.n_bits + (1 if self.condition_on_time else 0)

    def cache_key(self) -> str:
        options = {
            "n_bits": self.n_bits,
            "radius": self.radius,
            "use_features": self.use_features,
            "dose_weighting": self.dose_weighting,
            "rdkit": rdkit.__version__,
        }
        if self.condition_on_time:  # off: the key of a representation without the option, unchanged
            options["time_feature"] = "log2(hours), dose-weighted, appended"
        return "rdkit_fingerprint-" + stable_hash(options)

    def bits(self, smiles: list[str]) -> np.ndarray:
        """(N, n_bits) float32 0/1 fingerprint bits, dose not applied."""
        out = np.zeros((len(smiles), self.n_bits), dtype=np.float32)
        for i, s in enumerate(smiles):
            out[i] = self._generator.GetFingerprintAsNumPy(parse_smiles(s))
        return out

    def encode(self, smiles: list[str], doses: list[float],
               times: list[float] | None = None) -> PerturbationFeatures:
        """tokens (N, 1, n_bits) float32 = bits x weight(dose); mask (N, 1) all True. With
        `condition_on_time`, tokens (N, 1, n_bits + 1) = [bits, log2(time h)] x weight(dose) (`times` (N,)
        hours > 0 required; ignored otherwise)."""
        if len(smiles) != len(doses):
            raise RepresentationError(f"{len(smiles)} SMILES but {len(doses)} doses")
        weight = DOSE_WEIGHTINGS[self.dose_weighting](check_doses(doses, smiles)).astype(np.float32)
        features = self.bits(list(smiles))
        hours = self.condition_times(smiles, times)
        if hours is not None:
            if len(hours) != len(smiles):
                raise RepresentationError(f"{len(smiles)} SMILES but {len(hours)} times")
            features = np.concatenate([features, time_features(hours)], axis=1)
        tokens = (features * weight[:, None])[:, None, :]
        return PerturbationFeatures(tokens=tokens, mask=np.ones((len(smiles), 1), dtype=bool))


def time_features(hours: np.ndarray) -> np.ndarray:
    """(N, 1) float32 log2(time in hours) of times (N,) > 0: 6 h -> 2.585, 24 h -> 4.585."""
    return np.log2(check_times(hours)).astype(np.float32)[:, None]
