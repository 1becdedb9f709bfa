"""How cost grows: time per training epoch vs number of profiles (1x, 4x, 16x the plate's training rows, by
resampling with replacement) and vs number of genes (978 landmarks vs a larger gene set made by repeating
the landmark columns with a little noise). Epochs are real Lightning epochs through the data module."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate

from pertdit.bench.context import BenchContext, quiet
from pertdit.bench.results import Section, Table
from pertdit.bench.timing import synchronize

TITLE = "Scaling: time per epoch vs profiles and genes"


class EpochTimer(L.Callback):
    """Wall-clock seconds of each training epoch (loader and steps; synchronised on GPU)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        synchronize(pl_module.device)
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        synchronize(pl_module.device)
        self.seconds.append(time.perf_counter() - self._start)


def resampled_datamodule(dm, factor: int = 1, n_genes: int | None = None, seed: int = 0,
                         base_rows: int | None = None, batch_size: int | None = None):
    """A shallow copy of `dm` whose train rows (the first `base_rows` of them, default all) are resampled to
    `factor` x their number (with replacement) and whose expression has `n_genes` columns (landmarks
    repeated, plus N(0, 0.01) noise on the copies); `batch_size` replaces the loader batch."""
    rng = np.random.default_rng(seed)
    new = copy.copy(dm)
    new.rows = dict(dm.rows)
    new.batch_size = batch_size or dm.batch_size
    train = dm.rows["train"][:base_rows]
    new.rows["train"] = train
    if factor != 1:
        new.rows["train"] = rng.choice(train, size=factor * len(train), replace=True)
    genes = len(dm.genes)
    if n_genes and n_genes != genes:
        X = dm.assembler.X
        index = torch.arange(n_genes) % genes
        noise = torch.randn(X.shape[0], n_genes, generator=torch.Generator().manual_seed(seed)) * 0.01
        noise[:, :genes] = 0
        new.assembler = copy.copy(dm.assembler)
        new.assembler.X = X[:, index] + noise
        new.genes = [g if i < genes else f"{g}#{i // genes}" for i, g in enumerate(dm.genes[j] for j in index)]
    return new


def epoch_seconds(ctx: BenchContext, device: str, datamodule) -> float:
    """Seconds of one training epoch of the settings' scaling model on `datamodule`."""
    from pertdit.train import build_model

    s = ctx.settings[device]
    hardware = ["trainer.accelerator=gpu", "trainer.precision=bf16-mixed"] if device == "cuda" else \
        ["trainer.accelerator=cpu", "trainer.precision=32-true"]
    cfg = ctx.compose([f"model={s.scaling_model}", *s.scaling_size.overrides(), "trainer.max_epochs=1",
                       "trainer.limit_val_batches=0", "callbacks=none", "logger=[]",
                       "trainer.enable_progress_bar=false", "++trainer.enable_model_summary=false",
                       "++trainer.enable_checkpointing=false", *hardware], run_name="scaling")
    with quiet():
        torch.manual_seed(ctx.seed)
        module = build_model(cfg, datamodule, Path(cfg.paths.run_dir))
        timer = EpochTimer()
        trainer = instantiate(cfg.trainer, callbacks=[timer], logger=False)
        trainer.fit(module, datamodule=datamodule)
    return timer.seconds[-1]


def run(ctx: BenchContext) -> Section:
    section = Section("scaling", TITLE)
    by_profiles = Table(["device", "profiles (x plate)", "training profiles", "batches / epoch", "s / epoch",
                         "ms / profile", "relative time", "estimate at the timed size (s / epoch)"])
    by_genes = Table(["device", "genes", "s / epoch", "relative time", "genes ratio", "genes ratio squared"])
    dm = ctx.datamodule()
    base_genes = len(dm.genes)
    for device in ctx.devices:
        s = ctx.settings[device]
        ctx.log(f"scaling: warm-up epoch on {device}")
        def variant(factor: int = 1, genes: int | None = None):
            return resampled_datamodule(dm, factor, genes, ctx.seed, s.scaling_base_rows, s.scaling_batch)

        epoch_seconds(ctx, device, variant())
        base = None
        for factor in s.profile_factors:
            ctx.log(f"scaling: {factor}x profiles on {device}")
            scaled = variant(factor)
            seconds = epoch_seconds(ctx, device, scaled)
            base = base or seconds
            n, batch = len(scaled.rows["train"]), scaled.batch_size
            batches = -(-n // batch)
            timed = ctx.shared.get(("train_step", device, s.scaling_model))
            estimate = n / timed["profiles_per_s"] if timed and s.scaling_size != s.size else float("nan")
            section.row(f"profiles_{factor}x/epoch_seconds", seconds, "s", device,
                        f"{n} training profiles, {batches} batches of {batch}")
            by_profiles.add(device, f"{factor}x", n, batches, seconds, 1000 * seconds / n, seconds / base, estimate)
        for genes in s.gene_counts:
            if genes == base_genes:
                seconds = base
            else:
                ctx.log(f"scaling: {genes} genes on {device}")
                seconds = epoch_seconds(ctx, device, variant(1, genes))
            ratio = genes / base_genes
            section.row(f"genes_{genes}/epoch_seconds", seconds, "s", device,
                        f"{len(variant().rows['train'])} training profiles (1x)")
            by_genes.add(device, genes, seconds, seconds / base, ratio, ratio**2)
        precision = "bf16-mixed" if device == "cuda" else "32-true"
        section.method += (f"**{device}**: `model={s.scaling_model}` at {s.scaling_size.describe()}, batch "
                           f"{variant().batch_size}, {len(variant().rows['train'])} training profiles at 1x, precision {precision}, one epoch per configuration (after one "
                           "untimed warm-up epoch), no validation, timed from epoch start to epoch end by a "
                           "callback. ")
    section.method += ("Attention over gene tokens is quadratic in the number of genes, everything else linear: "
                       "compare 'relative time' with the ratio and its square. The last column of the first "
                       "table scales the training section's measured throughput (timed size) to the epoch, "
                       "where the scaling model is smaller than the timed size.")
    by_profiles.caption = "Time per epoch vs number of training profiles (978 genes)."
    by_genes.caption = "Time per epoch vs number of genes (1x profiles)."
    section.tables += [by_profiles, by_genes]
    return section
