"""Score samplers on one trained diffusion model: per-sample R2 and PCC(lnFC) of their predictions.

Shared by `make bench` (pertdit/bench/sampling.py) and the study of the diffusion recipe
(experiments/diffusion_choices.py). Defaults are chosen on validation rows, never on test rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from pertdit.diffusion import Sampler, backbone_eps_fn, make_sampler
from pertdit.metrics import compute_measures

Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class SamplerChoice:
    """A sampler as the diffusion config names it: `diffusion.sampler`, `sampling_steps` and extra keys."""

    label: str
    sampler: str
    steps: int = 50
    options: dict = field(default_factory=dict)  # eta, spacing, order, max_timestep

    def build(self, schedule) -> Sampler:
        return make_sampler(self.sampler, schedule, num_steps=self.steps, **self.options)

    def overrides(self) -> list[str]:
        """The `diffusion.*` overrides that select this sampler."""
        keys = {"eta": "eta", "spacing": "spacing", "order": "solver_order", "max_timestep": "max_timestep"}
        return [f"diffusion.sampler={self.sampler}", f"diffusion.sampling_steps={self.steps}",
                *(f"diffusion.{keys[k]}={v}" for k, v in self.options.items())]


# DDPM-50 (the authors'), the DDIM that collapsed, and the 10-evaluation candidates (docs/diffusion.md)
CANDIDATES: tuple[SamplerChoice, ...] = (
    SamplerChoice("DDPM-50", "ddpm", 50),
    SamplerChoice("DDIM-10 (eta 0)", "ddim", 10),
    SamplerChoice("DDIM-10 (eta 0, trailing)", "ddim", 10, {"spacing": "trailing"}),
    SamplerChoice("DDIM-25 (eta 0)", "ddim", 25),
    SamplerChoice("DPM-Solver++(2M)-10", "dpm_solver", 10),
    SamplerChoice("DPM-Solver++(2M)-10 (logsnr)", "dpm_solver", 10, {"spacing": "logsnr"}),
    SamplerChoice("DDIM-10 (eta 0.5)", "ddim", 10, {"eta": 0.5}),
    SamplerChoice("DDIM-10 (eta 1, ancestral)", "ddim", 10, {"eta": 1.0}),
    SamplerChoice("SDE-DPM-Solver++(2M)-10", "sde_dpm_solver", 10),
    SamplerChoice("DDIM-10 (eta 0, from t=38)", "ddim", 10, {"max_timestep": 38}),
    SamplerChoice("DPM-Solver++(2M)-10 (from t=38)", "dpm_solver", 10, {"max_timestep": 38}),
    SamplerChoice("DDIM-10 (eta 1, from t=38)", "ddim", 10, {"eta": 1.0, "max_timestep": 38}),
    SamplerChoice("DDIM-10 (eta 0, from t=44)", "ddim", 10, {"max_timestep": 44}),
    SamplerChoice("DDIM-10 (eta 0, from t=33)", "ddim", 10, {"max_timestep": 33}),
)


def per_sample_scores(batch: Batch, pred: torch.Tensor, relu: bool) -> tuple[float, float]:
    """Mean per-sample R2 and PCC(lnFC) of `pred` against the batch's truth (DESIGN.md, the 10 measures)."""
    table = compute_measures(batch["x0"].cpu().numpy(), pred.float().cpu().numpy(), batch["c_pre"].cpu().numpy(),
                             batch["cell_index"].cpu().numpy(), batch["drug_index"].cpu().numpy(),
                             batch["dose"].cpu().numpy(), relu=relu)
    per_sample = table[table["grouping"] == "per_sample"].set_index("metric")["mean"]
    return float(per_sample["r2"]), float(per_sample["pcc_lnfc"])


@torch.no_grad()
def sample_predictions(module, batch: Batch, sampler: Sampler, seed: int, n_samples: int = 1,
                       use_ema: bool = True) -> torch.Tensor:
    """The mean of `n_samples` predictions (B, G) of `module` (a DiffusionModule) drawn with `sampler`."""
    net = module.ema if (use_ema and module.ema is not None) else module.backbone
    eps_fn = backbone_eps_fn(net, batch["c_pre"], batch["c_pert"], batch["c_pert_mask"], module.hparams.guidance_scale)
    generator = torch.Generator(device=batch["c_pre"].device).manual_seed(seed)
    shape = tuple(batch["c_pre"].shape)
    samples = [module.from_model_space(sampler.sample(eps_fn, shape, generator=generator, device=batch["c_pre"].device,
                                                      dtype=batch["c_pre"].dtype), batch)
               for _ in range(n_samples)]
    return torch.stack(samples).mean(0)


def score_sampler(module, batch: Batch, choice: SamplerChoice, seeds: list[int], n_samples: int = 1,
                  use_ema: bool = True) -> dict[str, float]:
    """R2 and PCC(lnFC) per sample, mean and SD over `seeds`, and seconds per prediction of the batch."""
    sampler = choice.build(module.schedule)
    relu = bool(module.relu_predictions)
    scores, seconds = [], []
    for seed in seeds:
        start = time.perf_counter()
        pred = sample_predictions(module, batch, sampler, seed, n_samples, use_ema)
        seconds.append(time.perf_counter() - start)
        scores.append(per_sample_scores(batch, pred, relu))
    r2, pcc = np.array(scores).T
    return {"sampler": choice.label, "nfe": sampler.nfe * n_samples, "samples": n_samples,
            "seconds": float(np.median(seconds)), "r2": float(r2.mean()), "r2_sd": float(r2.std(ddof=0)),
            "pcc": float(pcc.mean()), "pcc_sd": float(pcc.std(ddof=0)), "seeds": len(seeds)}
