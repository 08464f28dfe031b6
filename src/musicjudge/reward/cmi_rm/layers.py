"""The building blocks of CMI-RM and of the MuQ-MuLan towers' own transformers.

Parameter names follow the official checkpoints (``layers.N.0`` attention, ``layers.N.1``
feed-forward, ``learned_gamma``, ``q_scale``...), so a state dict loads key for key.

* :class:`QKNormTransformer` (defined in :mod:`musicjudge.reward.muq.transformer`) - pre-norm blocks of QK-normalised attention (queries and keys are
  L2-normalised, scaled per head dimension by learned vectors, logits multiplied by 8) and a GEGLU
  feed-forward, bias-free LayerNorms, residuals around both. Padding is excluded from the keys by
  an additive -1e9 on the logits, as in the official code (a row of padding still attends, its
  output is simply never used).
* :class:`CrossAttentionBlock` - the cross-attention ("CA") joint transformer layer:
  self-attention, then attention from the clip frames to the prompt, then the feed-forward.
* :func:`build_downsampler` - the sequence shorteners of the official ``downsample`` config
  (``none``, ``mean``, ``meanpool+mlp``, ``conv*2``, ``conv``, ``gluconv*2+pw`` and their aliases).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from musicjudge.errors import ConfigError
from musicjudge.reward.muq.transformer import (  # noqa: F401 - re-exported
    GEGLU, GainOnlyLayerNorm, QKNormAttention, QKNormTransformer, merge_heads, split_heads, gated_feed_forward)

Masked = tuple[torch.Tensor, torch.Tensor]


class PromptAttention(nn.Module):
    """Cross-attention from clip frames (queries) to the prompt (keys/values), plain 1/sqrt(d) scale."""

    def __init__(self, dim: int, dim_head: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        inner = dim_head * heads
        self.norm_q = GainOnlyLayerNorm(dim)
        self.norm_kv = GainOnlyLayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim, bias=False), nn.Dropout(dropout))
        self.scale = dim_head ** -0.5

    def forward(self, x: torch.Tensor, prompt: torch.Tensor, prompt_mask: torch.Tensor | None) -> torch.Tensor:
        q = split_heads(self.to_q(self.norm_q(x)), self.heads)
        k, v = (split_heads(t, self.heads) for t in self.to_kv(self.norm_kv(prompt)).chunk(2, dim=-1))
        bias = None
        if prompt_mask is not None:
            bias = torch.zeros(prompt_mask.shape, dtype=q.dtype, device=q.device)
            bias = bias.masked_fill(~prompt_mask, float("-inf"))[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        return self.to_out(merge_heads(out))


class CrossAttentionBlock(nn.Module):
    """Self-attention over the clip, attention to the prompt, feed-forward; residual around each."""

    def __init__(self, dim: int, dim_head: int, heads: int, ff_mult: float, attn_dropout: float = 0.0,
                 ff_dropout: float = 0.0) -> None:
        super().__init__()
        self.self_attn = QKNormAttention(dim, dim_head, heads, attn_dropout)
        self.cross_attn = PromptAttention(dim, dim_head, heads, attn_dropout)
        self.ffn = gated_feed_forward(dim, ff_mult, ff_dropout)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, prompt: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
        x = self.self_attn(x, x_mask) + x
        x = self.cross_attn(x, prompt, prompt_mask) + x
        return self.ffn(x) + x


# ------------------------------------------------------------------------------------------
# Downsamplers: (B, T, D) + mask (B, T) -> (B, T', D) + mask (B, T')
# ------------------------------------------------------------------------------------------


def _crop_to_multiple(x: torch.Tensor, mask: torch.Tensor, m: int) -> Masked:
    keep = (x.shape[1] // m) * m if m > 1 else x.shape[1]
    return x[:, :keep], mask[:, :keep]


def _pooled_mean(x: torch.Tensor, mask: torch.Tensor, factor: int) -> Masked:
    """Masked mean over non-overlapping windows of ``factor`` frames (a trailing partial window is dropped)."""
    x, mask = _crop_to_multiple(x, mask, factor)
    b, t, d = x.shape
    if t == 0:
        return x.new_zeros(b, 0, d), mask.new_zeros(b, 0)
    weights = mask.view(b, t // factor, factor, 1).to(x.dtype)
    count = weights.sum(dim=2)
    pooled = (x.view(b, t // factor, factor, d) * weights).sum(dim=2) / count.clamp_min(1.0)
    out_mask = count.squeeze(-1) > 0
    return pooled * out_mask.unsqueeze(-1).to(pooled.dtype), out_mask


class NoDownsampling(nn.Module):
    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Masked:
        return x, mask


class MeanPool(nn.Module):
    def __init__(self, dim: int, factor: int, **_unused: Any) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Masked:
        mask = mask.bool()
        if self.factor == 1:
            return x * mask.unsqueeze(-1).to(x.dtype), mask
        return _pooled_mean(x, mask, self.factor)


class MeanPoolMLP(nn.Module):
    """Masked mean pooling and a 2-layer SiLU MLP (after pooling, or before with ``pre_mlp``)."""

    def __init__(self, dim: int, factor: int, mlp_ratio: float = 2.0, dropout: float = 0.0, pre_mlp: bool = False) -> None:
        super().__init__()
        self.factor = factor
        self.pre_mlp = pre_mlp
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.SiLU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Masked:
        mask = mask.bool()
        if self.factor == 1:
            return self.mlp(x * mask.unsqueeze(-1).to(x.dtype)), mask
        if self.pre_mlp:
            x = self.mlp(x)
        y, out_mask = _pooled_mean(x, mask, self.factor)
        if y.shape[1] == 0:
            return y, out_mask
        return (y if self.pre_mlp else self.mlp(y)), out_mask


def _strided_mask(mask: torch.Tensor, stride: int) -> torch.Tensor:
    """A frame of the output is valid if any frame of its window is."""
    if stride <= 1:
        return mask
    b, t = mask.shape
    keep = (t // stride) * stride
    return mask[:, :keep].view(b, keep // stride, stride).any(dim=-1)


class StridedDepthwiseConv(nn.Module):
    """Depthwise conv with stride (SAME padding), LayerNorm, SiLU; padding zeroed before and after."""

    def __init__(self, dim: int, stride: int, kernel_size: int = 5, use_layernorm: bool = True, gated: bool = False) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ConfigError(f"downsample kernel_size={kernel_size}: must be odd")
        self.stride = stride
        if gated:  # pointwise to 2 x dim, GLU over channels, then the depthwise conv
            self.pw1 = nn.Conv1d(dim, 2 * dim, kernel_size=1, bias=False)
        self.gated = gated
        self.dw = nn.Conv1d(dim, dim, kernel_size=kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
                            groups=dim, bias=False)
        self.ln = nn.LayerNorm(dim) if use_layernorm else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Masked:
        x, mask = _crop_to_multiple(x, mask.bool(), self.stride)
        if x.shape[1] == 0:
            return x, mask[:, :0]
        h = (x * mask.unsqueeze(-1).to(x.dtype)).transpose(1, 2)
        if self.gated:
            h = F.glu(self.pw1(h), dim=1)
        y = F.silu(self.ln(self.dw(h).transpose(1, 2)))
        out_mask = _strided_mask(mask, self.stride)
        return y * out_mask.unsqueeze(-1).to(y.dtype), out_mask


def two_stage_strides(factor: int) -> tuple[int, int]:
    """``factor`` = s1 * s2 with small strides, 3 preferred, then 2, then 4 (the official choice)."""
    if factor <= 1:
        return 1, 1
    prefer = (3, 2, 4)

    def rank(s: int) -> int:
        return prefer.index(s) if s in prefer else 999

    candidates = [(s1, factor // s1) for s1 in range(2, factor + 1) if factor % s1 == 0]
    s1, s2 = min(candidates, key=lambda p: (max(p), rank(p[0]) + rank(p[1]), abs(p[0] - 3) + abs(p[1] - 3), abs(p[0] - p[1])))
    if (s2 == 3 and s1 != 3) or (s2 < s1 and s1 != 3):
        s1, s2 = s2, s1
    return s1, s2


class TwoStageConv(nn.Module):
    """Two :class:`StridedDepthwiseConv` stages (``conv*2``; ``gluconv*2+pw`` adds GLU and a final pointwise conv)."""

    def __init__(self, dim: int, factor: int, kernel_size: int = 5, use_layernorm: bool = True, gated: bool = False) -> None:
        super().__init__()
        self.factor = factor
        s1, s2 = two_stage_strides(factor) if factor > 1 else (1, 1)
        self.block1 = StridedDepthwiseConv(dim, s1, kernel_size, use_layernorm, gated)
        self.block2 = StridedDepthwiseConv(dim, s2, kernel_size, use_layernorm, gated)
        self.gated = gated
        if gated:
            self.final_pw = nn.Conv1d(dim, dim, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Masked:
        mask = mask.bool()
        if self.factor == 1:
            return x * mask.unsqueeze(-1).to(x.dtype), mask
        x, mask = self.block1(x, mask)
        x, mask = self.block2(x, mask)
        if self.gated and x.shape[1] > 0:
            x = self.final_pw(x.transpose(1, 2)).transpose(1, 2) * mask.unsqueeze(-1).to(x.dtype)
        return x, mask


class RepeatedConv(nn.Module):
    """``conv``: the same strided conv stage applied ``stage`` times (one set of weights, as in the official code)."""

    def __init__(self, dim: int, factor: int, stage: int = 1, kernel_size: int = 5, use_layernorm: bool = True) -> None:
        super().__init__()
        self.factor = factor
        block = StridedDepthwiseConv(dim, factor, kernel_size, use_layernorm)
        self.blocks = nn.ModuleList([block] * int(stage))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Masked:
        mask = mask.bool()
        if self.factor == 1:
            return x * mask.unsqueeze(-1).to(x.dtype), mask
        for block in self.blocks:
            x, mask = block(x, mask)
        return x, mask


_DOWNSAMPLERS = {
    **dict.fromkeys(("mean", "meanpool"), MeanPool),
    **dict.fromkeys(("meanpool+mlp", "mean+mlp", "baseline1", "b1"), MeanPoolMLP),
    **dict.fromkeys(("conv*2", "baseline2", "b2"), TwoStageConv),
    **dict.fromkeys(("conv", "baseline2simple", "b2s"), RepeatedConv),
    **dict.fromkeys(("gluconv*2+pw", "baseline3", "b3"), lambda dim, factor, **kw: TwoStageConv(dim, factor, gated=True, **kw)),
}


def build_downsampler(settings: dict[str, Any], dim: int, where: str) -> nn.Module:
    """One downsampler from an entry of the config's ``downsample.configs`` (``kind``, ``factor``, options)."""
    settings = dict(settings)
    kind = str(settings.pop("kind", "none")).lower()
    settings.pop("dim", None)
    if kind == "none":
        return NoDownsampling()
    if kind not in _DOWNSAMPLERS:
        raise ConfigError(f"{where}: downsample kind {kind!r} is unknown; use one of none, {', '.join(sorted(_DOWNSAMPLERS))}")
    factor = int(settings.pop("factor", 1))
    if factor < 1:
        raise ConfigError(f"{where}: downsample factor {factor} must be >= 1")
    try:
        return _DOWNSAMPLERS[kind](dim, factor, **settings)
    except TypeError as e:
        raise ConfigError(f"{where}: downsample {kind!r} does not take {e}") from None
