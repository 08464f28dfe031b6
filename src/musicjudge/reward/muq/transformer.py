"""MuLan's own transformer (the audio and text towers' ``transformer``; CMI-RM reuses it).

Parameter names follow the official checkpoints (``layers.N.0`` attention, ``layers.N.1``
feed-forward, ``learned_gamma``, ``q_scale``...), so a state dict loads key for key.

:class:`QKNormTransformer`: pre-norm blocks of QK-normalised attention (queries and keys are
L2-normalised, scaled per head dimension by learned vectors, logits multiplied by 8) and a GEGLU
feed-forward, bias-free LayerNorms, residuals around both. Padding is excluded from the keys by
an additive -1e9 on the logits (a row of padding still attends, its output is simply never used).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GainOnlyLayerNorm(nn.Module):
    """LayerNorm with a learned gain and no bias (``learned_gamma``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.learned_gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.learned_gamma.to(x.dtype), None)


class GEGLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = x.chunk(2, dim=-1)
        return F.gelu(gate) * value


def gated_feed_forward(dim: int, mult: float, dropout: float = 0.0) -> nn.Sequential:
    """norm -> linear to 2 x hidden -> GEGLU -> linear back; hidden = int(dim * mult * 2/3)."""
    hidden = int(dim * mult * 2 / 3)
    return nn.Sequential(GainOnlyLayerNorm(dim), nn.Linear(dim, hidden * 2, bias=False), GEGLU(),
                         nn.Dropout(dropout), nn.Linear(hidden, dim, bias=False))


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, _ = x.shape
    return x.view(b, n, heads, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


class QKNormAttention(nn.Module):
    """Self-attention with L2-normalised, learned-scaled queries and keys (logit scale 8)."""

    LOGIT_SCALE = 8.0

    def __init__(self, dim: int, dim_head: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        inner = dim_head * heads
        self.norm = GainOnlyLayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.q_scale = nn.Parameter(torch.ones(dim_head))
        self.k_scale = nn.Parameter(torch.ones(dim_head))
        self.to_out = nn.Sequential(nn.Linear(inner, dim, bias=False), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm(x)
        q = split_heads(self.to_q(x), self.heads)
        k, v = (split_heads(t, self.heads) for t in self.to_kv(x).chunk(2, dim=-1))
        q = F.normalize(q, dim=-1) * self.q_scale
        k = F.normalize(k, dim=-1) * self.k_scale
        bias = None
        if key_mask is not None:
            bias = ((~key_mask).to(q.dtype) * -1e9)[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.LOGIT_SCALE)
        return self.to_out(merge_heads(out))


class QKNormTransformer(nn.Module):
    """``depth`` residual blocks of :class:`QKNormAttention` and a gated feed-forward."""

    def __init__(self, dim: int, depth: int, dim_head: int = 64, heads: int = 8, attn_dropout: float = 0.0,
                 ff_mult: float = 4, ff_dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([QKNormAttention(dim, dim_head, heads, attn_dropout), gated_feed_forward(dim, ff_mult, ff_dropout)])
            for _ in range(depth))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[1] == 0:  # an empty prompt stays empty
            return x
        for attention, feed_forward in self.layers:
            x = attention(x, mask) + x
            x = feed_forward(x) + x
        return x
