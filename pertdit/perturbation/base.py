"""What every drug representation shares: the feature container, the interface, SMILES and dose checks,
and the resolution of pretrained weights (Hugging Face Hub, downloaded on first use unless offline)."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rdkit import Chem, rdBase

from pertdit.errors import DataError, RepresentationError

log = logging.getLogger(__name__)

#: decimals a dose (µM) is rounded to when it identifies a condition (float32 and float64 copies of one
#: dose then name the same condition)
DOSE_DECIMALS = 6
#: decimals a time (hours) is rounded to when it identifies a condition (`condition_on_time`)
TIME_DECIMALS = 6

#: a condition's identity: (SMILES, dose µM), or (SMILES, dose µM, time h) for a representation that
#: conditions on time (`condition_on_time`)
Condition = tuple  # tuple[str, float] | tuple[str, float, float]


@dataclass
class PerturbationFeatures:
    """Token features of N conditions: `tokens` (N, L, D) float16/32, `mask` (N, L) bool (True = real token).

    `pairs`, when set, names the condition of each row (as `embed_conditions` returns it): (SMILES, dose), or
    (SMILES, dose, time) when the representation conditions on time.
    """

    tokens: np.ndarray
    mask: np.ndarray
    pairs: list[Condition] | None = None

    def __post_init__(self) -> None:
        if self.tokens.ndim != 3:
            raise RepresentationError(f"tokens must be (N, L, D); got shape {self.tokens.shape}")
        if self.mask.shape != self.tokens.shape[:2] or self.mask.dtype != np.bool_:
            raise RepresentationError(
                f"mask must be bool (N, L) = {self.tokens.shape[:2]}; got {self.mask.dtype} {self.mask.shape}"
            )
        if self.pairs is not None and len(self.pairs) != len(self.tokens):
            raise RepresentationError(f"{len(self.pairs)} pairs for {len(self.tokens)} rows of tokens")

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def dim(self) -> int:
        return self.tokens.shape[2]

    def pooled(self, chunk_elements: int = 2**25) -> np.ndarray:
        """(N, D) float32 mean of the real tokens (zeros for a row without any); reads in chunks, so a
        memory-mapped cache is never loaded whole."""
        n, length, dim = self.tokens.shape
        out = np.zeros((n, dim), dtype=np.float32)
        step = max(1, chunk_elements // max(1, length * dim))
        for start in range(0, n, step):
            tok = np.asarray(self.tokens[start : start + step], dtype=np.float32)
            m = self.mask[start : start + step]
            total = np.einsum("nld,nl->nd", tok, m.astype(np.float32))
            out[start : start + step] = total / np.maximum(m.sum(axis=1, keepdims=True), 1)
        return out

    def gather(self, rows: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """tokens (B, L, D) float32 and mask (B, L) of conditions `rows`, cut after the last real token of
        these B (each batch is padded to its own longest sequence, not the dataset's)."""
        rows = np.asarray(rows, dtype=np.int64)
        mask = np.asarray(self.mask[rows], dtype=bool)
        used = np.flatnonzero(mask.any(axis=0))
        length = int(used[-1]) + 1 if len(used) else 1
        return np.asarray(self.tokens[rows, :length], dtype=np.float32), mask[:, :length]

    def take(self, rows: Sequence[int] | np.ndarray) -> PerturbationFeatures:
        """A copy holding only `rows` (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        pairs = [self.pairs[i] for i in rows] if self.pairs is not None else None
        return PerturbationFeatures(np.asarray(self.tokens[rows]), np.asarray(self.mask[rows]), pairs)

    def lookup(self, smiles: Sequence[str], doses: Sequence[float],
               times: Sequence[float] | None = None) -> np.ndarray:
        """(N,) int64 row of each condition; needs `pairs`. `times` (hours) are part of the condition when
        the features were embedded per (SMILES, dose, time), and are ignored otherwise."""
        if self.pairs is None:
            raise RepresentationError("these features carry no `pairs`; build them with embed_conditions")
        return condition_rows({pair: i for i, pair in enumerate(self.pairs)}, smiles, doses, times)


class PerturbationRepresentation(ABC):
    """Turns (SMILES, dose) conditions into token features.

    A representation with `condition_on_time = True` (an option beyond the paper) also reads the time of
    each condition (hours after treatment): its conditions are (SMILES, dose, time), and `encode`,
    `token_counts` and `part_keys` take `times`; with False (the default) they are (SMILES, dose) and
    nothing about them changes.

    Subclasses set `name`, implement `dim`, `cache_key()` and `encode()`; a representation whose number of
    tokens varies overrides `token_counts()`, so the embedding cache knows the full shape before it computes
    anything. `cache_key()` must name everything the output depends on (weights fingerprint, options): the
    cache is keyed by it and the conditions, nothing else is checked on load.

    A representation whose tokens are a concatenation of sequences shared between conditions (text: the
    description of the SMILES, then the dose prompt) names them in `token_parts()` and implements
    `part_keys()`, `part_token_counts()` and `embed_part()`; the cache then stores each sequence once
    (`pertdit.perturbation.factored`).
    """

    name: str = "representation"
    cache_dir: str | None = None
    condition_on_time: bool = False

    @property
    @abstractmethod
    def dim(self) -> int:
        """D, the width of a token."""

    @abstractmethod
    def cache_key(self) -> str:
        """A string that changes whenever anything that changes `encode`'s output changes."""

    @abstractmethod
    def encode(self, smiles: list[str], doses: list[float]) -> PerturbationFeatures:
        """Features of N conditions: tokens (N, L, D) float32, mask (N, L). A representation that conditions
        on time takes `times` (N,) hours as a third argument."""

    def condition_times(self, smiles: Sequence[str], times: Sequence[float] | None) -> np.ndarray | None:
        """(N,) float64 hours when the representation conditions on time (RepresentationError if they are
        missing or not > 0), else None (times are not part of its conditions)."""
        if not self.condition_on_time:
            return None
        if times is None:
            raise RepresentationError(f"{self!r} conditions on time (condition_on_time: true): give the time "
                                      "(hours after treatment) of every condition")
        return check_times(times, smiles)

    def conditions(self, smiles: Sequence[str], doses: Sequence[float],
                   times: Sequence[float] | None = None) -> list[Condition]:
        """The identity of each condition under this representation: (SMILES, dose), or (SMILES, dose,
        time) when it conditions on time (`times` are ignored otherwise)."""
        return condition_pairs(smiles, doses, self.condition_times(smiles, times))

    def token_counts(self, smiles: list[str], doses: list[float],
                     times: list[float] | None = None) -> np.ndarray:
        """(N,) number of real tokens each condition gets from `encode` (1 for vector representations)."""
        return np.ones(len(smiles), dtype=np.int64)

    def token_parts(self) -> tuple[str, ...]:
        """Names of the shared parts a condition's tokens are joined from, in order; () = stored per condition."""
        return ()

    def part_keys(self, part: str, smiles: list[str], doses: list[float],
                  times: list[float] | None = None) -> list[str]:
        """The key of each condition's sequence in `part` (conditions with one key share the sequence)."""
        raise NotImplementedError(f"{type(self).__name__} has no token part {part!r}")

    def part_token_counts(self, part: str, keys: list[str]) -> np.ndarray:
        """(K,) number of tokens of each key's sequence in `part`."""
        raise NotImplementedError(f"{type(self).__name__} has no token part {part!r}")

    def embed_part(self, part: str, keys: list[str]) -> list[np.ndarray]:
        """The (tokens_k, D) float32 sequence of each key in `part`."""
        raise NotImplementedError(f"{type(self).__name__} has no token part {part!r}")

    def provenance(self) -> dict[str, str]:
        """What produced the features, for a run's records (`uns["pertdit"]["representation"]`): class, name,
        cache key; text representations add their models and any substitution they made."""
        return {"class": type(self).__name__, "name": self.name, "cache_key": self.cache_key()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def stable_hash(obj: object, length: int = 16) -> str:
    """Hex digest of a JSON-serialisable object (keys sorted), the same on every machine and run."""
    text = json.dumps(obj, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def parse_smiles(smiles: str) -> Chem.Mol:
    """The RDKit molecule of `smiles`; RepresentationError naming the SMILES if it is empty or unparsable."""
    if not isinstance(smiles, str) or not smiles.strip():
        raise RepresentationError(
            f"empty SMILES {smiles!r} (a control row, or a compound without structure?)"
        )
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise RepresentationError(
            f"RDKit cannot parse SMILES {smiles!r}; drop it with pertdit.perturbation.validate_smiles"
        )
    return mol


def check_doses(doses: Sequence[float], smiles: Sequence[str] | None = None) -> np.ndarray:
    """(N,) float64 doses in µM; RepresentationError for a negative or non-finite dose (0 is a control)."""
    values = np.asarray(doses, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if bad.size:
        i, what = _first_bad(bad, smiles)
        raise RepresentationError(
            f"dose {values[i]} µM{what} (position {i}) is negative or not a number; doses are µM >= 0 "
            f"({bad.size} bad doses in all)"
        )
    return values


def _first_bad(bad: np.ndarray, smiles: Sequence[str] | None) -> tuple[int, str]:
    """The first bad position and the words naming its SMILES (empty without SMILES), for an error."""
    i = int(bad[0])
    return i, (f" of SMILES {smiles[i]!r}" if smiles is not None else "")


def check_times(times: Sequence[float], smiles: Sequence[str] | None = None) -> np.ndarray:
    """(N,) float64 times in hours; RepresentationError for a time that is missing (NaN), infinite or <= 0."""
    values = np.asarray(times, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values) | (values <= 0))
    if bad.size:
        i, what = _first_bad(bad, smiles)
        raise RepresentationError(
            f"time {values[i]} h{what} (position {i}) is missing or not > 0; conditioning on time needs the "
            f"hours after treatment of every treated profile ({bad.size} bad times in all): keep the "
            "profiles with a time (data.times=[...]) or set perturbation.condition_on_time=false"
        )
    return values


def condition_pairs(smiles: Sequence[str], doses: Sequence[float],
                    times: Sequence[float] | None = None) -> list[Condition]:
    """(SMILES, dose rounded to DOSE_DECIMALS) for each condition, the identity of a condition; with
    `times`, (SMILES, dose, time rounded to TIME_DECIMALS)."""
    if len(smiles) != len(doses):
        raise RepresentationError(f"{len(smiles)} SMILES but {len(doses)} doses")
    values = check_doses(doses, smiles)
    if times is None:
        return [(str(s), round(float(d), DOSE_DECIMALS)) for s, d in zip(smiles, values)]
    if len(times) != len(smiles):
        raise RepresentationError(f"{len(smiles)} SMILES but {len(times)} times")
    hours = check_times(times, smiles)
    return [(str(s), round(float(d), DOSE_DECIMALS), round(float(t), TIME_DECIMALS))
            for s, d, t in zip(smiles, values, hours)]


def condition_rows(index: dict, smiles: Sequence[str], doses: Sequence[float],
                   times: Sequence[float] | None = None) -> np.ndarray:
    """(N,) int64 row of each condition in `index` (condition -> row). The conditions carry a time when
    `index`'s keys do (features embedded per (SMILES, dose, time)); `times` are needed then, ignored else."""
    timed = len(next(iter(index), ())) == 3
    if timed and times is None:
        raise RepresentationError("these features were embedded per (SMILES, dose, time) "
                                  "(condition_on_time: true): give the time of every condition")
    rows = np.empty(len(smiles), dtype=np.int64)
    for i, pair in enumerate(condition_pairs(smiles, doses, times if timed else None)):
        if pair not in index:
            when = f", time {pair[2]} h" if timed else ""
            raise RepresentationError(
                f"condition (SMILES {pair[0]!r}, dose {pair[1]} µM{when}) is not among the {len(index)} "
                "embedded conditions; embed the dataset again (`pertdit embed`)"
            )
        rows[i] = index[pair]
    return rows


def validate_smiles(
    table: pd.DataFrame,
    smiles_key: str | None = None,
    id_key: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a table (a compound table or an `obs`) into rows RDKit can parse and a report of the rest.

    `smiles_key` defaults to the first of `smiles`, `canonical_smiles`, `SMILES` present; `id_key` to
    `pert_id` (else the index). Rows with `is_control` True are kept unchecked. Returns `(valid_table,
    invalid_report)`; the report has one row per compound: `id`, `name` (`pert_iname` when present),
    `smiles`, `reason` (`missing SMILES` or `RDKit cannot parse`), `n_rows`. Never raises for a bad SMILES.
    """
    smiles_key = smiles_key or next((k for k in ("smiles", "canonical_smiles", "SMILES") if k in table), None)
    if smiles_key is None or smiles_key not in table:
        raise DataError(
            f"no SMILES column ({smiles_key or 'smiles / canonical_smiles'}) in table with columns "
            f"{list(table.columns)}; pass smiles_key="
        )
    ids = table[id_key] if id_key else (table["pert_id"] if "pert_id" in table else table.index.to_series())
    names = table["pert_iname"] if "pert_iname" in table else pd.Series("", index=table.index)
    control = np.zeros(len(table), bool)
    if "is_control" in table:
        control = table["is_control"].astype(bool).to_numpy()

    reasons: dict[object, str | None] = {}
    row_reason = []
    for value, is_control in zip(table[smiles_key].to_numpy(), control):
        if is_control:
            row_reason.append(None)
            continue
        if value not in reasons:
            if not isinstance(value, str) or not value.strip():
                reasons[value] = "missing SMILES"
            else:
                with rdBase.BlockLogs():
                    reasons[value] = None if Chem.MolFromSmiles(value) is not None else "RDKit cannot parse"
        row_reason.append(reasons[value])
    row_reason = pd.Series(row_reason, index=table.index, dtype=object)
    invalid = row_reason.notna().to_numpy()

    report = pd.DataFrame(
        {
            "id": ids.astype(str).to_numpy()[invalid],
            "name": names.fillna("").astype(str).to_numpy()[invalid],
            "smiles": table[smiles_key].fillna("").astype(str).to_numpy()[invalid],
            "reason": row_reason.to_numpy()[invalid],
        }
    )
    report = (
        report.groupby(["id", "name", "smiles", "reason"], sort=True).size().rename("n_rows").reset_index()
    )
    for row in report.itertuples():
        label = f"{row.id} ({row.name})" if row.name else row.id
        log.warning("dropping compound %s: %s %r (%d rows)", label, row.reason, row.smiles, row.n_rows)
    return table.loc[~invalid].copy(), report


#: environment variables that forbid downloads (the Hugging Face convention; CI sets HF_HUB_OFFLINE=1)
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
#: weight formats PertDiT never loads (TensorFlow, Flax, ONNX, ...): not downloaded
IGNORED_WEIGHTS = ("*.h5", "*.msgpack", "*.ot", "*.onnx", "*.tflite", "*.mlmodel", "onnx/*", "coreml/*",
                   "flax_model*", "tf_model*", "rust_model*")


def offline_mode(local_files_only: bool | None = None) -> bool:
    """True when nothing may be downloaded: `local_files_only` when set, else HF_HUB_OFFLINE or
    TRANSFORMERS_OFFLINE set to a true value (1, true, yes, on)."""
    if local_files_only is not None:
        return bool(local_files_only)
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on") for name in OFFLINE_VARIABLES)


def resolve_pretrained(model_id: str, local_dir: str | None, role: str, option: str,
                       local_files_only: bool | None = None) -> Path:
    """The local directory holding `model_id`'s weights, downloaded from the Hugging Face Hub when missing.

    Looks in `local_dir` when given, then at `model_id` as a path, then in the Hugging Face cache
    (`HF_HOME` / `HF_HUB_CACHE`), downloading into it what is missing, as `from_pretrained` does, unless
    `offline_mode(local_files_only)`. `option` names the config key that sets `local_dir` in the error.
    """
    if local_dir:
        path = Path(local_dir).expanduser()
        if not (path / "config.json").is_file():
            raise RepresentationError(
                f"{role} {model_id!r}: {option}={str(local_dir)!r} is not a directory with a config.json; "
                "point it at a folder written by `save_pretrained` (config, weights, tokenizer files)"
            )
        return path
    if Path(model_id).expanduser().is_dir():
        path = Path(model_id).expanduser()
    else:
        path = _from_hub(model_id, role, option, offline_mode(local_files_only))
    if not (path / "config.json").is_file():
        raise RepresentationError(f"{role} {model_id!r}: {path} has no config.json (an incomplete download?)")
    return path


def _from_hub(model_id: str, role: str, option: str, offline: bool) -> Path:
    """The snapshot folder of `model_id` in the Hugging Face cache; downloaded first unless `offline`."""
    from huggingface_hub import snapshot_download

    provide = (f"Provide them with {option}=/path/to/folder (a folder written by `save_pretrained`; Hydra key "
               f"perturbation.{option}), or fill the Hugging Face cache (HF_HOME / HF_HUB_CACHE) on a machine "
               f"that reaches the Hub: `pertdit embed --download-only` (or `hf download {model_id}`)")
    try:
        if offline:
            return Path(snapshot_download(model_id, local_files_only=True))
        log.info("%s %s: resolving on the Hugging Face Hub (downloaded once into the cache)", role, model_id)
        return Path(snapshot_download(model_id, ignore_patterns=list(IGNORED_WEIGHTS)))
    except Exception as err:  # not cached, no network, or not a valid repo id: the same advice either way
        why = ("not in the local Hugging Face cache and downloads are off (HF_HUB_OFFLINE / "
               "TRANSFORMERS_OFFLINE / local_files_only)" if offline
               else f"could not be downloaded from the Hugging Face Hub ({type(err).__name__}: {str(err)[:200]})")
        raise RepresentationError(f"no weights for {role} {model_id!r}: {why}. {provide}") from None


def weights_fingerprint(path: Path) -> str:
    """A digest of a model folder's config and the names and sizes of its files (cheap; no weight reads)."""
    files = sorted(p for p in path.iterdir() if p.is_file())
    listing = [(p.name, p.stat().st_size) for p in files]
    config = (path / "config.json").read_text()
    return stable_hash({"files": listing, "config": config})
