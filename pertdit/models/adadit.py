"""AdaDiT: CatCrossDiT whose self-attention and MLP are modulated by AdaLN (scale, shift, gate) computed from
a pooled condition (masked mean of the perturbation tokens, which carry the timestep embedding)."""

from __future__ import annotations

from torch import Tensor, nn

from pertdit.models.backbone import Conditioning
from pertdit.models.catcrossdit import CatCrossDiT
from pertdit.models.layers import AdaLNModulation, Attention, CrossAttentionLayer, GatedMLP, modulate


class AdaDiTBlock(nn.Module):
    """AdaLN self-attn -> cross-attn(x, c_pert) -> AdaLN gated MLP; adaLN-Zero (identity at init)."""

    def __init__(self, d_model: int, n_heads: int, mlp_hidden: int, dropout: float, attn_impl: str) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(d_model, elementwise_affine=False)
        self.self_attn = Attention(d_model, n_heads, dropout, attn_impl)
        self.cross_pert = CrossAttentionLayer(d_model, n_heads, dropout, attn_impl)
        self.norm_mlp = nn.LayerNorm(d_model, elementwise_affine=False)
        self.mlp = GatedMLP(d_model, mlp_hidden, dropout)
        self.modulation = AdaLNModulation(d_model, 6)

    def forward(self, x: Tensor, cond: Conditioning) -> Tensor:
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.modulation(cond.pooled)
        x = x + gate_a[:, None] * self.self_attn(modulate(self.norm_attn(x), shift_a, scale_a))
        x = self.cross_pert(x, cond.pert, cond.pert_mask)
        return x + gate_m[:, None] * self.mlp(modulate(self.norm_mlp(x), shift_m, scale_m))


class AdaDiT(CatCrossDiT):
    """Linear(2 -> D) on [x_t, c_pre]; AdaLN-modulated blocks."""

    block_class = AdaDiTBlock
