"""LightningModules of the direct-regression baselines: PRnet and ChemCPA.

Both predict the post-perturbation profile (B, G) in one pass from the paired control and the drug; the
evaluation with the 10 measures and the prediction writing come from `PerturbationModule`.
See docs/baselines.md for what each baseline is and the choices made here.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from pertdit.lit.base import Batch, PerturbationModule
from pertdit.models.chemcpa import ChemCPA
from pertdit.models.prnet import PRnet

PREDICT_MODES = ("mean", "sample")
ADVERSARY_SCHEDULES = ("chemcpa", "cpa")


def drug_vector(batch: Batch) -> torch.Tensor:
    """One vector per drug (B, D): the masked mean of the perturbation tokens `c_pert` (B, L, D).

    For the RDKit representation (L = 1) this is the FCFP4 x log10(dose + 1) vector itself.
    """
    tokens = batch["c_pert"].to(batch["c_pre"].dtype)
    mask = batch["c_pert_mask"].to(tokens.dtype).unsqueeze(-1)
    return (tokens * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


NLL_MIN_VARIANCE = 1e-6  # torch.nn.GaussianNLLLoss's eps, which PRnet's and ChemCPA's code use


def gaussian_nll(mean: torch.Tensor, var: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over all entries of -log N(target; mean, var), constant included: (B, G) x 3 -> scalar.

    The variance is clamped at 1e-6 as in `torch.nn.GaussianNLLLoss` (which the published code uses; it
    leaves out the constant 0.5 log 2 pi, which changes no gradient).
    """
    var = var.clamp(min=NLL_MIN_VARIANCE)
    return 0.5 * (math.log(2 * math.pi) + torch.log(var) + (target - mean) ** 2 / var).mean()


class PRnetModule(PerturbationModule):
    """PRnet trained with Gaussian NLL (+ `mse_weight` x MSE of the mean, 0 as published); Adam +
    ReduceLROnPlateau on val/mse.

    `predict_mode`: "sample" (as PRnet's test code) draws the decoder noise and a Gaussian sample from
    N(clamp(mean, 1e-3, 1e3), clamp(sd, 1e-3, 1e3)^2), from a generator seeded with `sample_seed` and the
    batch's first row, so evaluating the same batch twice gives the same answer; "mean" returns the decoder
    mean with the decoder noise at its mean (zero).
    """

    def __init__(
        self,
        n_genes: int,
        d_pert: int,
        n_drugs: int | None = None,
        n_cells: int | None = None,
        adapter_hidden: int = 128,
        adapter_dim: int = 64,
        encoder_hidden: int = 128,
        latent_dim: int = 64,
        decoder_hidden: int = 128,
        noise_dim: int = 10,
        dropout: float = 0.05,
        leaky_slope: float = 0.3,
        relu_mean: bool = True,
        min_variance: float = 0.0,
        mse_weight: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 1e-8,
        lr_factor: float = 0.5,
        lr_patience: int = 10,
        predict_mode: str = "sample",
        sample_seed: int = 0,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(**base_kwargs)
        if predict_mode not in PREDICT_MODES:
            raise ValueError(f"PRnetModule: unknown predict_mode {predict_mode!r}; "
                             f"choose one of {PREDICT_MODES}")
        self.save_hyperparameters()
        self.model = PRnet(n_genes, d_pert, adapter_hidden=adapter_hidden, adapter_dim=adapter_dim,
                           encoder_hidden=encoder_hidden, latent_dim=latent_dim,
                           decoder_hidden=decoder_hidden, noise_dim=noise_dim, dropout=dropout,
                           leaky_slope=leaky_slope, relu_mean=relu_mean, min_variance=min_variance)

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Training objective of a batch: `nll`, `mse` (of the mean) and their weighted sum `loss`."""
        mean, var = self.model(batch["c_pre"], drug_vector(batch))
        nll = gaussian_nll(mean, var, batch["x0"])
        mse = F.mse_loss(mean, batch["x0"])
        return {"loss": nll + self.hparams.mse_weight * mse, "nll": nll, "mse": mse}

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        terms = self.losses(batch)
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, on_step=True, on_epoch=True,
                      batch_size=batch["x0"].shape[0], prog_bar=False)
        return terms["loss"]

    def predict_batch(self, batch: Batch) -> torch.Tensor:
        return self.predict_with_spread(batch)[0]

    def predict_with_spread(self, batch: Batch):
        """The prediction (`predict_mode`: `sample`, one draw of the Gaussian as published, or its `mean`) and
        the Gaussian N(mean, var) the network predicts for it (the PredictiveSpread)."""
        from pertdit.metrics.calibration import PredictiveSpread

        c_pre = batch["c_pre"]
        if self.hparams.predict_mode == "mean":
            mean, var = self.model(c_pre, drug_vector(batch))
            pred = mean
        else:
            seed = self.hparams.sample_seed + (int(batch["row"][0]) if "row" in batch else 0)
            generator = torch.Generator(device=c_pre.device).manual_seed(seed)
            noise = self.model.make_noise(c_pre.shape[0], c_pre, generator=generator)
            mean, var = self.model(c_pre, drug_vector(batch), noise=noise)
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            pred = mean.clamp(1e-3, 1e3) + var.sqrt().clamp(1e-3, 1e3) * eps
        spread = PredictiveSpread(mean=mean.detach().float().cpu().numpy(),
                                  sd=var.detach().float().sqrt().cpu().numpy())
        return pred, spread

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.hparams.lr,
                                     weight_decay=self.hparams.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=self.hparams.lr_factor, patience=self.hparams.lr_patience)
        # strict=False: runs without a validation loop (unit tests, fast_dev_run) only warn.
        schedule = {"scheduler": scheduler, "monitor": "val/mse", "interval": "epoch", "strict": False}
        return {"optimizer": optimizer, "lr_scheduler": schedule}


class ChemCPAModule(PerturbationModule):
    """ChemCPA trained adversarially with manual optimisation (an autoencoder and an adversary optimiser).

    Adversary steps (`adversary_schedule`, see `is_adversary_step`) update the adversaries: cross-entropy of
    drug and cell line from the (detached) basal latent of the perturbed profile + `penalty` x the gradient
    penalty of each adversary (the mean squared gradient of its summed logits with respect to the latent).
    The other steps update the autoencoder: Gaussian NLL of the perturbed profile (encode x0, add
    drug/dose/cell, decode) + `control_weight` x NLL of the control (encode c_pre, add the cell only, decode)
    - `reg_drug` x drug-adversary CE - `reg_cell` x cell-adversary CE, its gradient norm clipped at
    `autoencoder_grad_clip`. Both learning rates decay by `lr_gamma` every `lr_step_size` epochs.
    Prediction is counterfactual: encode c_pre, add the batch's drug/dose/cell embeddings, decode (the mean).
    """

    uses_cell_identity = True  # a learned embedding per training cell line

    def __init__(
        self,
        n_genes: int,
        d_pert: int,
        n_drugs: int,
        n_cells: int,
        latent_dim: int = 32,
        hidden: int = 256,
        depth: int = 4,
        dose_encoder: str = "amortized",
        drug_hidden: int = 128,
        drug_depth: int = 4,
        doser_hidden: int = 64,
        doser_depth: int = 3,
        adversary_hidden: int = 128,
        adversary_depth: int = 3,
        dropout: float = 0.0,
        normalize_drug_vector: bool = True,
        min_variance: float = 1e-4,
        control_weight: float = 1.0,
        adversary_steps: int = 3,
        adversary_schedule: str = "chemcpa",
        reg_drug: float = 9.1,
        reg_cell: float = 16.2,
        penalty: float = 0.455,
        autoencoder_lr: float = 1.5751320499779737e-3,
        autoencoder_wd: float = 6.251373574521742e-7,
        adversary_lr: float = 1.1926173789223548e-3,
        adversary_wd: float = 9.846738873614555e-6,
        autoencoder_grad_clip: float | None = 1.0,
        lr_step_size: int | None = 6,
        lr_gamma: float = 0.9,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(**base_kwargs)
        if adversary_steps < 1:
            raise ValueError(f"ChemCPAModule: adversary_steps must be >= 1, got {adversary_steps}")
        if adversary_schedule not in ADVERSARY_SCHEDULES:
            raise ValueError(f"ChemCPAModule: unknown adversary_schedule {adversary_schedule!r}; "
                             f"choose one of {ADVERSARY_SCHEDULES}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.model = ChemCPA(n_genes, d_pert, n_drugs, n_cells, latent_dim=latent_dim, hidden=hidden,
                             depth=depth, dose_encoder=dose_encoder, drug_hidden=drug_hidden,
                             drug_depth=drug_depth, doser_hidden=doser_hidden, doser_depth=doser_depth,
                             adversary_hidden=adversary_hidden, adversary_depth=adversary_depth,
                             dropout=dropout, normalize_drug_vector=normalize_drug_vector,
                             min_variance=min_variance)
        # training steps taken so far (drives the alternation; a buffer, so it survives checkpoints)
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))

    def is_adversary_step(self) -> bool:
        """Whether the next step updates the adversaries, with k = `adversary_steps` and i the step count:

        - `adversary_schedule="chemcpa"`: when i % k == 0 (one step in k, the first included), as ChemCPA's
          published code (`if (self.iteration % self.hparams["adversary_steps"]) == 0`: "every X steps,
          update the adversary INSTEAD OF the autoencoder");
        - `"cpa"`: when i % k != 0 (k - 1 steps in k), as CPA's code (`if self.iteration %
          self.hparams["adversary_steps"]:`).
        """
        on_multiple = int(self.iteration) % self.hparams.adversary_steps == 0
        return on_multiple if self.hparams.adversary_schedule == "chemcpa" else not on_multiple

    def adversary_losses(self, basal: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        """Adversaries' cross-entropies (drug, cell) on the basal latent (B, Z) and, when the latent requires
        grad, one gradient penalty per adversary: mean over (B, Z) of (d sum(logits) / d basal)^2."""
        drug_logits, cell_logits = self.model.adversary_logits(basal)
        terms = {"adv_drug": F.cross_entropy(drug_logits, batch["drug_index"]),
                 "adv_cell": F.cross_entropy(cell_logits, batch["cell_index"])}
        if basal.requires_grad and torch.is_grad_enabled():
            for name, logits in (("drug", drug_logits), ("cell", cell_logits)):
                (grad,) = torch.autograd.grad(logits.sum(), basal, create_graph=True)
                terms[f"grad_penalty_{name}"] = grad.pow(2).mean()
        return terms

    def autoencoder_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Reconstruction terms of a batch and the adversaries' cross-entropies on its basal latent."""
        mean, var, basal = self.model(batch["x0"], drug_vector(batch), batch["dose"], batch["drug_index"],
                                      batch["cell_index"])
        ctrl_mean, ctrl_var, _ = self.model(batch["c_pre"], None, None, None, batch["cell_index"])
        terms = {"reconstruction": gaussian_nll(mean, var, batch["x0"]),
                 "control_reconstruction": gaussian_nll(ctrl_mean, ctrl_var, batch["c_pre"])}
        drug_logits, cell_logits = self.model.adversary_logits(basal)
        terms["adv_drug"] = F.cross_entropy(drug_logits, batch["drug_index"])
        terms["adv_cell"] = F.cross_entropy(cell_logits, batch["cell_index"])
        hp = self.hparams
        terms["loss"] = (terms["reconstruction"] + hp.control_weight * terms["control_reconstruction"]
                         - hp.reg_drug * terms["adv_drug"] - hp.reg_cell * terms["adv_cell"])
        return terms

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        opt_autoencoder, opt_adversary = self.optimizers()
        self.model.mark_seen(batch["drug_index"], batch["cell_index"])
        size = batch["x0"].shape[0]
        if self.is_adversary_step():
            with torch.no_grad():
                basal = self.model.encode(batch["x0"])
            terms = self.adversary_losses(basal.requires_grad_(True), batch)
            penalty = terms["grad_penalty_drug"] + terms["grad_penalty_cell"]
            loss = terms["adv_drug"] + terms["adv_cell"] + self.hparams.penalty * penalty
            opt_adversary.zero_grad()
            self.manual_backward(loss)
            opt_adversary.step()
            self.log_dict({f"train/{k}": v for k, v in terms.items()}, on_step=True, on_epoch=True,
                          batch_size=size)
        else:
            terms = self.autoencoder_losses(batch)
            opt_autoencoder.zero_grad()
            self.manual_backward(terms["loss"])
            if self.hparams.autoencoder_grad_clip:
                self.clip_gradients(opt_autoencoder, gradient_clip_val=self.hparams.autoencoder_grad_clip,
                                    gradient_clip_algorithm="norm")
            opt_autoencoder.step()
            self.log_dict({f"train/{k}": v for k, v in terms.items() if not k.startswith("adv_")},
                          on_step=True, on_epoch=True, batch_size=size)
        self.iteration += 1

    # -- seen drugs / cell lines across DDP ranks -----------------------------------------------------------
    def _share_seen(self) -> None:
        """OR the seen-drug and seen-cell flags over ranks (each rank marks only the batches it trains on)."""
        if self.trainer.world_size <= 1:
            return
        for flags in (self.model.seen_drugs, self.model.seen_cells):
            flags.copy_(self.all_gather(flags.to(torch.uint8)).reshape(-1, flags.numel()).amax(dim=0).bool())

    def on_train_epoch_end(self) -> None:
        self._share_seen()
        schedulers = self.lr_schedulers()  # manual optimisation: the step-size decay is stepped here
        for scheduler in schedulers if isinstance(schedulers, list) else [s for s in [schedulers] if s]:
            scheduler.step()

    def on_validation_epoch_start(self) -> None:
        self._share_seen()

    def on_test_epoch_start(self) -> None:
        self._share_seen()

    def predict_batch(self, batch: Batch) -> torch.Tensor:
        mean, _, _ = self.model(batch["c_pre"], drug_vector(batch), batch["dose"], batch["drug_index"],
                                batch["cell_index"])
        return mean

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        autoencoder = torch.optim.Adam(self.model.autoencoder_parameters(), lr=hp.autoencoder_lr,
                                       weight_decay=hp.autoencoder_wd)
        adversary = torch.optim.Adam(self.model.adversary_parameters(), lr=hp.adversary_lr,
                                     weight_decay=hp.adversary_wd)
        if not hp.lr_step_size:
            return [autoencoder, adversary]
        schedulers = [torch.optim.lr_scheduler.StepLR(opt, step_size=hp.lr_step_size, gamma=hp.lr_gamma)
                      for opt in (autoencoder, adversary)]
        return [autoencoder, adversary], schedulers
