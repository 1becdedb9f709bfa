"""CrossDiT: gene tokens of x_t attend to separate c_pre tokens, then to the perturbation tokens."""

from __future__ import annotations

from torch import Tensor, nn

from pertdit.models.backbone import Conditioning, GeneTokenBackbone
from pertdit.models.layers import CrossAttentionLayer, MLPLayer, TranscriptomeAdapter


class CrossDiTBlock(nn.Module):
    """cross-attn(x, c_pre) -> cross-attn(x, c_pert) -> gated MLP, each pre-norm residual."""

    def __init__(self, d_model: int, n_heads: int, mlp_hidden: int, dropout: float, attn_impl: str) -> None:
        super().__init__()
        self.cross_pre = CrossAttentionLayer(d_model, n_heads, dropout, attn_impl)
        self.cross_pert = CrossAttentionLayer(d_model, n_heads, dropout, attn_impl)
        self.mlp = MLPLayer(d_model, mlp_hidden, dropout)

    def forward(self, x: Tensor, cond: Conditioning) -> Tensor:
        x = self.cross_pre(x, cond.pre)
        x = self.cross_pert(x, cond.pert, cond.pert_mask)
        return self.mlp(x)


class CrossDiT(GeneTokenBackbone):
    """Separate Linear(1 -> D) adapters for x_t and c_pre; c_pre tokens are not updated between layers."""

    block_class = CrossDiTBlock

    def build_adapters(self, d_model: int) -> None:
        self.x_adapter = TranscriptomeAdapter(1, d_model)
        self.pre_adapter = TranscriptomeAdapter(1, d_model)

    def embed_values(self, x_t: Tensor, c_pre: Tensor) -> tuple[Tensor, Tensor | None]:
        return self.x_adapter(x_t[..., None]), self.pre_adapter(c_pre[..., None])
