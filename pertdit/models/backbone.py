"""`GeneTokenBackbone`: what every gene-token diffusion backbone shares; subclasses add an input adapter
and a block type.

One token per gene: value tokens from the transcriptome adapter + gene embedding + timestep embedding.
Perturbation tokens: pert adapter + timestep embedding, or a learned null token where `drop_cond` is True
(classifier-free guidance).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from torch import Tensor, nn

from pertdit.models.layers import (
    AdaLNModulation,
    FinalLayer,
    GeneEmbedding,
    PerturbationAdapter,
    TimestepEmbedder,
)


@dataclass(eq=False)
class Conditioning:
    """What the blocks attend to or are modulated by.

    `pert` (B, L, D) perturbation tokens with `pert_mask` (B, L) bool (True = real token); `time` (B, D)
    timestep embedding; `pre` (B, G, D) control-profile tokens for backbones that keep them apart.
    """

    pert: Tensor
    pert_mask: Tensor
    time: Tensor
    pre: Tensor | None = None

    @cached_property
    def pooled(self) -> Tensor:
        """(B, D): masked mean of the perturbation tokens (which already include the timestep embedding)."""
        weights = self.pert_mask.to(self.pert.dtype)[..., None]
        return (self.pert * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class GeneTokenBackbone(nn.Module):
    """Base of CrossDiT, CatCrossDiT, AdaDiT and CatonlyCrossDiT; predicts the noise eps (B, G).

    Subclasses set `block_class` (constructed as `block_class(d_model, n_heads, mlp_hidden, dropout,
    attn_impl)`, called as `block(x, cond)`) and implement `embed_values`.
    """

    block_class: type[nn.Module]

    def __init__(
        self,
        n_genes: int,
        d_pert: int,
        d_model: int = 256,
        n_layers: int = 2,
        n_heads: int = 4,
        mlp_hidden: int = 256,
        dropout: float = 0.0,
        time_embed_dim: int = 512,
        attn_impl: str = "sdpa",
    ) -> None:
        super().__init__()
        self.n_genes = n_genes
        self.d_pert = d_pert
        self.d_model = d_model
        self.gene_embedding = GeneEmbedding(n_genes, d_model)
        self.time_embedder = TimestepEmbedder(d_model, time_embed_dim)
        self.pert_adapter = PerturbationAdapter(d_pert, d_model)
        self.null_pert = nn.Parameter(torch.empty(d_model))
        self.build_adapters(d_model)
        self.blocks = nn.ModuleList(
            self.block_class(d_model, n_heads, mlp_hidden, dropout, attn_impl, **self.block_kwargs())
            for _ in range(n_layers)
        )
        self.final_layer = FinalLayer(d_model)
        self.reset_parameters()

    # subclass hooks ----------------------------------------------------------------------------------
    def block_kwargs(self) -> dict[str, Any]:
        """Extra keywords for `block_class` (none by default)."""
        return {}

    def build_adapters(self, d_model: int) -> None:
        """Create the transcriptome adapter(s)."""
        raise NotImplementedError

    def embed_values(self, x_t: Tensor, c_pre: Tensor) -> tuple[Tensor, Tensor | None]:
        """(x_t, c_pre) (B, G) -> gene tokens (B, G, D) and, if kept apart, c_pre tokens (B, G, D)."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------------------------------
    def reset_parameters(self) -> None:
        """Xavier-uniform Linear weights, zero biases, N(0, 1) gene embedding, N(0, 0.02) null token; then
        each modulation layer's own initialisation (zero for adaLN-Zero)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(self.gene_embedding.weight)
        nn.init.normal_(self.null_pert, std=0.02)
        for module in self.modules():
            if isinstance(module, AdaLNModulation):
                module.reset_parameters()

    def embed_perturbation(
        self, c_pert: Tensor, c_pert_mask: Tensor, drop_cond: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Adapted tokens (B, L, D) and mask (B, L); dropped samples get the null token at position 0 only."""
        tokens = self.pert_adapter(c_pert.to(self.pert_adapter.proj.weight.dtype))
        mask = c_pert_mask.bool()
        if drop_cond is not None:
            drop = drop_cond.bool().to(tokens.device)
            tokens = torch.where(drop[:, None, None], self.null_pert.to(tokens.dtype), tokens)
            null_mask = torch.zeros_like(mask)
            null_mask[:, 0] = True
            mask = torch.where(drop[:, None], null_mask, mask)
        return tokens, mask

    def forward(
        self,
        x_t: Tensor,
        t: Tensor,
        c_pre: Tensor,
        c_pert: Tensor,
        c_pert_mask: Tensor,
        drop_cond: Tensor | None = None,
    ) -> Tensor:
        """x_t, c_pre (B, G); t (B,) long; c_pert (B, L, d_pert); c_pert_mask (B, L) bool, True = real token;
        drop_cond (B,) bool, True = use the null condition. Returns eps (B, G)."""
        if x_t.shape[-1] != self.n_genes or c_pre.shape != x_t.shape:
            raise ValueError(
                f"{type(self).__name__} was built for {self.n_genes} genes; got x_t {tuple(x_t.shape)} and "
                f"c_pre {tuple(c_pre.shape)} (expected (B, {self.n_genes}) each)"
            )
        if c_pert.shape[-1] != self.d_pert:
            raise ValueError(
                f"{type(self).__name__} was built for d_pert={self.d_pert}; got c_pert {tuple(c_pert.shape)}"
            )
        time = self.time_embedder(t)  # (B, D)
        pert, pert_mask = self.embed_perturbation(c_pert, c_pert_mask, drop_cond)
        position = self.gene_embedding()[None] + time[:, None]  # (B, G, D)
        x, pre = self.embed_values(x_t, c_pre)
        cond = Conditioning(
            pert=pert + time[:, None],
            pert_mask=pert_mask,
            time=time,
            pre=None if pre is None else pre + position,
        )
        x = x + position
        for block in self.blocks:
            x = block(x, cond)
        return self.final_layer(x)
