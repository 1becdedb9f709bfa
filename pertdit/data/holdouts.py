"""Named hold-outs: resolve `split.test_cells` / `split.test_drugs` against a dataset, and check for leakage.

Drugs are held out by what the model sees, the canonical SMILES (`obs["smiles"]`): several `pert_id`s or names
can share one structure, and all of them go with it. Cell lines are held out by `obs["cell_id"]`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence

import anndata as ad
import numpy as np

from pertdit.errors import SplitError

SEEN = ("train", "val")
DRUG_NAME_COLUMNS = ("drug", "pert_iname", "pert_id")
_SHOWN = 5


def _treated_obs(adata: ad.AnnData):
    return adata.obs.loc[~adata.obs["is_control"].to_numpy(bool)]


def _unknown(kind: str, name: str, vocabulary: Iterable[str], hint: str) -> SplitError:
    vocabulary = sorted(set(vocabulary))
    by_lower = {v.lower(): v for v in vocabulary}
    close = [by_lower[m] for m in difflib.get_close_matches(name.lower(), list(by_lower), n=5, cutoff=0.6)]
    suggestion = f"close matches: {close}" if close else f"e.g. {vocabulary[:8]}"
    return SplitError(f"split.{kind}: {name!r} matches no {hint} of this dataset; {suggestion}")


def resolve_cells(adata: ad.AnnData, names: Sequence[str] | None) -> list[str]:
    """The `cell_id`s of `names` (exact, else case-insensitive); SplitError with close matches when unknown."""
    cells = sorted(set(_treated_obs(adata)["cell_id"].astype(str)))
    by_lower = {c.lower(): c for c in cells}
    resolved = []
    for name in [str(n) for n in (names or [])]:
        cell = name if name in cells else by_lower.get(name.lower())
        if cell is None:
            raise _unknown("test_cells", name, cells, "treated cell line (cell_id)")
        resolved.append(cell)
    return sorted(set(resolved))


def resolve_drugs(adata: ad.AnnData, names: Sequence[str] | None) -> list[str]:
    """Canonical SMILES of `names`: drug names, pert_ids or SMILES (case-insensitive for names and ids).

    A name maps to every SMILES its rows carry; a SMILES is canonicalised with RDKit first. SplitError with close
    matches when a name matches nothing.
    """
    obs = _treated_obs(adata)
    smiles = obs["smiles"].astype(str).to_numpy()
    known = set(smiles)
    by_name: dict[str, set[str]] = {}
    for column in DRUG_NAME_COLUMNS:
        if column in obs:
            for value, s in zip(obs[column].astype(str).to_numpy(), smiles):
                if value:
                    by_name.setdefault(value.lower(), set()).add(s)
    resolved: set[str] = set()
    for name in [str(n) for n in (names or [])]:
        if name.lower() in by_name:
            resolved |= by_name[name.lower()]
            continue
        if name in known:
            resolved.add(name)
            continue
        from pertdit.data.compounds import canonical_smiles

        canonical = canonical_smiles(name)
        if canonical in known:
            resolved.add(canonical)
            continue
        vocabulary = [v for c in DRUG_NAME_COLUMNS if c in obs for v in obs[c].astype(str) if v]
        hint = "drug name, pert_id or SMILES" + (f" (as SMILES it reads {canonical!r})" if canonical else "")
        raise _unknown("test_drugs", name, vocabulary, hint)
    return sorted(resolved)


def named_suffix(test_cells: Sequence[str] | None, test_drugs: Sequence[str] | None) -> str:
    """A short, stable suffix for a split column that holds out named units ('' when none are named)."""
    if not test_cells and not test_drugs:
        return ""
    import hashlib

    key = "|".join(sorted(map(str, test_cells or []))) + "||" + "|".join(sorted(map(str, test_drugs or [])))
    return "_named" + hashlib.sha256(key.encode()).hexdigest()[:8]


def held_values(adata: ad.AnnData, column: str, labels: Sequence[str], key: str) -> set[str]:
    """The values of obs `key` among rows whose split label is in `labels`."""
    rows = adata.obs[column].astype(str).isin(list(labels)).to_numpy()
    return set(adata.obs[key].astype(str).to_numpy()[rows])


def assert_held_out(adata: ad.AnnData, column: str, held: Mapping[str, Iterable[str]]) -> None:
    """SplitError naming every held-out item (obs key -> values) that also occurs in a train or val row.

    `held` is e.g. {"smiles": test SMILES, "cell_id": test cell lines}. Shared SMILES are named with the drug
    names they carry in test and in train/val.
    """
    labels = adata.obs[column].astype(str).to_numpy()
    seen = np.isin(labels, SEEN)
    problems = []
    for key, items in held.items():
        values = adata.obs[key].astype(str).to_numpy()
        shared = sorted(set(map(str, items)) & set(values[seen]))
        if shared:
            what = "SMILES" if key == "smiles" else ("cell line(s)" if key == "cell_id" else key)
            shown = [_describe(adata, key, item, seen) for item in shared[:_SHOWN]]
            more = f" and {len(shared) - _SHOWN} more" if len(shared) > _SHOWN else ""
            problems.append(f"{len(shared)} held-out {what} also in train/val: {', '.join(shown)}{more}")
    if problems:
        raise SplitError(f"split {column!r} leaks: " + "; ".join(problems) + ". A model would be tested on "
                         "what it trained on; this is a bug in the split, please report it")


def _describe(adata: ad.AnnData, key: str, item: str, seen: np.ndarray) -> str:
    """'SMILES' (test: names; train/val: names) for a SMILES; the item itself otherwise."""
    if key != "smiles" or "drug" not in adata.obs:
        return repr(item)
    rows = adata.obs["smiles"].astype(str).to_numpy() == item
    drugs = adata.obs["drug"].astype(str).to_numpy()
    return (f"{item!r} (train/val: {sorted(set(drugs[rows & seen]))}; "
            f"held out: {sorted(set(drugs[rows & ~seen]))})")
