"""`scaled_dot_product_attention` vs a plain softmax(QK^T / sqrt(d)) V of the same block, same weights, same
inputs, in the same run: the self-attention layer over the 978 gene tokens and a whole CatCrossDiT block."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pertdit.bench.context import BenchContext, autocast
from pertdit.bench.results import Section, Table
from pertdit.bench.timing import time_fn
from pertdit.models.backbone import Conditioning
from pertdit.models.catcrossdit import CatCrossDiTBlock
from pertdit.models.layers import SelfAttentionLayer

TITLE = "Attention: scaled_dot_product_attention vs plain softmax(QK^T)V"
IMPLS = ("sdpa", "naive")


def _units(d: int, heads: int, mlp: int) -> dict[str, Callable[[str], nn.Module]]:
    return {"self-attention layer": lambda impl: SelfAttentionLayer(d, heads, 0.0, impl),
            "CatCrossDiT block": lambda impl: CatCrossDiTBlock(d, heads, mlp, 0.0, impl)}


def run(ctx: BenchContext) -> Section:
    section = Section("attention", TITLE)
    table = Table(["unit", "mode", "device", "batch x tokens", "sdpa s", "naive s", "naive / sdpa",
                   "max abs difference"])
    n_genes = ctx.datamodule().dims["n_genes"]
    for device in ctx.devices:
        s = ctx.settings[device]
        d, batch = s.size.d_model, s.attention_batch
        generator = torch.Generator().manual_seed(ctx.seed)
        x = torch.randn(batch, n_genes, d, generator=generator).to(device)
        cond = Conditioning(pert=torch.randn(batch, 1, d, generator=generator).to(device),
                            pert_mask=torch.ones(batch, 1, dtype=torch.bool, device=device),
                            time=torch.randn(batch, d, generator=generator).to(device))
        for unit, make in _units(d, s.size.n_heads, s.size.mlp_hidden).items():
            torch.manual_seed(ctx.seed)
            modules = {impl: make(impl).to(device) for impl in IMPLS}
            modules["naive"].load_state_dict(modules["sdpa"].state_dict())

            def call(module: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
                with autocast(device, s.autocast_bf16):
                    out = module(inputs) if isinstance(module, SelfAttentionLayer) else module(inputs, cond)
                return out.float()

            def train_step(module: nn.Module) -> None:
                call(module, x.detach().requires_grad_()).square().mean().backward()
                module.zero_grad(set_to_none=True)

            def forward(module: nn.Module) -> None:
                with torch.no_grad():
                    call(module, x)

            with torch.no_grad():
                diff = float((call(modules["sdpa"], x) - call(modules["naive"], x)).abs().max())
            for mode, fn in (("forward+backward", train_step), ("forward (no grad)", forward)):
                ctx.log(f"attention: {unit}, {mode}, sdpa vs naive on {device}")
                seconds = {impl: time_fn(lambda m=modules[impl]: fn(m), device, warmup=1,
                                         repeats=s.attention_repeats).median for impl in IMPLS}
                ratio = seconds["naive"] / seconds["sdpa"]
                name = f"{unit.replace(' ', '_')}/{mode.split(' ')[0]}"
                shape = f"batch {batch} x {n_genes} tokens, d_model {d}, {s.size.n_heads} heads"
                section.row(f"{name}/sdpa_seconds", seconds["sdpa"], "s", device, shape)
                section.row(f"{name}/naive_seconds", seconds["naive"], "s", device, shape)
                section.row(f"{name}/naive_over_sdpa", ratio, "x", device, f"{shape}; max abs diff {diff:.2e}")
                table.add(unit, mode, device, f"{batch} x {n_genes}", seconds["sdpa"], seconds["naive"], ratio, diff)
        precision = "bf16 autocast" if s.autocast_bf16 else "float32"
        section.method += (f"**{device}**: {s.size.describe()}, random input of {batch} x {n_genes} gene tokens, "
                           f"{precision}; median of {s.attention_repeats} call(s) after 1 warm-up, the two "
                           f"implementations alternating in the same process. ")
    section.method += ("A ratio above 1 means the fused kernel is faster. The last column checks that both "
                       "compute the same function (identical weights).")
    section.tables.append(table)
    return section
