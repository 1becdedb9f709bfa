"""LightningModule for the multi-conditional diffusion model: trains the network, samples predictions.

Two objectives on the same backbones (`diffusion.objective`): `denoising` (a DDPM on a discrete noise schedule;
the network predicts `diffusion.prediction` = epsilon (the authors'), x0 or v, `pertdit.diffusion.parametrisation`)
and `flow_matching` (the linear path from N(0, I) to the data; the network predicts the velocity,
`pertdit.diffusion.flow`). Both take a per-timestep loss weighting (`diffusion.loss_weighting`).
"""

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
from pertdit.diffusion import flow
from pertdit.diffusion.parametrisation import (
    PREDICTIONS,
    eps_fn_from_output,
    loss_weights,
    prediction_target,
    weighted_mse,
)
from pertdit.lit.base import Batch, PerturbationModule
from pertdit.lit.schedules import warmup_cosine

TARGETS = ("expression", "shift")
OBJECTIVES = ("denoising", "flow_matching")
#: what the network may predict under each objective
OBJECTIVE_PREDICTIONS = {"denoising": PREDICTIONS, "flow_matching": ("velocity",)}


def training_seed(seed: int, step: int, rank: int) -> int:
    """A 63-bit seed that is a function of (seed, step, rank) only, different for every such triple."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


class DiffusionModule(PerturbationModule):
    """Trains the backbone on the configured objective (denoising with eps / x0 / v prediction, or flow
    matching), optionally loss-weighted per timestep; predictions by a configured sampler (optionally with EMA
    weights), the mean of `eval_samples` samples."""

    def __init__(self, backbone: dict, n_genes: int, d_pert: int, n_drugs: int = 0, n_cells: int = 0,
                 schedule: dict | None = None, sampler: str = "ddpm", sampling_steps: int = 50, eta: float = 0.0,
                 spacing: str = "linspace", solver_order: int = 2, max_timestep: int | None = None,
                 cfg_drop_prob: float = 0.0, guidance_scale: float = 1.0, ema_decay: float | None = None,
                 lr: float = 1e-3, weight_decay: float = 1e-2, warmup_steps: int = 5000,
                 warmup_start_factor: float = 0.5, min_lr_factor: float = 0.05, cosine_steps: int | None = None,
                 sample_seed: int = 0,
                 target: str = "expression", standardize: bool = False, smoke_sampling_steps: int = 2,
                 eval_samples: int = 1, objective: str = "denoising", prediction: str = "epsilon",
                 loss_weighting: str = "none", min_snr_gamma: float = 5.0, flow_time_scale: float = 1000.0,
                 spread_samples: int = 8, **base_kwargs: Any) -> None:
        super().__init__(**base_kwargs)
        if target not in TARGETS:
            raise ValueError(f"unknown diffusion target {target!r}; choose one of {TARGETS}")
        check_objective(objective, prediction, sampler, max_timestep)
        loss_weights(loss_weighting, "epsilon", torch.ones(1), min_snr_gamma)  # a clear error for a bad name
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
    def _output(self, net: torch.nn.Module, batch: Batch, x_t: torch.Tensor, t: torch.Tensor,
             drop: torch.Tensor | None = None) -> torch.Tensor:
        return net(x_t, t, batch["c_pre"], batch["c_pert"], batch["c_pert_mask"], drop)

    @property
    def is_flow(self) -> bool:
        """True for the flow-matching objective."""
        return self.hparams.objective == "flow_matching"

    def training_draws(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """This step's random draws for x0 (B, G): times (B,) (timesteps t, long, for denoising; path times
        s in [0, 1) for flow matching), noise (B, G), guidance-dropout mask (B,) or None. They come from a
        generator seeded by (seed, optimiser step, DDP rank): a resumed run draws exactly what an uninterrupted
        one does, and every rank draws its own."""
        seed = training_seed(self.hparams.sample_seed, self.global_step, self.global_rank)
        gen = torch.Generator(device=x0.device).manual_seed(seed)
        if self.is_flow:
            t = flow.sample_path_times(x0.shape[0], generator=gen, device=x0.device)
        else:
            t = self.schedule.sample_timesteps(x0.shape[0], generator=gen, device=x0.device)
        noise = torch.randn(x0.shape, generator=gen, device=x0.device, dtype=x0.dtype)
        drop = sample_drop_mask(x0.shape[0], self.hparams.cfg_drop_prob, generator=gen, device=x0.device)
        return t, noise, drop

    def objective_loss(self, batch: Batch, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                       drop: torch.Tensor | None) -> torch.Tensor:
        """The (weighted) squared error of the network's output against its objective's target, for x0 (B, G)
        noised with `noise` at times `t` (B,)."""
        hp = self.hparams
        if self.is_flow:
            x_s = flow.interpolate(x0, noise, t)
            output = self._output(self.backbone, batch, x_s, t * hp.flow_time_scale, drop)
            weights = None
            if hp.loss_weighting != "none":
                s = t.double()
                weights = loss_weights(hp.loss_weighting, "x0", flow.path_snr(s), hp.min_snr_gamma)
                weights = (weights / flow.velocity_x1_error_scale(s)).float()
            return weighted_mse(output, flow.velocity_target(x0, noise), weights)
        x_t = self.schedule.add_noise(x0, noise, t)
        output = self._output(self.backbone, batch, x_t, t, drop)
        if hp.prediction == "epsilon" and hp.loss_weighting == "none":
            return F.mse_loss(output, noise)  # the authors' loss, exactly
        abar = self.schedule.alphas_cumprod[t].double()
        alpha, sigma = abar.sqrt()[:, None].to(x0.dtype), (1 - abar).sqrt()[:, None].to(x0.dtype)
        target = prediction_target(hp.prediction, x0, noise, alpha, sigma)
        weights = loss_weights(hp.loss_weighting, hp.prediction, abar / (1 - abar), hp.min_snr_gamma)
        return weighted_mse(output, target, weights)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x0 = self.to_model_space(batch)
        t, noise, drop = self.training_draws(x0)
        loss = self.objective_loss(batch, x0, t, noise, drop)
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

    def sampler(self) -> Sampler | flow.FlowSampler:
        """The configured sampler; under `fast_dev_run` (a smoke test) DDIM (or Euler for flow matching) with
        `smoke_sampling_steps`."""
        hp = self.hparams
        if self.is_flow:
            steps = hp.smoke_sampling_steps if self.smoke_test else hp.sampling_steps
            return flow.FlowSampler(steps, "euler" if self.smoke_test else hp.sampler,
                                    0.0 if self.smoke_test else hp.eta)
        if self.smoke_test:
            return DDIMSampler(self.schedule, num_steps=hp.smoke_sampling_steps)
        return make_sampler(hp.sampler, self.schedule, num_steps=hp.sampling_steps, eta=hp.eta,
                            spacing=hp.spacing, order=hp.solver_order, max_timestep=hp.max_timestep)

    def network_fn(self, batch: Batch, use_ema: bool = True):
        """What the sampler calls: `eps_fn(x_t, t)` for denoising (any prediction converted to eps), or
        `velocity_fn(x_s, s)` for flow matching; with the batch's conditions and guidance bound."""
        net = self.ema if (use_ema and self.ema is not None) else self.backbone
        output_fn = backbone_eps_fn(net, batch["c_pre"], batch["c_pert"], batch["c_pert_mask"],
                                    self.hparams.guidance_scale)
        if self.is_flow:
            scale = self.hparams.flow_time_scale
            return lambda x_s, s: output_fn(x_s, s * scale)
        return eps_fn_from_output(output_fn, self.hparams.prediction, self.schedule.alphas_cumprod)

    @torch.no_grad()
    def sample_model_space(self, batch: Batch, generator: torch.Generator | None = None, use_ema: bool = True,
                           sampler: Sampler | flow.FlowSampler | None = None) -> torch.Tensor:
        """One sample (B, G) of the diffused variable (before `from_model_space`), by `sampler` (default: the
        configured one)."""
        c_pre = batch["c_pre"]
        sampler = sampler or self.sampler()
        return sampler.sample(self.network_fn(batch, use_ema), tuple(c_pre.shape), generator=generator,
                              device=c_pre.device, dtype=c_pre.dtype)

    @torch.no_grad()
    def sample(self, batch: Batch, generator: torch.Generator | None = None, use_ema: bool = True) -> torch.Tensor:
        """One sample (B, G) of the perturbed profile given the batch's conditions."""
        return self.from_model_space(self.sample_model_space(batch, generator, use_ema), batch)

    def _draw(self, batch: Batch, n_samples: int) -> torch.Tensor:
        """(n_samples, B, G) samples, from a generator seeded by the batch's first row (reproducible)."""
        seed = self.hparams.sample_seed + int(batch["row"][0])
        generator = torch.Generator(device=batch["c_pre"].device).manual_seed(seed)
        return torch.stack([self.sample(batch, generator=generator) for _ in range(n_samples)])

    @property
    def n_point_samples(self) -> int:
        """Samples averaged into the point prediction: `eval_samples`; one under `fast_dev_run`."""
        return 1 if self.smoke_test else max(1, self.hparams.eval_samples)

    def predict_batch(self, batch: Batch) -> torch.Tensor:
        """Mean of `eval_samples` diffusion samples (seeded by the batch's first row, so reproducible); one
        sample under `fast_dev_run`."""
        return self._draw(batch, self.n_point_samples).mean(0)

    def predict_with_spread(self, batch: Batch):
        """The point prediction of `predict_batch` (the same draws) and the spread of `spread_samples` samples
        (the first of them are the point prediction's; more are drawn when `spread_samples` > `eval_samples`;
        none under `fast_dev_run` or when `spread_samples` < 2). Predictions are ReLU'd when scored so."""
        from pertdit.metrics.calibration import PredictiveSpread

        n_spread = 0 if self.smoke_test else int(self.hparams.spread_samples or 0)
        if n_spread < 2:
            return self.predict_batch(batch), None
        samples = self._draw(batch, max(self.n_point_samples, n_spread))
        spread = samples[:n_spread].float().cpu().numpy()
        if self.relu_predictions:
            spread = spread.clip(min=0.0)
        return samples[:self.n_point_samples].mean(0), PredictiveSpread(samples=spread)

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


def check_objective(objective: str, prediction: str, sampler: str, max_timestep: int | None) -> None:
    """A ValueError naming the valid choices when the objective, its prediction or its sampler do not fit."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown diffusion objective {objective!r}; valid: {', '.join(OBJECTIVES)}")
    valid = OBJECTIVE_PREDICTIONS[objective]
    if prediction not in valid:
        raise ValueError(f"diffusion.objective={objective} predicts {' | '.join(valid)}; got "
                         f"diffusion.prediction={prediction!r}")
    if objective == "flow_matching":
        if sampler not in flow.FLOW_SAMPLERS:
            raise ValueError(f"flow matching samples with {' | '.join(flow.FLOW_SAMPLERS)} (diffusion.sampler); "
                             f"got {sampler!r}")
        if max_timestep is not None:
            raise ValueError("diffusion.max_timestep applies to the discrete samplers of the denoising objective; "
                             "set it to null for flow matching")
    elif sampler in flow.FLOW_SAMPLERS:
        raise ValueError(f"the {sampler!r} sampler integrates a flow-matching model (diffusion.objective="
                         "flow_matching); a denoising model samples with ddpm | ddim | dpm_solver | sde_dpm_solver")
