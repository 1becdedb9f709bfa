"""`pertdit predict`: the profile a trained model predicts for one compound, dose and cell line.

A trained run (`train(cfg)`'s run folder: config.yaml + checkpoints/) is rebuilt from its resolved config:
the dataset (for the gene order and the vehicle controls), the drug representation and the model, whose
weights come from the best checkpoint (else last.ckpt), loaded as data only (`pertdit.checkpoints`). The
control profile is the mean of the training data's vehicle controls of the cell line, the cell line's basal
profile (`data.basal`) for a cell line the model never saw, or the user's (`pertdit.control_profiles`); the
output says which. A diffusion model draws N samples with a seeded generator; a deterministic model gives one
prediction (spread 0). Output: an h5ad (X = samples (N, G), layers["control"], provenance in
uns["pertdit"]), a CSV (gene, control, mean, sd, lnfc, rank; rank 1 = most up-regulated) and a PNG of the
top up- and down-regulated genes with the samples' spread (`pertdit.figures.prediction`).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datetime import datetime, timezone

import anndata as ad
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

import pertdit
from pertdit.checkpoints import best_checkpoint, load_checkpoint
from pertdit.control_profiles import ControlProfile, check_scale, choose_control
from pertdit.data.sources import write_quietly
from pertdit.errors import DataError, RepresentationError
from pertdit.metrics.calibration import sample_spread
from pertdit.provenance import config_hash, model_choice

log = logging.getLogger(__name__)


@dataclass
class TrainedRun:
    """A trained model with the data module and config it was trained with."""

    cfg: DictConfig
    datamodule: Any
    model: Any
    checkpoint: Path | None

    @property
    def is_stochastic(self) -> bool:
        """True when the model draws samples (diffusion); False for deterministic predictors."""
        return callable(getattr(self.model, "sample", None))


# -- inputs ------------------------------------------------------------------------------------------------
def check_condition(smiles: str, dose: float) -> str:
    """RDKit's canonical form of `smiles`; an error naming the SMILES if it does not parse, or the dose if
    it is not > 0 µM."""
    from rdkit import Chem, rdBase

    if not (np.isfinite(dose) and dose > 0):
        raise DataError(f"dose must be a number > 0 µM, got {dose} (0 µM is the vehicle control)")
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles) if isinstance(smiles, str) and smiles.strip() else None
    if mol is None:
        raise RepresentationError(f"invalid SMILES {smiles!r}: RDKit cannot parse it")
    return Chem.MolToSmiles(mol)


def select_checkpoint(run_dir: Path) -> Path | None:
    """The best checkpoint of a run, else last.ckpt, else the newest; None when it has none."""
    return best_checkpoint(run_dir)


def load_run(run_dir: str | Path | None = None, checkpoint: str | Path | None = None,
             config: str | Path | None = None, device: str = "cpu") -> TrainedRun:
    """Rebuild a trained run from `run_dir` (config.yaml + checkpoints/) or from `checkpoint` + `config`."""
    from pertdit.train import build_datamodule, build_model

    if run_dir is not None:
        run_dir = Path(run_dir)
        config = Path(config) if config else run_dir / "config.yaml"
        checkpoint = Path(checkpoint) if checkpoint else select_checkpoint(run_dir)
    elif checkpoint is None or config is None:
        raise DataError("give a trained run with --run DIR, or both --checkpoint FILE and --config FILE")
    config = Path(config)
    if not config.is_file():
        raise DataError(f"config not found: {config} (a run folder of `pertdit train` holds config.yaml)")
    cfg = OmegaConf.load(config)
    state = load_checkpoint(checkpoint)["state_dict"] if checkpoint is not None else None  # data only, first
    dm = build_datamodule(cfg)
    model = build_model(cfg, dm, Path(run_dir or config.parent))
    model.prediction_path = None
    if state is not None:
        model.load_state_dict(state)
    elif getattr(model, "requires_training", True):
        raise DataError(f"no checkpoint in {Path(run_dir or config.parent) / 'checkpoints'}; train the model "
                        "first (`pertdit train`) or pass --checkpoint")
    else:  # baselines without weights (control, mean_shift): refit their statistics on the training rows
        model.fit_statistics(dm)  # the training rows, streamed in chunks
    model.eval().to(device)
    log.info("model %s from %s", type(model).__name__, checkpoint or "training statistics")
    checkpoint = Path(checkpoint) if checkpoint else None
    return TrainedRun(cfg=cfg, datamodule=dm, model=model, checkpoint=checkpoint)


# -- prediction --------------------------------------------------------------------------------------------
def condition_time(run: TrainedRun, time: float | None) -> float | None:
    """The time (hours) of the predicted condition: needed by a model whose drug representation conditions on
    time (`perturbation.condition_on_time`), not used by the others (None)."""
    if not getattr(run.datamodule.representation, "condition_on_time", False):
        if time is not None:
            log.info("--time %g h is not used: this model's representation does not condition on time", time)
        return None
    if time is None or not (np.isfinite(time) and time > 0):
        known = sorted(run.datamodule.adata.obs["time"].dropna().astype(float).unique())
        raise DataError(f"this model conditions on time (perturbation.condition_on_time=true): give --time "
                        f"HOURS > 0 (its training data has {', '.join(f'{t:g}' for t in known)} h), got {time}")
    return float(time)


def condition_batch(run: TrainedRun, smiles: str, dose: float, cell_line: str,
                    control: np.ndarray, time: float | None = None) -> dict[str, torch.Tensor]:
    """A batch of one condition (B = 1) with the keys a model's predict path reads (no x0, row -1); `time`
    (hours) is read when the representation conditions on time."""
    dm = run.datamodule
    time = condition_time(run, time)
    extra = {"times": [time]} if time is not None else {}
    features = dm.representation.encode([smiles], [float(dose)], **extra)
    # float16, as the training cache holds them
    tokens = np.asarray(features.tokens, dtype=np.float16).astype(np.float32)
    obs = dm.adata.obs
    known = obs.loc[(obs["smiles"] == smiles) & ~obs["is_control"].to_numpy(bool), "drug"].astype(str)
    drug = dm.drug_names.index(known.iloc[0]) if len(known) else -1  # -1: a drug the dataset does not have
    cell = dm.cell_names.index(cell_line) if cell_line in dm.cell_names else -1
    return {
        "c_pre": torch.as_tensor(control, dtype=torch.float32)[None],
        "c_pert": torch.from_numpy(tokens),
        "c_pert_mask": torch.from_numpy(np.asarray(features.mask, dtype=bool)),
        "dose": torch.tensor([float(dose)]),
        "time": torch.tensor([float("nan") if time is None else time]),
        "drug_index": torch.tensor([drug], dtype=torch.long),
        "cell_index": torch.tensor([cell], dtype=torch.long),
        "row": torch.tensor([-1], dtype=torch.long),
    }


@torch.no_grad()
def predict(run: TrainedRun, smiles: str, dose: float, cell_line: str, control_file: str | Path | None = None,
            n_samples: int = 10, seed: int = 0, batch_size: int = 256, control_scale: str = "model",
            basal_file: str | Path | None = "config", time: float | None = None) -> ad.AnnData:
    """Predicted profiles: X = samples (N, G) (N = 1 for a deterministic model), layers["control"], and
    per-gene `var` columns control, mean, sd, lnfc (mean - control, log scale), rank (1 = most up).
    `time` (hours after treatment): needed by a model conditioned on time, unused otherwise.

    The control: `control_file` (on the model's scale, or raw with `control_scale="raw"`), else the training
    data's vehicle controls of the cell line, else its basal profile from `basal_file` ("config": the run's
    `data.basal`); `uns["pertdit"]["control"]` says which.
    """
    if n_samples < 1:
        raise DataError(f"--samples must be >= 1, got {n_samples}")
    canonical = check_condition(smiles, dose)
    time = condition_time(run, time)
    dm, model = run.datamodule, run.model
    if basal_file == "config":
        basal_file = OmegaConf.select(run.cfg, "data.basal", default=None)
    cell_line, control = choose_control(dm.adata, cell_line, control_file, control_scale, basal_file)
    _check_cell_identity(run, cell_line)
    check_scale(control.values, dm.adata)
    if not run.is_stochastic and n_samples > 1:
        log.info("%s is deterministic: one prediction, spread 0", type(model).__name__)
        n_samples = 1
    one = condition_batch(run, canonical, dose, cell_line, control.values, time)
    one = {k: v.to(model.device) for k, v in one.items()}
    generator = torch.Generator(device=model.device).manual_seed(seed)
    samples = []
    for start in range(0, n_samples, batch_size):
        n = min(batch_size, n_samples - start)
        batch = {k: v.expand(n, *v.shape[1:]).contiguous() for k, v in one.items()}
        pred = model.sample(batch, generator=generator) if run.is_stochastic else model.predict_batch(batch)
        samples.append(pred.float().cpu())
    X = torch.cat(samples).numpy()
    if run.model.relu_predictions:
        X = np.maximum(X, 0.0)
    return _prediction_adata(run, X, control, canonical, dose, cell_line, seed, time)


def _check_cell_identity(run: TrainedRun, cell_line: str) -> None:
    """A model with one learned embedding per training cell line (ChemCPA) cannot predict another one."""
    if getattr(run.model, "uses_cell_identity", False) and cell_line not in run.datamodule.cell_names:
        raise DataError(f"{type(run.model).__name__} learns one embedding per cell line of its training data "
                        f"({', '.join(run.datamodule.cell_names)}) and has none for {cell_line!r}; "
                        "predict it with a model conditioned on the control profile alone (a DiT, PRnet, "
                        "mean_shift)")


def _prediction_adata(run: TrainedRun, X: np.ndarray, control: ControlProfile, smiles: str, dose: float,
                      cell_line: str, seed: int, time: float | None = None) -> ad.AnnData:
    dm = run.datamodule
    n = X.shape[0]
    obs = pd.DataFrame({"sample": np.arange(n), "smiles": smiles, "dose": float(dose), "cell_id": cell_line,
                        "time": float("nan") if time is None else float(time)},
                       index=[f"sample_{i}" for i in range(n)])
    var = dm.adata.var.copy()
    var["control"] = control.values
    var["mean"] = X.mean(axis=0, dtype=np.float64)
    var["sd"] = X.std(axis=0, ddof=1, dtype=np.float64) if n > 1 else 0.0
    var["lnfc"] = var["mean"] - var["control"]
    if n > 1:  # central 50 % / 90 % intervals of a Gaussian fit to the samples (metrics/calibration.py)
        for name, value in sample_spread(X[:, None, :]).items():
            if name.startswith("interval_"):
                var[name] = value[0].astype(np.float64)
    var["rank"] = var["lnfc"].rank(ascending=False, method="first").astype(int)
    out = ad.AnnData(X=X.astype(np.float32), obs=obs, var=var)
    out.layers["control"] = np.broadcast_to(control.values.astype(np.float32), X.shape).copy()
    out.uns["pertdit"] = {
        "model": model_choice(run.cfg), "model_class": type(run.model).__name__,
        "checkpoint": str(run.checkpoint or ""), "n_samples": n, "seed": int(seed),
        "stochastic": run.is_stochastic, "relu_predictions": bool(run.model.relu_predictions),
        "control": control.description, "control_source": control.source,
        "representation": dm.representation.cache_key(),
        "split": str(dm.split.name), "training_seed": int(run.cfg.get("seed", 0)),
        "config_hash": config_hash(run.cfg), "pertdit_version": pertdit.__version__,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return out


def gene_table(pred: ad.AnnData) -> pd.DataFrame:
    """gene, control, mean, sd, lnfc, rank of a prediction, and the central 50 % / 90 % intervals of its
    samples (interval_50_lower, ..., when it has several), ordered by rank (most up-regulated first)."""
    intervals = [c for c in pred.var.columns if c.startswith("interval_")]
    table = pred.var[["control", "mean", "sd", "lnfc", "rank", *intervals]].copy()
    table.insert(0, "gene", pred.var_names.astype(str))
    return table.sort_values("rank").reset_index(drop=True)


def write_prediction(pred: ad.AnnData, out: str | Path, top: int = 10) -> tuple[Path, Path, Path]:
    """Write `out` (.h5ad), the gene table beside it (.csv) and the picture of the top `top` up- and
    down-regulated genes (.png); returns the three paths."""
    from pertdit.figures.prediction import plot_prediction

    out = Path(out)
    h5ad = out if out.suffix == ".h5ad" else out.with_suffix(".h5ad")
    h5ad.parent.mkdir(parents=True, exist_ok=True)
    write_quietly(pred, h5ad)
    csv = h5ad.with_suffix(".csv")
    gene_table(pred).to_csv(csv, index=False)
    png = plot_prediction(pred, h5ad.with_suffix(".png"), k=top)
    return h5ad, csv, png


def format_top_genes(pred: ad.AnnData, k: int = 10) -> str:
    """The top `k` up- and down-regulated genes by lnFC as text."""
    table = gene_table(pred)
    lines = []
    for title, part in (("up", table.head(k)), ("down", table.iloc[::-1].head(k))):
        lines.append(f"top {len(part)} {title}-regulated genes (lnFC = predicted mean - control):")
        lines += [f"  {r.gene:<10} lnFC {r.lnfc:+.4f}   mean {r.mean:.4f} ± {r.sd:.4f}"
                  for r in part.itertuples()]
    return "\n".join(lines)


# -- command line ------------------------------------------------------------------------------------------
def predict_cli(argv: list[str]) -> int:
    """`pertdit predict --smiles S --dose D --cell-line C [--control FILE] [--samples N] --run DIR`."""
    parser = argparse.ArgumentParser(prog="pertdit predict", description=__doc__.split("\n\n")[0])
    source = parser.add_argument_group("trained model: --run, or --checkpoint with --config")
    source.add_argument("--run", type=Path, help="run folder of `pertdit train` (config.yaml, checkpoints/)")
    source.add_argument("--checkpoint", type=Path,
                        help="a checkpoint file (default: the run's best, else last)")
    source.add_argument("--config", type=Path, help="the run's resolved config.yaml (with --checkpoint)")
    parser.add_argument("--smiles", required=True, help="the compound's SMILES")
    parser.add_argument("--dose", required=True, type=float, help="dose in µM (> 0)")
    parser.add_argument("--time", type=float, default=None,
                        help="hours after treatment; needed by a model trained with "
                        "perturbation.condition_on_time=true, unused otherwise")
    parser.add_argument("--cell-line", required=True,
                        help="cell line id, e.g. A375; one without vehicle controls in the training data "
                        "takes its basal profile from the run's data.basal (or --basal), or --control")
    parser.add_argument("--control", type=Path, help="control profile (CSV/TSV/h5ad/GCT; several profiles: "
                        "their mean); default: the training data's vehicle controls of the cell line")
    parser.add_argument("--control-scale", choices=("model", "raw"), default="model",
                        help="--control is on the model's scale (model, default) or raw Level-3 and goes "
                        "through the dataset's transform (raw)")
    parser.add_argument("--basal", type=Path, default=None,
                        help="basal profiles per cell line (GCT, one column per cell line); default: the "
                        "run's data.basal")
    parser.add_argument("--samples", type=int, default=10, help="diffusion samples (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling generator")
    parser.add_argument("--out", type=Path, default=Path("prediction.h5ad"),
                        help="h5ad to write; the gene table (.csv) and the picture (.png) go beside it "
                        "(default prediction.h5ad)")
    parser.add_argument("--top", type=int, default=10, help="number of up/down genes to print")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")
    args = parser.parse_args(argv)
    if args.run is None and (args.checkpoint is None or args.config is None):
        parser.error("give --run DIR, or both --checkpoint FILE and --config FILE")
    check_condition(args.smiles, args.dose)  # fail fast, before the model is built
    run = load_run(args.run, args.checkpoint, args.config, device=args.device)
    pred = predict(run, args.smiles, args.dose, args.cell_line, args.control, args.samples, args.seed,
                   control_scale=args.control_scale, basal_file=args.basal or "config", time=args.time)
    h5ad, csv, png = write_prediction(pred, args.out, top=args.top)
    n = pred.n_obs
    spread = (f"per-gene sd over {n} diffusion samples (seed {args.seed})" if run.is_stochastic
              else f"{type(run.model).__name__} is deterministic: 1 prediction, sd 0")
    print(f"{args.smiles} at {args.dose:g} µM in {pred.obs['cell_id'].iloc[0]}: {spread}")
    print(f"control: {pred.uns['pertdit']['control']}")
    print(format_top_genes(pred, args.top))
    print(f"written: {h5ad} (X = {n} x {pred.n_vars} predicted profiles)\n         {csv} (gene table)\n"
          f"         {png} (top {args.top} up/down genes, samples' spread)")
    return 0
