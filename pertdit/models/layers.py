"""Building blocks shared by the gene-token diffusion backbones.

Shapes: B batch, G genes (one token each), L perturbation tokens, D = d_model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ATTN_IMPLS = ("sdpa", "naive")


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features of timesteps t (B,) -> (B, dim): [cos(t f_k), sin(t f_k)], geometric f_k."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class TimestepEmbedder(nn.Module):
    """t (B,) long -> (B, D): sinusoidal(freq_dim) -> Linear + SiLU -> Linear + SiLU."""

    def __init__(self, d_model: int, freq_dim: int = 512) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(
            nn.Linear(freq_dim, d_model), nn.SiLU(), nn.Linear(d_model, d_model), nn.SiLU()
        )

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(sinusoidal_embedding(t, self.freq_dim).to(self.mlp[0].weight.dtype))


class GeneEmbedding(nn.Module):
    """A learnable identity vector per gene: `weight` (G, D), initialised N(0, 1)."""

    def __init__(self, n_genes: int, d_model: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_genes, d_model))

    def forward(self) -> Tensor:
        return self.weight


class TranscriptomeAdapter(nn.Module):
    """Per-gene values (B, G, n_inputs) -> tokens (B, G, D) with one shared Linear(n_inputs -> D)."""

    def __init__(self, n_inputs: int, d_model: int) -> None:
        super().__init__()
        self.proj = nn.Linear(n_inputs, d_model)

    def forward(self, values: Tensor) -> Tensor:
        return self.proj(values)


class PerturbationAdapter(nn.Module):
    """Drug tokens (B, L, d_pert) -> (B, L, D) with Linear(d_pert -> D)."""

    def __init__(self, d_pert: int, d_model: int) -> None:
        super().__init__()
        self.proj = nn.Linear(d_pert, d_model)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.proj(tokens)


class Attention(nn.Module):
    """Multi-head attention of queries x (B, N, D) over a context (B, M, D) (x itself for self-attention).

    `key_padding_mask` (B, M) bool, True = real token. `attn_impl="sdpa"` runs
    `F.scaled_dot_product_attention` (fused kernels on GPU); `"naive"` computes softmax(QK^T / sqrt(d)) V
    explicitly (reference and benchmarks). The key projection has no bias: softmax ignores it.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, attn_impl: str = "sdpa") -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        if attn_impl not in ATTN_IMPLS:
            raise ValueError(f"unknown attn_impl {attn_impl!r}; valid: {', '.join(ATTN_IMPLS)}")
        self.n_heads = n_heads
        self.dropout = dropout
        self.attn_impl = attn_impl
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model, bias=False)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def _heads(self, x: Tensor) -> Tensor:  # (B, N, D) -> (B, H, N, D/H)
        return x.unflatten(-1, (self.n_heads, -1)).transpose(1, 2)

    def forward(
        self, x: Tensor, context: Tensor | None = None, key_padding_mask: Tensor | None = None
    ) -> Tensor:
        context = x if context is None else context
        q, k, v = self._heads(self.q(x)), self._heads(self.k(context)), self._heads(self.v(context))
        mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]  # (B, 1, 1, M)
        p = self.dropout if self.training else 0.0
        if self.attn_impl == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            y = F.dropout(scores.softmax(dim=-1), p=p) @ v
        return self.out(y.transpose(1, 2).flatten(2))


class GatedMLP(nn.Module):
    """(…, D) -> (…, D): SiLU-gated hidden layer, W_out(silu(W_a x) * W_b x)."""

    def __init__(self, d_model: int, hidden: int = 256, dropout: float = 0.0) -> None:
        super().__init__()
        self.proj_in = nn.Linear(d_model, 2 * hidden)
        self.drop = nn.Dropout(dropout)
        self.proj_out = nn.Linear(hidden, d_model)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.proj_in(x).chunk(2, dim=-1)
        return self.proj_out(self.drop(F.silu(a) * b))


class SelfAttentionLayer(nn.Module):
    """Pre-norm residual self-attention over gene tokens: x + Attn(LN(x))."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, attn_impl: str = "sdpa") -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.attn = Attention(d_model, n_heads, dropout, attn_impl)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.attn(self.norm(x))


class CrossAttentionLayer(nn.Module):
    """Pre-norm residual cross-attention: x + Attn(LN(x), LN_c(context)), padded context keys ignored."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, attn_impl: str = "sdpa") -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.norm_context = nn.LayerNorm(d_model)
        self.attn = Attention(d_model, n_heads, dropout, attn_impl)

    def forward(self, x: Tensor, context: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        return x + self.attn(self.norm(x), self.norm_context(context), key_padding_mask)


class MLPLayer(nn.Module):
    """Pre-norm residual gated MLP: x + MLP(LN(x))."""

    def __init__(self, d_model: int, hidden: int = 256, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.mlp = GatedMLP(d_model, hidden, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mlp(self.norm(x))


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """AdaLN: x (B, N, D) * (1 + scale (B, D)) + shift (B, D)."""
    return x * (1 + scale[:, None]) + shift[:, None]


class AdaLNModulation(nn.Module):
    """Pooled condition (B, D) -> `n_chunks` vectors (B, D) via SiLU -> Linear.

    `zero_init=True`: weights and biases start at zero (DiT's adaLN-Zero); otherwise Xavier-uniform weights
    and zero biases (the authors' AdaDiT initialises every Linear so).
    """

    def __init__(self, d_model: int, n_chunks: int, zero_init: bool = True) -> None:
        super().__init__()
        self.n_chunks = n_chunks
        self.zero_init = zero_init
        self.proj = nn.Linear(d_model, n_chunks * d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.zero_init:
            nn.init.zeros_(self.proj.weight)
        else:
            nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, cond: Tensor) -> tuple[Tensor, ...]:
        return self.proj(F.silu(cond)).chunk(self.n_chunks, dim=-1)


class FinalLayer(nn.Module):
    """Gene tokens (B, G, D) -> per-gene prediction (B, G): LayerNorm then Linear(D -> 1)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.proj = nn.Linear(d_model, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.norm(x)).squeeze(-1)
