"""`pertdit predict`: the profile a trained model predicts for one compound, dose and cell line.

A trained run (`train(cfg)`'s run folder: config.yaml + checkpoints/) is rebuilt from its resolved config:
the dataset (for the gene order and the vehicle controls), the drug representation and the model, whose
weights come from the best checkpoint (else last.ckpt). The control profile is the mean of the dataset's
vehicle controls of the cell line, or a profile read from a file. A diffusion model draws N samples with a
seeded generator; a deterministic model gives one prediction (spread 0). Output: an h5ad (X = samples
(N, G), layers["control"]) and a CSV (gene, control, mean, sd, lnfc, rank; rank 1 = most up-regulated).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from pertdit.data.sources import write_quietly
from pertdit.errors import DataError, RepresentationError

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
    """The best checkpoint of a run (as recorded by ModelCheckpoint in last.ckpt), else last.ckpt, else the
    newest checkpoint; None when the run has none."""
    folder = run_dir / "checkpoints"
    found = sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    if not found:
        return None
    last = folder / "last.ckpt"
    if last.is_file():
        state = torch.load(last, map_location="cpu", weights_only=False).get("callbacks", {})
        for key, value in state.items():
            best = value.get("best_model_path") if key.startswith("ModelCheckpoint") else None
            if best and (folder / Path(best).name).is_file():
                return folder / Path(best).name
        return last
    return found[-1]


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
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise DataError(f"checkpoint not found: {checkpoint}")
    cfg = OmegaConf.load(config)
    dm = build_datamodule(cfg)
    model = build_model(cfg, dm, Path(run_dir or config.parent))
    model.prediction_path = None
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        model.load_state_dict(state["state_dict"])
    elif getattr(model, "requires_training", True):
        raise DataError(f"no checkpoint in {Path(run_dir or config.parent) / 'checkpoints'}; train the model "
                        "first (`pertdit train`) or pass --checkpoint")
    else:  # baselines without weights (control, mean_shift): refit their statistics on the training rows
        model.fit_statistics(dm)  # the training rows, streamed in chunks
    model.eval().to(device)
    log.info("model %s from %s", type(model).__name__, checkpoint or "training statistics")
    checkpoint = Path(checkpoint) if checkpoint else None
    return TrainedRun(cfg=cfg, datamodule=dm, model=model, checkpoint=checkpoint)


def resolve_cell_line(adata: ad.AnnData, cell_line: str, allow_unknown: bool = False) -> str:
    """The dataset's spelling of `cell_line` (case-insensitive); an error listing the known cell lines, unless
    `allow_unknown` (a control profile was given for a cell line the model never saw)."""
    known = sorted(adata.obs["cell_id"].astype(str).unique())
    if cell_line in known:
        return cell_line
    matches = [c for c in known if c.lower() == cell_line.lower()]
    if len(matches) == 1:
        return matches[0]
    if allow_unknown:
        log.warning("cell line %r is not in the model's dataset (%s); predicting from the given control "
                    "alone (models with cell-line covariates, such as ChemCPA, cannot do that)", cell_line,
                    ", ".join(known))
        return cell_line
    raise DataError(f"unknown cell line {cell_line!r}; the model's dataset has {len(known)}: "
                    f"{', '.join(known)} (or give its control profile with --control FILE)")


def cell_control(adata: ad.AnnData, cell_line: str) -> np.ndarray:
    """(G,) mean of the dataset's vehicle controls of `cell_line` (a name `resolve_cell_line` accepted)."""
    cells = adata.obs["cell_id"].astype(str).to_numpy()
    rows = np.flatnonzero((cells == cell_line) & adata.obs["is_control"].to_numpy(bool))
    if rows.size == 0:
        raise DataError(f"cell line {cell_line!r} has no vehicle controls in the dataset; "
                        "pass --control FILE")
    return np.asarray(adata.X[rows], dtype=np.float64).mean(axis=0)


def read_control(path: str | Path, genes: list[str]) -> np.ndarray:
    """(G,) control profile in the order of `genes` from a CSV/TSV or h5ad (several profiles: their mean).

    CSV/TSV: either two columns (gene, value) or genes as columns with one row per profile (a first
    non-numeric column is taken as row names). h5ad: `var_names` are genes, rows are profiles.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"control file not found: {path}")
    if path.suffix == ".h5ad":
        adata = ad.read_h5ad(path)
        X = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
        profile = pd.Series(np.asarray(X, dtype=np.float64).mean(axis=0), index=adata.var_names.astype(str))
    else:
        table = pd.read_csv(path, sep="\t" if path.suffix in (".tsv", ".txt") else ",")
        first = table.columns[0]
        if table.shape[1] == 2 and not pd.api.types.is_numeric_dtype(table[first]):
            profile = pd.Series(pd.to_numeric(table.iloc[:, 1], errors="coerce").to_numpy(),
                                index=table[first].astype(str))
        else:
            if not pd.api.types.is_numeric_dtype(table[first]):
                table = table.set_index(first)
            profile = table.apply(pd.to_numeric, errors="coerce").mean(axis=0)
            profile.index = profile.index.astype(str)
    missing = [g for g in genes if g not in profile.index]
    if missing:
        raise DataError(f"control {path} lacks {len(missing)} of the model's {len(genes)} genes: "
                        f"{', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}")
    values = profile[~profile.index.duplicated()].reindex(genes).to_numpy(dtype=np.float64)
    bad = [g for g, v in zip(genes, values) if not np.isfinite(v)]
    if bad:
        raise DataError(f"control {path} has no numeric value for {len(bad)} genes: {', '.join(bad[:20])}")
    return values


# -- prediction --------------------------------------------------------------------------------------------
def condition_batch(run: TrainedRun, smiles: str, dose: float, cell_line: str,
                    control: np.ndarray) -> dict[str, torch.Tensor]:
    """A batch of one condition (B = 1) with the keys a model's predict path reads (no x0, row -1)."""
    dm = run.datamodule
    features = dm.representation.encode([smiles], [float(dose)])
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
        "drug_index": torch.tensor([drug], dtype=torch.long),
        "cell_index": torch.tensor([cell], dtype=torch.long),
        "row": torch.tensor([-1], dtype=torch.long),
    }


@torch.no_grad()
def predict(run: TrainedRun, smiles: str, dose: float, cell_line: str, control_file: str | Path | None = None,
            n_samples: int = 10, seed: int = 0, batch_size: int = 256) -> ad.AnnData:
    """Predicted profiles: X = samples (N, G) (N = 1 for a deterministic model), layers["control"], and
    per-gene `var` columns control, mean, sd, lnfc (mean - control, log scale), rank (1 = most up)."""
    if n_samples < 1:
        raise DataError(f"--samples must be >= 1, got {n_samples}")
    canonical = check_condition(smiles, dose)
    dm, model = run.datamodule, run.model
    cell_line = resolve_cell_line(dm.adata, cell_line, allow_unknown=control_file is not None)
    control = read_control(control_file, dm.genes) if control_file else cell_control(dm.adata, cell_line)
    _check_scale(control, dm.adata)
    if not run.is_stochastic and n_samples > 1:
        log.info("%s is deterministic: one prediction, spread 0", type(model).__name__)
        n_samples = 1
    one = condition_batch(run, canonical, dose, cell_line, control)
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
    return _prediction_adata(run, X, control, canonical, dose, cell_line, seed, control_file)


def _check_scale(control: np.ndarray, adata: ad.AnnData) -> None:
    """Warn when a control profile is on another scale than the dataset (e.g. before its transform)."""
    reference = float(np.median(np.asarray(adata.X[adata.obs["is_control"].to_numpy(bool)])))
    median = float(np.median(control))
    if reference > 0 and not 0.5 <= median / reference <= 2.0:
        log.warning("the control's median (%.3g) is far from the dataset controls' (%.3g): give it on the "
                    "model's scale (transform %s)", median, reference,
                    adata.uns.get("pertdit", {}).get("transform"))


def _prediction_adata(run: TrainedRun, X: np.ndarray, control: np.ndarray, smiles: str, dose: float,
                      cell_line: str, seed: int, control_file: str | Path | None) -> ad.AnnData:
    dm = run.datamodule
    n = X.shape[0]
    obs = pd.DataFrame({"sample": np.arange(n), "smiles": smiles, "dose": float(dose), "cell_id": cell_line},
                       index=[f"sample_{i}" for i in range(n)])
    var = dm.adata.var.copy()
    var["control"] = control
    var["mean"] = X.mean(axis=0, dtype=np.float64)
    var["sd"] = X.std(axis=0, ddof=1, dtype=np.float64) if n > 1 else 0.0
    var["lnfc"] = var["mean"] - var["control"]
    var["rank"] = var["lnfc"].rank(ascending=False, method="first").astype(int)
    out = ad.AnnData(X=X.astype(np.float32), obs=obs, var=var)
    out.layers["control"] = np.broadcast_to(control.astype(np.float32), X.shape).copy()
    out.uns["pertdit"] = {
        "model": type(run.model).__name__, "checkpoint": str(run.checkpoint or ""), "n_samples": n,
        "seed": int(seed), "stochastic": run.is_stochastic,
        "relu_predictions": bool(run.model.relu_predictions),
        "control": str(control_file) if control_file else f"mean of the vehicle controls of {cell_line}",
        "representation": dm.representation.cache_key(),
    }
    return out


def gene_table(pred: ad.AnnData) -> pd.DataFrame:
    """gene, control, mean, sd, lnfc, rank of a prediction, ordered by rank (most up-regulated first)."""
    table = pred.var[["control", "mean", "sd", "lnfc", "rank"]].copy()
    table.insert(0, "gene", pred.var_names.astype(str))
    return table.sort_values("rank").reset_index(drop=True)


def write_prediction(pred: ad.AnnData, out: str | Path) -> tuple[Path, Path]:
    """Write `out` (.h5ad) and the gene table beside it (.csv); returns both paths."""
    out = Path(out)
    h5ad = out if out.suffix == ".h5ad" else out.with_suffix(".h5ad")
    h5ad.parent.mkdir(parents=True, exist_ok=True)
    write_quietly(pred, h5ad)
    csv = h5ad.with_suffix(".csv")
    gene_table(pred).to_csv(csv, index=False)
    return h5ad, csv


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
    parser.add_argument("--cell-line", required=True, help="cell line id of the dataset, e.g. A375")
    parser.add_argument("--control", type=Path, help="control profile (CSV/TSV/h5ad) on the model's scale; "
                        "default: mean of the dataset's vehicle controls of the cell line")
    parser.add_argument("--samples", type=int, default=10, help="diffusion samples (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling generator")
    parser.add_argument("--out", type=Path, default=Path("prediction.h5ad"),
                        help="h5ad to write; the gene table goes beside it as .csv (default prediction.h5ad)")
    parser.add_argument("--top", type=int, default=10, help="number of up/down genes to print")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")
    args = parser.parse_args(argv)
    if args.run is None and (args.checkpoint is None or args.config is None):
        parser.error("give --run DIR, or both --checkpoint FILE and --config FILE")
    check_condition(args.smiles, args.dose)  # fail fast, before the model is built
    run = load_run(args.run, args.checkpoint, args.config, device=args.device)
    pred = predict(run, args.smiles, args.dose, args.cell_line, args.control, args.samples, args.seed)
    h5ad, csv = write_prediction(pred, args.out)
    n = pred.n_obs
    spread = (f"per-gene sd over {n} diffusion samples (seed {args.seed})" if run.is_stochastic
              else f"{type(run.model).__name__} is deterministic: 1 prediction, sd 0")
    print(f"{args.smiles} at {args.dose:g} µM in {pred.obs['cell_id'].iloc[0]}: {spread}")
    print(format_top_genes(pred, args.top))
    print(f"written: {h5ad} (X = {n} x {pred.n_vars} predicted profiles), {csv}")
    return 0
