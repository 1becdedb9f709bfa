"""On-disk embedding cache: each unique (SMILES, dose) condition embedded once, float16, memory-mapped.

A condition is (SMILES, dose), or (SMILES, dose, time) for a representation with `condition_on_time` (its
`cache_key()` says so too, so entries with and without time never mix).

An entry is a folder `<cache_dir>/<representation.name>-<key[:16]>/`, written into a temporary folder and
renamed into place when complete, in one of two layouts:

- `conditions` (vector representations, pooled text): `tokens.npy` (N, L, D) float16, `mask.npy` (N, L),
  `pairs.json` (the N conditions, sorted).
- `parts` (text: `representation.token_parts()`): per part (`description`, `prompt`) `<part>_tokens.npy`
  (T, D) float16 holding every distinct sequence once (a description per SMILES, a prompt per dose),
  `<part>_offsets.npy` and `<part>_keys.json`; `index.npy` (N, P) says which sequences make each condition
  (`pertdit.perturbation.factored.FactoredFeatures` joins them per batch).

`header.json`, written last, holds the format, the key, the shapes, the file sizes and BLAKE2b checksums. The
key hashes the representation's `cache_key()` (model ids, weights fingerprint, options) and the conditions
(SMILES and doses): it is computed without embedding or reading anything. Opening an entry checks the header,
the key, the sizes and shapes (cheap); the checksums are read only on demand (`verify=True`,
`pertdit embed --verify`). An entry that fails a check is rebuilt with a warning, never used.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pertdit.errors import RepresentationError
from pertdit.perturbation.base import (
    Condition,
    PerturbationFeatures,
    PerturbationRepresentation,
    stable_hash,
)
from pertdit.perturbation.factored import FactoredFeatures, TokenTable

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
CONDITION_FILES = ("tokens.npy", "mask.npy", "pairs.json")


class CacheEntryError(RepresentationError):
    """A cache entry that cannot be used as it is (missing, truncated, corrupt or built for other inputs)."""


def entry_key(representation: PerturbationRepresentation, pairs: list[Condition]) -> str:
    """The full key of the cache entry of `pairs` (sorted, unique) under `representation`."""
    return stable_hash({"format": FORMAT_VERSION, "representation": representation.cache_key(),
                        "parts": list(representation.token_parts()), "pairs": pairs}, length=64)


def _columns(pairs: list[Condition]) -> tuple[list[str], list[float], dict]:
    """SMILES and doses of conditions, and the keyword arguments that pass their times to a representation
    (`{"times": [...]}` for (SMILES, dose, time) conditions, `{}` otherwise: called exactly as before)."""
    smiles, doses = [p[0] for p in pairs], [p[1] for p in pairs]
    timed = bool(pairs) and len(pairs[0]) == 3
    return smiles, doses, ({"times": [p[2] for p in pairs]} if timed else {})


def _part_files(part: str) -> tuple[str, str, str]:
    return f"{part}_tokens.npy", f"{part}_offsets.npy", f"{part}_keys.json"


def _checksum(path: Path, block: int = 1 << 23) -> str:
    digest = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def _read_header(path: Path, expected_key: str | None) -> dict:
    try:
        header = json.loads((path / "header.json").read_text())
    except (OSError, ValueError) as err:
        raise CacheEntryError(f"cache entry {path}: no readable header.json ({type(err).__name__})") from None
    found = header.get("format") if isinstance(header, dict) else "?"
    if found != FORMAT_VERSION:
        raise CacheEntryError(f"cache entry {path}: format {found}, expected {FORMAT_VERSION}")
    if expected_key is not None and header.get("key") != expected_key:
        raise CacheEntryError(f"cache entry {path}: built for key {header.get('key')}, expected {expected_key}")
    sizes = header.get("sizes")
    if not isinstance(sizes, dict) or not sizes:
        raise CacheEntryError(f"cache entry {path}: header lists no files")
    for name, size in sizes.items():
        file = path / name
        if not file.is_file() or file.stat().st_size != size:
            raise CacheEntryError(f"cache entry {path}: {name} is missing or truncated")
    return header


def verify_entry(path: str | Path) -> None:
    """Read every file of an entry and compare its checksum with the header's; CacheEntryError if one differs."""
    path = Path(path)
    header = _read_header(path, None)
    for name in header["sizes"]:
        if _checksum(path / name) != (header.get("checksums") or {}).get(name):
            raise CacheEntryError(f"cache entry {path}: checksum of {name} does not match its header")


def load_embeddings(
    path: str | Path, expected_key: str | None = None, verify: bool = False
) -> PerturbationFeatures | FactoredFeatures:
    """Open a cache entry (tokens as read-only float16 memory maps) after the cheap checks: header, key (if
    `expected_key`), file sizes, array shapes; with `verify` also every checksum. CacheEntryError otherwise."""
    path = Path(path)
    header = _read_header(path, expected_key)
    if verify:
        verify_entry(path)
    try:
        pairs = [(str(s), *map(float, rest)) for s, *rest in json.loads((path / "pairs.json").read_text())]
        if header.get("layout") == "parts":
            return _load_parts(path, header, pairs)
        return _load_conditions(path, header, pairs)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CacheEntryError(f"cache entry {path}: unreadable ({type(err).__name__}: {err})") from None


def _load_conditions(path: Path, header: dict, pairs: list) -> PerturbationFeatures:
    shape = tuple(header["shape"])
    tokens = np.load(path / "tokens.npy", mmap_mode="r")
    mask = np.load(path / "mask.npy")
    found = (tokens.dtype, tokens.shape, mask.dtype, mask.shape, len(pairs))
    if len(shape) != 3 or found != (np.float16, shape, np.bool_, shape[:2], shape[0]):
        raise CacheEntryError(
            f"cache entry {path}: tokens {tokens.dtype}{tokens.shape}, mask {mask.dtype}{mask.shape}, "
            f"{len(pairs)} pairs do not match the header shape {shape}")
    return PerturbationFeatures(tokens=tokens, mask=mask, pairs=pairs)


def _load_parts(path: Path, header: dict, pairs: list) -> FactoredFeatures:
    tables = []
    for part in header["parts"]:
        name, (n_tokens, dim), n_keys = part["name"], part["tokens"], part["keys"]
        tokens_file, offsets_file, _ = _part_files(name)
        tokens = np.load(path / tokens_file, mmap_mode="r")
        offsets = np.load(path / offsets_file)
        if tokens.dtype != np.float16 or tokens.shape != (n_tokens, dim) or offsets.shape != (n_keys + 1,) or \
                int(offsets[-1]) != n_tokens:
            raise CacheEntryError(f"cache entry {path}: part {name} has tokens {tokens.dtype}{tokens.shape}, "
                                  f"offsets {offsets.shape}; the header says ({n_tokens}, {dim}), {n_keys} keys")
        tables.append(TokenTable(tokens=tokens, offsets=offsets))
    index = np.load(path / "index.npy")
    out_of_range = len(index) and (index.max(axis=0) >= [len(t) for t in tables]).any()
    if index.shape != (len(pairs), len(tables)) or out_of_range:
        raise CacheEntryError(f"cache entry {path}: index.npy {index.shape} does not match the parts")
    return FactoredFeatures(tables, index, pairs, [p["name"] for p in header["parts"]])


# -- building -------------------------------------------------------------------------------------------------
def _chunks(pairs: list[Condition], size: int) -> list[slice]:
    """Consecutive slices of about `size` sorted pairs that never split one SMILES (so each description is
    embedded once)."""
    out, start = [], 0
    for i in range(1, len(pairs) + 1):
        if i == len(pairs) or (i - start >= size and pairs[i][0] != pairs[i - 1][0]):
            out.append(slice(start, i))
            start = i
    return out


def _to_float16(values: np.ndarray, representation: PerturbationRepresentation) -> np.ndarray:
    half = np.asarray(values).astype(np.float16)
    if not np.isfinite(half).all():
        raise RepresentationError(f"{representation!r}: embeddings overflow float16 (|x| > 65504)")
    return half


def _encode_into(representation: PerturbationRepresentation, pairs: list[Condition], tokens: np.ndarray,
                 mask: np.ndarray, counts: np.ndarray, chunk_size: int) -> None:
    chunks = _chunks(pairs, chunk_size)
    for rows in tqdm(chunks, desc=f"embedding {representation.name}", unit="chunk", disable=len(chunks) < 4):
        smiles, doses, times = _columns(pairs[rows])
        features = representation.encode(smiles, doses, **times)
        length = features.tokens.shape[1]
        if length > tokens.shape[1] or not np.array_equal(features.mask.sum(axis=1), counts[rows]):
            raise RepresentationError(
                f"{representation!r} encoded a different number of tokens than its token_counts() said")
        tokens[rows, :length] = _to_float16(features.tokens, representation)
        mask[rows, :length] = features.mask


def _build_conditions(folder: Path, representation: PerturbationRepresentation, pairs: list[Condition],
                      chunk_size: int) -> dict:
    smiles, doses, times = _columns(pairs)
    counts = np.asarray(representation.token_counts(smiles, doses, **times), dtype=np.int64)
    shape = (len(pairs), int(counts.max()), representation.dim)
    log.info("embedding cache %s: %d conditions, tokens %s float16", folder, len(pairs), shape)
    tokens = np.lib.format.open_memmap(folder / "tokens.npy", mode="w+", dtype=np.float16, shape=shape)
    mask = np.zeros(shape[:2], dtype=bool)
    _encode_into(representation, pairs, tokens, mask, counts, chunk_size)
    tokens.flush()
    del tokens
    np.save(folder / "mask.npy", mask)
    return {"layout": "conditions", "shape": list(shape)}


def _build_parts(folder: Path, representation: PerturbationRepresentation, pairs: list[Condition],
                 chunk_size: int) -> dict:
    smiles, doses, times = _columns(pairs)
    parts, index = [], np.zeros((len(pairs), len(representation.token_parts())), dtype=np.int64)
    for p, part in enumerate(representation.token_parts()):
        keys = representation.part_keys(part, smiles, doses, **times)
        unique = sorted(set(keys))
        position = {k: i for i, k in enumerate(unique)}
        index[:, p] = [position[k] for k in keys]
        counts = np.asarray(representation.part_token_counts(part, unique), dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        tokens_file, offsets_file, keys_file = _part_files(part)
        shape = (int(offsets[-1]), representation.dim)
        log.info("embedding cache %s: %d %s sequences, tokens %s float16", folder, len(unique), part, shape)
        tokens = np.lib.format.open_memmap(folder / tokens_file, mode="w+", dtype=np.float16, shape=shape)
        steps = range(0, len(unique), chunk_size)
        for start in tqdm(steps, desc=f"embedding {part}s", unit="chunk", disable=len(steps) < 4):
            chunk = unique[start:start + chunk_size]
            for k, sequence in zip(range(start, start + len(chunk)), representation.embed_part(part, chunk)):
                if len(sequence) != counts[k]:
                    raise RepresentationError(f"{representation!r}: {part} {unique[k]!r} embedded to "
                                              f"{len(sequence)} tokens, part_token_counts() said {counts[k]}")
                tokens[offsets[k]:offsets[k + 1]] = _to_float16(sequence, representation)
        tokens.flush()
        del tokens
        np.save(folder / offsets_file, offsets)
        (folder / keys_file).write_text(json.dumps(unique))
        parts.append({"name": part, "tokens": list(shape), "keys": len(unique)})
    np.save(folder / "index.npy", index)
    return {"layout": "parts", "parts": parts, "conditions": len(pairs)}


def _build(entry: Path, key: str, representation: PerturbationRepresentation, pairs: list[Condition],
           chunk_size: int) -> None:
    tmp = entry.parent / f".{entry.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        if representation.token_parts():
            layout = _build_parts(tmp, representation, pairs, chunk_size)
        else:
            layout = _build_conditions(tmp, representation, pairs, chunk_size)
        (tmp / "pairs.json").write_text(json.dumps(pairs))
        files = sorted(p.name for p in tmp.iterdir())
        header = {"format": FORMAT_VERSION, "key": key, "representation": representation.cache_key(),
                  "name": representation.name, "dtype": "float16", **layout,
                  "sizes": {name: (tmp / name).stat().st_size for name in files},
                  "checksums": {name: _checksum(tmp / name) for name in files}}
        (tmp / "header.json").write_text(json.dumps(header, indent=1))
        try:
            os.rename(tmp, entry)
        except OSError:  # another process finished the same entry first: keep theirs
            log.info("cache entry %s was written concurrently; using that one", entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cache_entry(
    representation: PerturbationRepresentation,
    smiles: Sequence[str],
    doses: Sequence[float],
    cache_dir: str | Path,
    chunk_size: int = 64,
    verify: bool = False,
    times: Sequence[float] | None = None,
) -> Path:
    """The folder of the cache entry for these conditions, built if missing or unusable (with a warning).
    `verify`: also compare every file with its checksum (reads the whole entry). `times` (hours): part of
    the conditions when the representation conditions on time, ignored otherwise."""
    pairs = sorted(set(representation.conditions(smiles, doses, times)))
    if not pairs:
        raise RepresentationError("no conditions to embed (every row a control?)")
    key = entry_key(representation, pairs)
    entry = Path(cache_dir) / f"{representation.name}-{key[:16]}"
    if entry.exists():
        try:
            load_embeddings(entry, expected_key=key, verify=verify)
            log.info("embedding cache hit: %s%s", entry, " (checksums verified)" if verify else "")
            return entry
        except CacheEntryError as err:
            log.warning("%s; rebuilding it", err)
            shutil.rmtree(entry)
    entry.parent.mkdir(parents=True, exist_ok=True)
    _build(entry, key, representation, pairs, chunk_size)
    return entry


def embed_conditions(
    representation: PerturbationRepresentation,
    smiles: Sequence[str],
    doses: Sequence[float],
    cache_dir: str | Path | None = None,
    chunk_size: int = 64,
    verify: bool = False,
    times: Sequence[float] | None = None,
) -> PerturbationFeatures | FactoredFeatures:
    """Features of the unique (SMILES, dose) conditions, sorted, with `pairs` naming each row (use
    `features.lookup(smiles, doses)` for the row of each input, `features.gather(rows)` for a batch's
    tokens). Read-only float16 memory maps of the cache entry in `cache_dir` (default:
    `representation.cache_dir`); without any cache folder they are computed in memory and not stored.
    A representation with `condition_on_time` needs `times` (hours): its conditions, `pairs` and lookups
    are (SMILES, dose, time)."""
    cache_dir = cache_dir if cache_dir is not None else representation.cache_dir
    if cache_dir is None:
        pairs = sorted(set(representation.conditions(smiles, doses, times)))
        s, d, t = _columns(pairs)
        counts = np.asarray(representation.token_counts(s, d, **t), dtype=np.int64)
        tokens = np.zeros((len(pairs), int(counts.max(initial=1)), representation.dim), dtype=np.float16)
        mask = np.zeros(tokens.shape[:2], dtype=bool)
        _encode_into(representation, pairs, tokens, mask, counts, chunk_size)
        return PerturbationFeatures(tokens=tokens, mask=mask, pairs=pairs)
    entry = cache_entry(representation, smiles, doses, cache_dir, chunk_size=chunk_size, verify=verify,
                        times=times)
    return load_embeddings(entry)


def embed_dataset(
    adata,
    representation: PerturbationRepresentation,
    cache_dir: str | Path | None = None,
    smiles_key: str = "smiles",
    dose_key: str = "dose",
    chunk_size: int = 64,
    verify: bool = False,
    time_key: str = "time",
) -> Path:
    """Embed the unique (obs[smiles_key], obs[dose_key]) conditions of the non-control rows of a dataset
    AnnData (`obs["is_control"]`, else dose 0 or empty SMILES, marks controls), with obs[time_key] when the
    representation conditions on time; returns the entry folder (open it with `load_embeddings`). For
    `pertdit embed` (`--verify`: checksum an existing entry)."""
    cache_dir = cache_dir if cache_dir is not None else representation.cache_dir
    if cache_dir is None:
        raise RepresentationError("embed_dataset needs a cache_dir (or a representation with one)")
    obs = adata.obs
    keys = (smiles_key, dose_key, time_key) if representation.condition_on_time else (smiles_key, dose_key)
    for key in keys:
        if key not in obs:
            raise RepresentationError(f"obs has no column {key!r} (columns: {list(obs.columns)})")
    if "is_control" in obs:
        treated = ~obs["is_control"].astype(bool).to_numpy()
    else:
        dose, smiles = obs[dose_key].astype(float).to_numpy(), obs[smiles_key].astype(str).to_numpy()
        treated = (dose > 0) & (smiles != "")
    smiles = obs[smiles_key].astype(str).to_numpy()[treated].tolist()
    doses = obs[dose_key].astype(float).to_numpy()[treated].tolist()
    times = obs[time_key].astype(float).to_numpy()[treated].tolist() if representation.condition_on_time else None
    return cache_entry(representation, smiles, doses, cache_dir, chunk_size=chunk_size, verify=verify,
                       times=times)
