"""What the diffusion should diffuse: raw expression (the authors'), standardised expression, or standardised shift.

Trains a tiny CrossDiT (d_model 32, 1 layer) for N steps on the plate's random fold 0 (seen drugs) for each
variant and prints the per-sample R2 / PCC(lnFC) of 1 sample and of the mean of 8 (DDIM-10), to compare with
`pertdit train model=mean_shift split=random_fold`.

    python -m experiments.target_ablation --steps 300
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from pertdit.config import CONFIG_DIR, register_resolvers
from pertdit.metrics import compute_measures
from pertdit.train import build_datamodule, build_model

VARIANTS = {"expression": ("expression", False), "standardised_expression": ("expression", True),
            "standardised_shift": ("shift", True)}
TINY = ["model.backbone.d_model=32", "model.backbone.n_layers=1", "model.backbone.n_heads=2",
        "model.backbone.mlp_hidden=32", "model.backbone.time_embed_dim=64", "diffusion=ddim",
        "diffusion.sampling_steps=10", "model.ema_decay=0.98"]


def run_variant(target: str, standardize: bool, steps: int, lr: float, run_dir: Path) -> dict[str, float]:
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["model=crossdit", "split=random_fold", *TINY, f"diffusion.target={target}",
                                          f"diffusion.standardize={standardize}", f"paths.run_dir={run_dir}"])
    torch.manual_seed(cfg.seed)
    dm = build_datamodule(cfg)
    model = build_model(cfg, dm, run_dir)
    if standardize:
        model.fit_standardization(dm)
    opt = torch.optim.AdamW(model.backbone.parameters(), lr=lr, weight_decay=1e-2)
    step = 0
    while step < steps:
        for batch in dm.train_dataloader():
            x0 = model.to_model_space(batch)
            t = model.schedule.sample_timesteps(x0.shape[0])
            noise = torch.randn_like(x0)
            eps = model.backbone(model.schedule.add_noise(x0, noise, t), t, batch["c_pre"], batch["c_pert"],
                                 batch["c_pert_mask"])
            loss = torch.nn.functional.mse_loss(eps, noise)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.backbone.parameters(), 1.0)
            opt.step()
            model.on_train_batch_end(None, batch, step)  # EMA update
            step += 1
            if step >= steps:
                break
    model.eval()
    batch = dm.batch_of_rows(dm.rows["test"])
    scores = {}
    for n in (1, 8):
        pred = torch.stack([model.sample(batch, generator=torch.Generator().manual_seed(k)) for k in range(n)]).mean(0)
        table = compute_measures(batch["x0"].numpy(), pred.numpy(), batch["c_pre"].numpy(),
                                 batch["cell_index"].numpy(), batch["drug_index"].numpy(), batch["dose"].numpy(),
                                 relu=True).set_index(["metric", "grouping"])["mean"]
        scores[f"r2_{n}"] = float(table[("r2", "per_sample")])
        scores[f"pcc_{n}"] = float(table[("pcc_lnfc", "per_sample")])
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    print(f"{'variant':<26}{'R2 (1)':>9}{'PCC (1)':>9}{'R2 (8)':>9}{'PCC (8)':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants:
            s = run_variant(*VARIANTS[name], args.steps, args.lr, Path(tmp) / name)
            print(f"{name:<26}{s['r2_1']:>9.4f}{s['pcc_1']:>9.4f}{s['r2_8']:>9.4f}{s['pcc_8']:>9.4f}", flush=True)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
