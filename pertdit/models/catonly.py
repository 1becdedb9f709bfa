"""CatonlyCrossDiT: CatCrossDiT without self-attention (genes interact only through the perturbation)."""

from __future__ import annotations

from torch import Tensor, nn

from pertdit.models.backbone import Conditioning
from pertdit.models.catcrossdit import CatCrossDiT
from pertdit.models.layers import CrossAttentionLayer, MLPLayer


class CatonlyCrossDiTBlock(nn.Module):
    """cross-attn(x, c_pert) -> gated MLP, each pre-norm residual."""

    def __init__(self, d_model: int, n_heads: int, mlp_hidden: int, dropout: float, attn_impl: str) -> None:
        super().__init__()
        self.cross_pert = CrossAttentionLayer(d_model, n_heads, dropout, attn_impl)
        self.mlp = MLPLayer(d_model, mlp_hidden, dropout)

    def forward(self, x: Tensor, cond: Conditioning) -> Tensor:
        return self.mlp(self.cross_pert(x, cond.pert, cond.pert_mask))


class CatonlyCrossDiT(CatCrossDiT):
    """Linear(2 -> D) on [x_t, c_pre]; blocks without self-attention."""

    block_class = CatonlyCrossDiTBlock
