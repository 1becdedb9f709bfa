"""LightningModule for the multi-conditional DDPM: trains the noise predictor, samples predictions."""

from __future__ import annotations

import copy
from typing import Any

import hydra
import numpy as np
import torch
import torch.nn.functional as F

from pertdit.diffusion import (
    DDIMSampler,
    NoiseSchedule,
    Sampler,
    backbone_eps_fn,
    make_sampler,
    sample_drop_mask,
)
from pertdit.lit.base import Batch, PerturbationModule
from pertdit.lit.schedules import warmup_cosine

TARGETS = ("expression", "shift")


def training_seed(seed: int, step: int, rank: int) -> int:
    """A 63-bit seed that is a function of (seed, step, rank) only, different for every such triple."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


class DiffusionModule(PerturbationModule):
    """eps(x_t, t | c_pre, c_pert) training with MSE; predictions by a configured sampler (optionally with EMA weights)."""

    def __init__(self, backbone: dict, n_genes: int, d_pert: int, n_drugs: int = 0, n_cells: int = 0,
                 schedule: dict | None = None, sampler: str = "ddpm", sampling_steps: int = 50, eta: float = 0.0,
                 spacing: str = "linspace", solver_order: int = 2, max_timestep: int | None = None,
                 cfg_drop_prob: float = 0.0, guidance_scale: float = 1.0, ema_decay: float | None = None,
                 lr: float = 1e-3, weight_decay: float = 1e-2, warmup_steps: int = 5000,
                 warmup_start_factor: float = 0.5, min_lr_factor: float = 0.05, cosine_steps: int | None = None,
                 sample_seed: int = 0,
                 target: str = "expression", standardize: bool = False, smoke_sampling_steps: int = 2,
                 eval_samples: int = 1,
                 **base_kwargs: Any) -> None:
        super().__init__(**base_kwargs)
        if target not in TARGETS:
            raise ValueError(f"unknown diffusion target {target!r}; choose one of {TARGETS}")
        self.save_hyperparameters()
        self.backbone = hydra.utils.instantiate(backbone, n_genes=n_genes, d_pert=d_pert)
        self.schedule = NoiseSchedule(**(schedule or {}))
        self.ema = copy.deepcopy(self.backbone).requires_grad_(False) if ema_decay else None
        self.register_buffer("target_mean", torch.zeros(n_genes))
        self.register_buffer("target_std", torch.ones(n_genes))

    # -- the diffused variable -------------------------------------------------------------------------------
    def _target(self, batch: Batch) -> torch.Tensor:
        """What is diffused, before standardisation: the profile, or its shift from the control (lnFC)."""
        return batch["x0"] - batch["c_pre"] if self.hparams.target == "shift" else batch["x0"]

    def to_model_space(self, batch: Batch) -> torch.Tensor:
        """x0 of the diffusion (B, G): the target, standardised per gene when configured."""
        return (self._target(batch) - self.target_mean) / self.target_std

    def from_model_space(self, z: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Predicted expression (B, G) from a diffusion sample."""
        y = z * self.target_std + self.target_mean
        return y + batch["c_pre"] if self.hparams.target == "shift" else y

    def on_fit_start(self) -> None:
        if self.hparams.standardize:
            self.fit_standardization(self.trainer.datamodule)

    @torch.no_grad()
    def fit_standardization(self, datamodule, chunk: int = 4096) -> None:
        """Per-gene mean and std of the target over the training rows (streamed in chunks)."""
        rows = datamodule.rows["train"]
        total = torch.zeros_like(self.target_mean, dtype=torch.float64)
        total_sq = torch.zeros_like(total)
        for start in range(0, len(rows), chunk):
            batch = datamodule.batch_of_rows(rows[start:start + chunk], conditions=False)  # no drug tokens
            y = self._target(batch).double().to(total.device)
            total += y.sum(0)
            total_sq += (y * y).sum(0)
        mean = total / len(rows)
        std = (total_sq / len(rows) - mean**2).clamp(min=0).sqrt()
        self.target_mean.copy_(mean.float())
        self.target_std.copy_(std.float().clamp(min=1e-3 * float(std.mean()) + 1e-8))

    # -- training ------------------------------------------------------------------------------------------
    def _eps(self, net: torch.nn.Module, batch: Batch, x_t: torch.Tensor, t: torch.Tensor,
             drop: torch.Tensor | None = None) -> torch.Tensor:
        return net(x_t, t, batch["c_pre"], batch["c_pert"], batch["c_pert_mask"], drop)

    def training_draws(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """This step's random draws for x0 (B, G): timesteps t (B,), noise (B, G), guidance-dropout mask (B,)
        or None. They come from a generator seeded by (seed, optimiser step, DDP rank): a resumed run draws
        exactly what an uninterrupted one does, and every rank draws its own."""
        seed = training_seed(self.hparams.sample_seed, self.global_step, self.global_rank)
        gen = torch.Generator(device=x0.device).manual_seed(seed)
        t = self.schedule.sample_timesteps(x0.shape[0], generator=gen, device=x0.device)
        noise = torch.randn(x0.shape, generator=gen, device=x0.device, dtype=x0.dtype)
        drop = sample_drop_mask(x0.shape[0], self.hparams.cfg_drop_prob, generator=gen, device=x0.device)
        return t, noise, drop

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x0 = self.to_model_space(batch)
        t, noise, drop = self.training_draws(x0)
        x_t = self.schedule.add_noise(x0, noise, t)
        loss = F.mse_loss(self._eps(self.backbone, batch, x_t, t, drop), noise)
        self.log("train/loss", loss, prog_bar=True, batch_size=x0.shape[0])
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Batch, batch_idx: int) -> None:
        if self.ema is None:
            return
        decay = self.hparams.ema_decay
        with torch.no_grad():
            for ema_p, p in zip(self.ema.parameters(), self.backbone.parameters()):
                ema_p.lerp_(p.detach(), 1 - decay)

    # -- sampling ------------------------------------------------------------------------------------------
    @property
    def smoke_test(self) -> bool:
        """True under `trainer.fast_dev_run`: sampling shrinks to `smoke_sampling_steps` DDIM steps, 1 sample."""
        return self._trainer is not None and bool(self.trainer.fast_dev_run)

    def sampler(self) -> Sampler:
        """The configured sampler; under `fast_dev_run` (a smoke test) DDIM with `smoke_sampling_steps`."""
        if self.smoke_test:
            return DDIMSampler(self.schedule, num_steps=self.hparams.smoke_sampling_steps)
        hp = self.hparams
        return make_sampler(hp.sampler, self.schedule, num_steps=hp.sampling_steps, eta=hp.eta,
                            spacing=hp.spacing, order=hp.solver_order, max_timestep=hp.max_timestep)

    @torch.no_grad()
    def sample(self, batch: Batch, generator: torch.Generator | None = None, use_ema: bool = True) -> torch.Tensor:
        """One diffusion sample (B, G) of the perturbed profile given the batch's conditions."""
        net = self.ema if (use_ema and self.ema is not None) else self.backbone
        c_pre = batch["c_pre"]
        eps_fn = backbone_eps_fn(net, c_pre, batch["c_pert"], batch["c_pert_mask"], self.hparams.guidance_scale)
        z = self.sampler().sample(eps_fn, tuple(c_pre.shape), generator=generator, device=c_pre.device,
                                  dtype=c_pre.dtype)
        return self.from_model_space(z, batch)

    def predict_batch(self, batch: Batch) -> torch.Tensor:
        """Mean of `eval_samples` diffusion samples (seeded by the batch's first row, so reproducible); one
        sample under `fast_dev_run`."""
        seed = self.hparams.sample_seed + int(batch["row"][0])
        generator = torch.Generator(device=batch["c_pre"].device).manual_seed(seed)
        n_samples = 1 if self.smoke_test else max(1, self.hparams.eval_samples)
        samples = [self.sample(batch, generator=generator) for _ in range(n_samples)]
        return torch.stack(samples).mean(0)

    # -- optimisation ---------------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.backbone.parameters(), lr=self.hparams.lr,
                                weight_decay=self.hparams.weight_decay)
        total = self.hparams.cosine_steps
        if total is None:  # the cosine reaches its floor at the end of training
            total = int(self._trainer.estimated_stepping_batches) if self._trainer is not None else 10**6
        sched = warmup_cosine(opt, self.hparams.warmup_steps, max(int(total), 1), self.hparams.warmup_start_factor,
                              self.hparams.min_lr_factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
