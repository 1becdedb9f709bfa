"""Where a result came from: the provenance written into every PRED.h5ad and prediction (`uns["pertdit"]`),
and, per run, `provenance.yaml` next to `config.yaml` (what the drug representation actually ran, e.g. RDKit
descriptions substituted for missing MolT5 captions), with any substitution also a `metrics.csv` column.

`config_hash` fingerprints the resolved config without its machine-specific parts (`paths`, `ckpt_path`; a
value under one of the `paths` folders counts by its place in that folder), so the same experiment run on two
machines gets the same hash, and any change of data, split, model, representation, diffusion or training
settings gives another.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

import pertdit

#: config keys that say where things are, not what was run
MACHINE_KEYS = ("paths", "ckpt_path")
#: the run's record of what actually ran, next to config.yaml
PROVENANCE_FILE = "provenance.yaml"
#: metrics.csv column naming a substitution the representation made (absent when it made none)
SUBSTITUTION_COLUMN = "representation_substitution"


def config_hash(cfg: DictConfig) -> str:
    """sha256 (first 16 hex digits) of the resolved config, keys sorted, without `MACHINE_KEYS`."""
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    folders = container.get("paths") or {}
    for key in MACHINE_KEYS:
        container.pop(key, None)
    prefixes = sorted(((str(v), k) for k, v in folders.items() if v), key=lambda p: -len(p[0]))

    def portable(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: portable(v) for k, v in value.items()}
        if isinstance(value, list):
            return [portable(v) for v in value]
        if isinstance(value, str):
            for prefix, key in prefixes:
                if value == prefix or value.startswith(prefix.rstrip("/") + "/"):
                    return f"<paths.{key}>{value[len(prefix):]}"
        return value

    text = OmegaConf.to_yaml(OmegaConf.create(portable(container)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def model_choice(cfg: DictConfig) -> str:
    """The model a config trains: the method's label when there is one (PRnet), else the model's class."""
    label = OmegaConf.select(cfg, "method.name", default=None)
    if label:
        return str(label)
    target = str(OmegaConf.select(cfg, "model._target_", default="unknown")).rsplit(".", 1)[-1]
    kind = OmegaConf.select(cfg, "model.kind", default=None)
    return f"{target}({kind})" if kind else target


def run_provenance(cfg: DictConfig, split_name: str, checkpoint: str | Path | None,
                   smoke_test: bool = False) -> dict[str, Any]:
    """model, split, seed, checkpoint, config hash, package version, date (UTC, ISO 8601), smoke_test."""
    return {
        "model": model_choice(cfg),
        "split": str(split_name),
        "seed": int(cfg.get("seed", 0)),
        "checkpoint": str(checkpoint) if checkpoint else "",
        "config": str(Path(str(OmegaConf.select(cfg, "paths.run_dir", default="."))) / "config.yaml"),
        "config_hash": config_hash(cfg),
        "pertdit_version": pertdit.__version__,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "smoke_test": bool(smoke_test),
    }


def substitution_note(representation: Mapping[str, Any] | None) -> str | None:
    """'<used> instead of <requested> (<reason>)' when the representation's provenance records a substitution
    (`substitution_*` keys, e.g. of `TextRepresentation` with `describer=auto`), else None."""
    record = dict(representation or {})
    if not record.get("substitution_used"):
        return None
    note = f"{record['substitution_used']} instead of {record.get('substitution_requested', 'the requested input')}"
    reason = str(record.get("substitution_reason", "")).strip()
    return f"{note} ({reason.splitlines()[0]})" if reason else note


def write_run_provenance(path: str | Path, representation: Mapping[str, Any] | None) -> Path:
    """`provenance.yaml`: the drug representation's provenance (class, cache key, encoder, describer and any
    substitution, with `substitution` a one-line note or null); written to a temporary file, then renamed."""
    path = Path(path)
    record = {str(k): str(v) for k, v in dict(representation or {}).items()}
    text = OmegaConf.to_yaml(OmegaConf.create({"representation": record,
                                               "substitution": substitution_note(record)}))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
