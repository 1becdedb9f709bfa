"""Drug representations: (SMILES, dose) -> token features (N, L, D) with a mask, and their on-disk cache.

- `RDKitFingerprint`: FCFP4 bits x log10(dose + 1) (PRnet), one token.
- `TextRepresentation`: description (MolT5 caption or RDKit-derived) + dose prompt, embedded by a BERT-family
  encoder; token sequence with mask, or its mean (`pooled=True`).
- `embed_conditions` / `embed_dataset` / `load_embeddings`: the float16 memory-mapped cache.
- `validate_smiles`: split a table into parsable rows and a report of the others.
"""
from pertdit.perturbation.base import (
    PerturbationFeatures,
    PerturbationRepresentation,
    condition_pairs,
    parse_smiles,
    resolve_pretrained,
    validate_smiles,
)
from pertdit.perturbation.cache import (
    CacheEntryError,
    cache_entry,
    embed_conditions,
    embed_dataset,
    load_embeddings,
)
from pertdit.perturbation.description import RDKitDescription, Seq2SeqCaptioner
from pertdit.perturbation.fingerprint import RDKitFingerprint
from pertdit.perturbation.text import TextRepresentation

__all__ = [
    "CacheEntryError",
    "PerturbationFeatures",
    "PerturbationRepresentation",
    "RDKitDescription",
    "RDKitFingerprint",
    "Seq2SeqCaptioner",
    "TextRepresentation",
    "cache_entry",
    "condition_pairs",
    "embed_conditions",
    "embed_dataset",
    "load_embeddings",
    "parse_smiles",
    "resolve_pretrained",
    "validate_smiles",
]
