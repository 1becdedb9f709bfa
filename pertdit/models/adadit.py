"""AdaDiT: CatCrossDiT with the cross-attention to the perturbation *replaced* by AdaLN.

Each block is self-attention and a gated MLP, both modulated (scale, shift, gate) by a pooled condition: the
masked mean of the perturbation tokens plus the timestep embedding (`Conditioning.pooled`). There is no
cross-attention: the drug reaches the gene tokens only through that one vector, which is the point of the
paper's Figure 3b comparison (cross-attention vs AdaLN). As in the authors' `Adaformer_block`.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from pertdit.models.backbone import Conditioning
from pertdit.models.catcrossdit import CatCrossDiT
from pertdit.models.layers import AdaLNModulation, Attention, GatedMLP, modulate


class AdaDiTBlock(nn.Module):
    """x + gate_a * SelfAttn(AdaLN(x)) -> x + gate_m * MLP(AdaLN(x)); (scale, shift, gate) x 2 from the pooled
    condition (B, D).

    `adaln_zero=False` (the authors'): affine LayerNorms and a Xavier-initialised modulation, so the blocks
    act from the first step. `adaln_zero=True` (DiT's adaLN-Zero): LayerNorms without affine parameters and a
    zero-initialised modulation, so every block starts as the identity.
    """

    def __init__(self, d_model: int, n_heads: int, mlp_hidden: int, dropout: float, attn_impl: str,
                 adaln_zero: bool = False) -> None:
        super().__init__()
        affine = not adaln_zero
        self.norm_attn = nn.LayerNorm(d_model, elementwise_affine=affine)
        self.self_attn = Attention(d_model, n_heads, dropout, attn_impl)
        self.norm_mlp = nn.LayerNorm(d_model, elementwise_affine=affine)
        self.mlp = GatedMLP(d_model, mlp_hidden, dropout)
        self.modulation = AdaLNModulation(d_model, 6, zero_init=adaln_zero)

    def forward(self, x: Tensor, cond: Conditioning) -> Tensor:
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.modulation(cond.pooled)
        x = x + gate_a[:, None] * self.self_attn(modulate(self.norm_attn(x), shift_a, scale_a))
        return x + gate_m[:, None] * self.mlp(modulate(self.norm_mlp(x), shift_m, scale_m))


class AdaDiT(CatCrossDiT):
    """Linear(2 -> D) on [x_t, c_pre]; AdaLN-modulated self-attention blocks, no cross-attention.

    `adaln_zero`: DiT's adaLN-Zero initialisation instead of the authors' (see `AdaDiTBlock`).
    """

    block_class = AdaDiTBlock

    def __init__(self, n_genes: int, d_pert: int, *args: Any, adaln_zero: bool = False, **kwargs: Any) -> None:
        self._adaln_zero = adaln_zero
        super().__init__(n_genes, d_pert, *args, **kwargs)

    def block_kwargs(self) -> dict[str, Any]:
        return {"adaln_zero": self._adaln_zero}
