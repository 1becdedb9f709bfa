"""CatCrossDiT: one token per gene from the pair [x_t, c_pre]; self-attention, then cross-attention to the
perturbation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pertdit.models.backbone import Conditioning, GeneTokenBackbone
from pertdit.models.layers import CrossAttentionLayer, MLPLayer, SelfAttentionLayer, TranscriptomeAdapter


class CatCrossDiTBlock(nn.Module):
    """self-attn(x) -> cross-attn(x, c_pert) -> gated MLP, each pre-norm residual."""

    def __init__(self, d_model: int, n_heads: int, mlp_hidden: int, dropout: float, attn_impl: str) -> None:
        super().__init__()
        self.self_attn = SelfAttentionLayer(d_model, n_heads, dropout, attn_impl)
        self.cross_pert = CrossAttentionLayer(d_model, n_heads, dropout, attn_impl)
        self.mlp = MLPLayer(d_model, mlp_hidden, dropout)

    def forward(self, x: Tensor, cond: Conditioning) -> Tensor:
        x = self.self_attn(x)
        x = self.cross_pert(x, cond.pert, cond.pert_mask)
        return self.mlp(x)


class CatCrossDiT(GeneTokenBackbone):
    """Linear(2 -> D) on the concatenated per-gene pair [x_t, c_pre]."""

    block_class = CatCrossDiTBlock

    def build_adapters(self, d_model: int) -> None:
        self.pair_adapter = TranscriptomeAdapter(2, d_model)

    def embed_values(self, x_t: Tensor, c_pre: Tensor) -> tuple[Tensor, Tensor | None]:
        return self.pair_adapter(torch.stack([x_t, c_pre], dim=-1)), None
