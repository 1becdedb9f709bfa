"""Figure captions from the runs themselves: what data, split and replicates a figure shows, how its DiTs were
trained and sampled, and which text encoder and describer produced its text-based rows (read from each run's
`config.yaml`, Hydra's choices and the PRED provenance that `experiments.collect` put in the tidy table)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from experiments.plots import representation_caption


def _config(run_dir: str) -> tuple[dict, dict]:
    """(resolved config, Hydra's group choices) of a run directory; empty dicts when unreadable."""
    folder = Path(run_dir)
    try:
        cfg = OmegaConf.to_container(OmegaConf.load(folder / "config.yaml"))
    except (OSError, ValueError):
        return {}, {}
    hydra_file = folder / ".hydra" / "hydra.yaml"
    choices = {}
    if hydra_file.is_file():
        choices = OmegaConf.to_container(OmegaConf.load(hydra_file).hydra.runtime.choices) or {}
    return cfg, choices


def _numbers(values) -> str:
    found = sorted({int(v) for v in values if pd.notna(v)})
    return ", ".join(map(str, found))


def _replicates(name: str, values) -> str:
    """"seed 0" or "seeds 0, 1, 2" (one replicate: no error bars)."""
    found = _numbers(values)
    return f"{name}s {found}" if "," in found else f"{name} {found} (one replicate: no error bars)"


def data_sentence(table: pd.DataFrame) -> str:
    """Scale and data of the runs, e.g. "Scale small on data=bundle (the shipped L1000 collection)."."""
    cfg, choices = _config(table["run_dir"].iloc[0])
    data = choices.get("data") or "?"
    what = {"bundle": " (the shipped L1000 collection, 45 cell lines)", "plate": " (one A375 plate)",
            "geo": " (full L1000, GEO GSE92742)"}.get(data, "")
    scale = ", ".join(dict.fromkeys(table["scale"].astype(str)))
    note = "; a CPU check of the pipeline and the methods, not the paper's numbers" if scale == "small" else ""
    return f"Scale {scale}{note}; data={data}{what}."


def split_sentence(table: pd.DataFrame) -> str:
    """How the splits were drawn and over which replicates the bars / differences are taken."""
    parts = []
    kinds = set(table["split"].astype(str))
    unseen = table[table["split"].isin(["drug_unseen", "cell_line_unseen", "both_unseen"])]
    if len(unseen):
        cfg, _ = _config(unseen["run_dir"].iloc[0])
        split = cfg.get("split", {})
        cells = split.get("test_cells") or []
        held = (f"cell lines {', '.join(cells)} held out" if cells
                else f"{split.get('cell_fraction', 0):.0%} of the cell lines held out")
        parts.append(f"split=unseen: {held} and {split.get('drug_fraction', 0):.0%} of the drugs (by SMILES); "
                     f"{_replicates('seed', unseen['seed'])} (each redraws the drugs, validation rows, "
                     "initialisation and sampling noise)")
    folds = table[table["split"].astype(str).str.endswith("_fold")]
    if len(folds):
        families = [k for k in ("random_fold", "drug_fold", "cell_fold") if k in kinds]
        parts.append(f"{' / '.join(families)}: folds {_numbers(folds['fold'])} (split seed "
                     f"{_numbers(folds['seed'])})")
        named = folds.loc[folds["split_name"].astype(str).str.contains(r"\(", regex=True), "split_name"]
        if len(named):
            parts.append("cell folds named on this data (split=named_cell_fold: fold k tests every profile of "
                         f"its cell lines, {'; '.join(sorted(set(named)))}; validation: 15 % of the other "
                         "profiles)")
    organs = sorted(k.removeprefix("organ_") for k in kinds if k.startswith("organ_"))
    if organs:
        parts.append(f"organ hold-outs ({', '.join(organs)}): every cell line of the organ tested, validation "
                     f"20 % of the other profiles; {_replicates('seed', table['seed'])}")
    return ("; ".join(parts) + ".") if parts else ""


def dit_sentence(table: pd.DataFrame) -> str:
    """How the DiT rows were trained and sampled (from the first DiT run's config)."""
    dits = table[table["model"].astype(str).str.contains("dit")]
    if dits.empty:
        return ""
    cfg, _ = _config(dits["run_dir"].iloc[0])
    model, trainer = cfg.get("model", {}), cfg.get("trainer", {})
    backbone = model.get("backbone", {})
    steps = trainer.get("max_steps", -1)
    length = (f"{steps} optimiser steps" if steps and steps > 0 else f"up to {trainer.get('max_epochs')} epochs")
    sampler = str(model.get("sampler", "?")).upper()
    if model.get("sampler") == "ddim":
        sampler = (f"DDIM-{model.get('sampling_steps')} (eta {model.get('eta')}"
                   + (f", from t = {model['max_timestep']}" if model.get("max_timestep") is not None else "") + ")")
    elif model.get("sampler") == "ddpm":
        sampler = "DDPM-50"
    samples = model.get("eval_samples", 1)
    return (f"DiTs: d_model {backbone.get('d_model')}, {backbone.get('n_layers')} layer(s), {length} at batch "
            f"{cfg.get('data', {}).get('batch_size')}, lr {model.get('lr')}, scored with "
            f"{'the final weights' if trainer.get('limit_val_batches') == 0 else 'the best validation checkpoint'}"
            f"; sampler {sampler}, {'the mean of ' + str(samples) + ' samples' if samples > 1 else 'one sample'} "
            "per profile.")


def budget_sentence(table: pd.DataFrame) -> str:
    """The CPU budget of the trainings and what each method did with it (from every run's compute.json)."""
    import json

    fits: dict[str, list[dict]] = {}
    budget = None
    for label, run_dir in table[["label", "run_dir"]].drop_duplicates().itertuples(index=False):
        path = Path(run_dir) / "compute.json"
        if not path.is_file():
            continue
        compute = json.loads(path.read_text())
        if not compute.get("steps"):
            continue  # trivial baselines: statistics, no training
        budget = compute.get("cpu_budget_seconds") or budget
        fits.setdefault(str(label), []).append(compute)
    if not fits:
        return ""
    parts = []
    for label, runs in fits.items():
        steps = sorted(int(r["steps"]) for r in runs)
        stops = sorted({str(r.get("stopped_by") or ("compute_budget" if r.get("stopped_by_budget") else "?"))
                        for r in runs})
        shown = f"{steps[0]}" if steps[0] == steps[-1] else f"{steps[0]}-{steps[-1]}"
        parts.append(f"{label} {shown} steps ({', '.join(s.replace('_', ' ') for s in stops)})")
    head = (f"Each training had {budget / 60:g} CPU-minutes (callbacks.compute_budget, one thread): "
            if budget else "Trainings: ")
    return head + "; ".join(parts) + "."


def baseline_sentence(table: pd.DataFrame) -> str:
    labels = set(table["label"].astype(str))
    parts = []
    if labels & {"PRnet", "ChemCPA"}:
        parts.append("PRnet and ChemCPA at their defaults (early stopping on validation MSE, best checkpoint; "
                     "PRnet scores one sample of its Gaussian, as published)")
    if "mean_shift" in labels:
        parts.append("mean_shift: the control plus the mean training shift of the drug at that dose, else of the "
                     "drug, else of all training profiles (a reference every learned method should beat)")
    return ("; ".join(parts) + ".") if parts else ""


def figure_caption(table: pd.DataFrame) -> str:
    """The caption of a figure made from `table` (the tidy table of its runs)."""
    sentences = [data_sentence(table), split_sentence(table), dit_sentence(table), budget_sentence(table),
                 baseline_sentence(table), representation_caption(table)]
    return " ".join(s for s in sentences if s)
