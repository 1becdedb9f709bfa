"""On-disk embedding cache: each unique (SMILES, dose) condition embedded once, as a float16 memory map.

An entry is a folder `<cache_dir>/<representation.name>-<key[:16]>/` holding
`tokens.npy` (N, L, D) float16, `mask.npy` (N, L) bool, `pairs.json` (the N conditions, sorted) and
`header.json` (format, full key, shape, file sizes and BLAKE2b checksums), written last. The key hashes the
representation's `cache_key()`, the conditions and the representation's `content_key()` (the texts).
An entry whose header, sizes, shapes or checksums do not match is rebuilt with a warning, never used.
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
    PerturbationFeatures,
    PerturbationRepresentation,
    condition_pairs,
    stable_hash,
)

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
FILES = ("tokens.npy", "mask.npy", "pairs.json")


class CacheEntryError(RepresentationError):
    """A cache entry that cannot be used as it is (missing, truncated, corrupt or built for other inputs)."""


def entry_key(representation: PerturbationRepresentation, pairs: list[tuple[str, float]]) -> str:
    """The full key of the cache entry of `pairs` (sorted, unique) under `representation`."""
    smiles, doses = [s for s, _ in pairs], [d for _, d in pairs]
    return stable_hash(
        {
            "format": FORMAT_VERSION,
            "representation": representation.cache_key(),
            "pairs": pairs,
            "content": representation.content_key(smiles, doses),
        },
        length=64,
    )


def _checksum(path: Path, block: int = 1 << 23) -> str:
    digest = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def load_embeddings(
    path: str | Path, expected_key: str | None = None, verify: bool = True
) -> PerturbationFeatures:
    """Open a cache entry: tokens memory-mapped read-only (N, L, D) float16, mask (N, L), `pairs`.

    Raises CacheEntryError when the header is missing or unreadable, the key differs from `expected_key`, a
    file is missing, truncated or of another shape, or (with `verify`) a checksum differs.
    """
    path = Path(path)
    try:
        header = json.loads((path / "header.json").read_text())
    except (OSError, ValueError) as err:
        raise CacheEntryError(f"cache entry {path}: no readable header.json ({type(err).__name__})") from None
    if header.get("format") != FORMAT_VERSION:
        raise CacheEntryError(f"cache entry {path}: format {header.get('format')}, expected {FORMAT_VERSION}")
    if expected_key is not None and header.get("key") != expected_key:
        raise CacheEntryError(
            f"cache entry {path}: built for key {header.get('key')}, expected {expected_key}"
        )
    sizes, checksums, shape = header.get("sizes") or {}, header.get("checksums") or {}, header.get("shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(n, int) for n in shape)):
        raise CacheEntryError(f"cache entry {path}: header has no valid (N, L, D) shape")
    shape = tuple(shape)
    for name in FILES:
        file = path / name
        if not file.is_file() or file.stat().st_size != sizes.get(name):
            raise CacheEntryError(f"cache entry {path}: {name} is missing or truncated")
        if verify and _checksum(file) != checksums.get(name):
            raise CacheEntryError(f"cache entry {path}: checksum of {name} does not match its header")
    try:
        tokens = np.load(path / "tokens.npy", mmap_mode="r")
        mask = np.load(path / "mask.npy")
        pairs = [(str(s), float(d)) for s, d in json.loads((path / "pairs.json").read_text())]
    except (OSError, ValueError) as err:
        raise CacheEntryError(f"cache entry {path}: unreadable ({err})") from None
    found = (tokens.dtype, tokens.shape, mask.dtype, mask.shape, len(pairs))
    if found != (np.float16, shape, np.bool_, shape[:2], shape[0]):
        raise CacheEntryError(
            f"cache entry {path}: tokens {tokens.dtype}{tokens.shape}, mask {mask.dtype}{mask.shape}, "
            f"{len(pairs)} pairs do not match the header shape {shape}"
        )
    return PerturbationFeatures(tokens=tokens, mask=mask, pairs=pairs)


def _chunks(pairs: list[tuple[str, float]], size: int) -> list[slice]:
    """Consecutive slices of about `size` sorted pairs that never split one SMILES (so each description is
    embedded once)."""
    out, start = [], 0
    for i in range(1, len(pairs) + 1):
        if i == len(pairs) or (i - start >= size and pairs[i][0] != pairs[i - 1][0]):
            out.append(slice(start, i))
            start = i
    return out


def _encode_into(
    representation: PerturbationRepresentation,
    pairs: list[tuple[str, float]],
    tokens: np.ndarray,
    mask: np.ndarray,
    counts: np.ndarray,
    chunk_size: int,
) -> None:
    chunks = _chunks(pairs, chunk_size)
    for rows in tqdm(chunks, desc=f"embedding {representation.name}", unit="chunk", disable=len(chunks) < 4):
        features = representation.encode([s for s, _ in pairs[rows]], [d for _, d in pairs[rows]])
        length = features.tokens.shape[1]
        if length > tokens.shape[1] or not np.array_equal(features.mask.sum(axis=1), counts[rows]):
            raise RepresentationError(
                f"{representation!r} encoded a different number of tokens than its token_counts() said"
            )
        half = features.tokens.astype(np.float16)
        if not np.isfinite(half).all():
            raise RepresentationError(f"{representation!r}: embeddings overflow float16 (|x| > 65504)")
        tokens[rows, :length] = half
        mask[rows, :length] = features.mask


def _build(
    entry: Path,
    key: str,
    representation: PerturbationRepresentation,
    pairs: list[tuple[str, float]],
    chunk_size: int,
) -> None:
    smiles, doses = [s for s, _ in pairs], [d for _, d in pairs]
    counts = np.asarray(representation.token_counts(smiles, doses), dtype=np.int64)
    shape = (len(pairs), int(counts.max()), representation.dim)
    log.info("building embedding cache %s: %d conditions, tokens %s float16", entry, len(pairs), shape)
    tmp = entry.parent / f".{entry.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        tokens = np.lib.format.open_memmap(tmp / "tokens.npy", mode="w+", dtype=np.float16, shape=shape)
        mask = np.zeros(shape[:2], dtype=bool)
        _encode_into(representation, pairs, tokens, mask, counts, chunk_size)
        tokens.flush()
        del tokens
        np.save(tmp / "mask.npy", mask)
        (tmp / "pairs.json").write_text(json.dumps(pairs))
        header = {
            "format": FORMAT_VERSION,
            "key": key,
            "representation": representation.cache_key(),
            "name": representation.name,
            "shape": list(shape),
            "dtype": "float16",
            "sizes": {name: (tmp / name).stat().st_size for name in FILES},
            "checksums": {name: _checksum(tmp / name) for name in FILES},
        }
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
    verify: bool = True,
) -> Path:
    """The folder of the cache entry for these conditions, built if missing or unusable (with a warning)."""
    pairs = sorted(set(condition_pairs(smiles, doses)))
    if not pairs:
        raise RepresentationError("no conditions to embed (every row a control?)")
    key = entry_key(representation, pairs)
    entry = Path(cache_dir) / f"{representation.name}-{key[:16]}"
    if entry.exists():
        try:
            load_embeddings(entry, expected_key=key, verify=verify)
            log.info("embedding cache hit: %s", entry)
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
    verify: bool = True,
) -> PerturbationFeatures:
    """Features of the unique (SMILES, dose) conditions, sorted, with `pairs` naming each row (use
    `features.lookup(smiles, doses)` for the row of each input). Tokens are a read-only float16 memory map
    of the cache entry in `cache_dir` (default: `representation.cache_dir`); without any cache folder they
    are computed in memory (float16) and not stored."""
    cache_dir = cache_dir if cache_dir is not None else representation.cache_dir
    if cache_dir is None:
        pairs = sorted(set(condition_pairs(smiles, doses)))
        s, d = [p[0] for p in pairs], [p[1] for p in pairs]
        counts = np.asarray(representation.token_counts(s, d), dtype=np.int64)
        tokens = np.zeros((len(pairs), int(counts.max(initial=1)), representation.dim), dtype=np.float16)
        mask = np.zeros(tokens.shape[:2], dtype=bool)
        _encode_into(representation, pairs, tokens, mask, counts, chunk_size)
        return PerturbationFeatures(tokens=tokens, mask=mask, pairs=pairs)
    entry = cache_entry(representation, smiles, doses, cache_dir, chunk_size=chunk_size, verify=verify)
    return load_embeddings(entry, verify=False)


def embed_dataset(
    adata,
    representation: PerturbationRepresentation,
    cache_dir: str | Path | None = None,
    smiles_key: str = "smiles",
    dose_key: str = "dose",
    chunk_size: int = 64,
) -> Path:
    """Embed the unique (obs[smiles_key], obs[dose_key]) conditions of the non-control rows of a dataset
    AnnData (`obs["is_control"]`, else dose 0 or empty SMILES, marks controls); returns the entry folder
    (open it with `load_embeddings`). For `pertdit embed`."""
    cache_dir = cache_dir if cache_dir is not None else representation.cache_dir
    if cache_dir is None:
        raise RepresentationError("embed_dataset needs a cache_dir (or a representation with one)")
    obs = adata.obs
    for key in (smiles_key, dose_key):
        if key not in obs:
            raise RepresentationError(f"obs has no column {key!r} (columns: {list(obs.columns)})")
    if "is_control" in obs:
        treated = ~obs["is_control"].astype(bool).to_numpy()
    else:
        dose, smiles = obs[dose_key].astype(float).to_numpy(), obs[smiles_key].astype(str).to_numpy()
        treated = (dose > 0) & (smiles != "")
    smiles = obs[smiles_key].astype(str).to_numpy()[treated].tolist()
    doses = obs[dose_key].astype(float).to_numpy()[treated].tolist()
    return cache_entry(representation, smiles, doses, cache_dir, chunk_size=chunk_size)
