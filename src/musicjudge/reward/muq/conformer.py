"""The wav2vec2-conformer encoder MuQ uses, written out in torch.

Parameter names and semantics are those of ``transformers``' ``Wav2Vec2ConformerEncoder`` (the
class the ``muq`` package instantiates with its ``w2v2_config``), so MuQ checkpoints load key for
key. Behaviour, as in that encoder (transformers 4.x, which MuQ was trained and released with):

* a padded batch: padded frames are set to 0 at the input and excluded as attention *keys*; the
  convolution module still sees them (its depthwise convolution spans the boundary), as in the
  original;
* position information: ``rotary`` (applied to the hidden states before the query/key
  projections, the wav2vec2-conformer way), ``relative`` (Transformer-XL scores with
  ``pos_bias_u``/``pos_bias_v``) or none;
* ``pos_conv_embed`` exists (it is in every checkpoint) but the encoder never applies it;
* each layer: half-step feed-forward, self-attention, convolution module (pointwise conv -> GLU
  -> depthwise conv -> BatchNorm -> activation -> pointwise conv), half-step feed-forward, LayerNorm;
  a final LayerNorm after the last layer;
* ``hidden_states`` (when asked): the input of every layer, then the final normalised output
  (``hidden_states[-1]`` is the last hidden state).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from musicjudge.errors import ModelLoadError


def _activation(name: str) -> nn.Module:
    from transformers.activations import ACT2FN

    try:
        return ACT2FN[name]
    except KeyError:
        raise ModelLoadError(f"w2v2_config: unknown activation {name!r}") from None


class ConformerSettings:
    """The fields of a ``w2v2_config`` the encoder uses (defaults: transformers' Wav2Vec2ConformerConfig)."""

    def __init__(self, cfg: Mapping[str, Any], hidden_size: int, num_hidden_layers: int) -> None:
        self.hidden_size = int(hidden_size)
        self.num_hidden_layers = int(num_hidden_layers)
        self.num_attention_heads = int(cfg.get("num_attention_heads", 16))
        self.intermediate_size = int(cfg.get("intermediate_size", 4096))
        self.hidden_act = str(cfg.get("hidden_act", "gelu"))
        self.position_embeddings_type = cfg.get("position_embeddings_type", "relative")
        self.rotary_embedding_base = float(cfg.get("rotary_embedding_base", 10000))
        self.max_source_positions = int(cfg.get("max_source_positions", 5000))
        self.conv_depthwise_kernel_size = int(cfg.get("conv_depthwise_kernel_size", 31))
        self.num_conv_pos_embeddings = int(cfg.get("num_conv_pos_embeddings", 128))
        self.num_conv_pos_embedding_groups = int(cfg.get("num_conv_pos_embedding_groups", 16))
        self.layer_norm_eps = float(cfg.get("layer_norm_eps", 1e-5))
        self.feat_extract_activation = str(cfg.get("feat_extract_activation", "gelu"))
        self.hidden_dropout = float(cfg.get("hidden_dropout", 0.1))
        self.attention_dropout = float(cfg.get("attention_dropout", 0.1))
        self.activation_dropout = float(cfg.get("activation_dropout", 0.1))
        self.conformer_conv_dropout = float(cfg.get("conformer_conv_dropout", 0.1))
        if self.hidden_size % self.num_attention_heads:
            raise ModelLoadError(f"w2v2_config: hidden size {self.hidden_size} is not a multiple of "
                                 f"num_attention_heads={self.num_attention_heads}")
        if self.position_embeddings_type not in ("rotary", "relative", None):
            raise ModelLoadError(f"w2v2_config: position_embeddings_type={self.position_embeddings_type!r}; "
                                 "use 'rotary', 'relative' or null")
        if self.conv_depthwise_kernel_size % 2 == 0:
            raise ModelLoadError("w2v2_config: conv_depthwise_kernel_size must be odd ('same' padding)")


class RotaryPositions(nn.Module):
    def __init__(self, s: ConformerSettings) -> None:
        super().__init__()
        dim = s.hidden_size // s.num_attention_heads
        inv_freq = 1.0 / (s.rotary_embedding_base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        self.register_buffer("inv_freq", inv_freq)  # persistent: it is in the checkpoints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[2, T, 1, 1, head_dim]: cos and sin of each position."""
        t = torch.arange(x.shape[1], device=x.device).type_as(self.inv_freq)
        freqs = t[:, None] * self.inv_freq
        angles = torch.cat((freqs, freqs), dim=-1)
        return torch.stack([angles.cos()[:, None, None, :], angles.sin()[:, None, None, :]]).type_as(x)


class RelativePositions(nn.Module):
    """Sinusoids for relative offsets T-1 ... -(T-1) (Transformer-XL); not part of a checkpoint."""

    def __init__(self, s: ConformerSettings) -> None:
        super().__init__()
        self.d_model = s.hidden_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        position = torch.arange(n, dtype=torch.int64).float().unsqueeze(1)
        div = torch.exp(torch.arange(0, self.d_model, 2, dtype=torch.int64).float() * -(math.log(10000.0) / self.d_model))
        pos = torch.zeros(n, self.d_model)
        neg = torch.zeros(n, self.d_model)
        pos[:, 0::2], pos[:, 1::2] = torch.sin(position * div), torch.cos(position * div)
        neg[:, 0::2], neg[:, 1::2] = torch.sin(-position * div), torch.cos(-position * div)
        table = torch.cat([torch.flip(pos, [0]), neg[1:]], dim=0).unsqueeze(0)  # [1, 2T-1, D]
        return table.to(device=x.device, dtype=x.dtype)


class PositionalConv(nn.Module):
    """Weight-normalised grouped convolution; present in checkpoints, never applied by the encoder."""

    def __init__(self, s: ConformerSettings) -> None:
        super().__init__()
        conv = nn.Conv1d(s.hidden_size, s.hidden_size, kernel_size=s.num_conv_pos_embeddings,
                         padding=s.num_conv_pos_embeddings // 2, groups=s.num_conv_pos_embedding_groups)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)


class FeedForward(nn.Module):
    def __init__(self, s: ConformerSettings) -> None:
        super().__init__()
        self.intermediate_dense = nn.Linear(s.hidden_size, s.intermediate_size)
        self.act = _activation(s.hidden_act)
        self.intermediate_dropout = nn.Dropout(s.activation_dropout)
        self.output_dense = nn.Linear(s.intermediate_size, s.hidden_size)
        self.output_dropout = nn.Dropout(s.hidden_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_dropout(self.output_dense(self.intermediate_dropout(self.act(self.intermediate_dense(x)))))


class ConvolutionModule(nn.Module):
    def __init__(self, s: ConformerSettings) -> None:
        super().__init__()
        d, k = s.hidden_size, s.conv_depthwise_kernel_size
        self.layer_norm = nn.LayerNorm(d)
        self.pointwise_conv1 = nn.Conv1d(d, 2 * d, kernel_size=1, bias=False)
        self.depthwise_conv = nn.Conv1d(d, d, k, padding=(k - 1) // 2, groups=d, bias=False)
        self.batch_norm = nn.BatchNorm1d(d)
        self.act = _activation(s.hidden_act)
        self.pointwise_conv2 = nn.Conv1d(d, d, kernel_size=1, bias=False)
        self.dropout = nn.Dropout(s.conformer_conv_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layer_norm(x).transpose(1, 2)
        h = F.glu(self.pointwise_conv1(h), dim=1)
        h = self.act(self.batch_norm(self.depthwise_conv(h)))
        return self.dropout(self.pointwise_conv2(h)).transpose(1, 2)


class SelfAttention(nn.Module):
    def __init__(self, s: ConformerSettings) -> None:
        super().__init__()
        d = s.hidden_size
        self.heads = s.num_attention_heads
        self.head_size = d // self.heads
        self.kind = s.position_embeddings_type
        self.linear_q = nn.Linear(d, d)
        self.linear_k = nn.Linear(d, d)
        self.linear_v = nn.Linear(d, d)
        self.linear_out = nn.Linear(d, d)
        self.dropout_p = s.attention_dropout
        if self.kind == "relative":
            self.linear_pos = nn.Linear(d, d, bias=False)
            self.pos_bias_u = nn.Parameter(torch.zeros(self.heads, self.head_size))
            self.pos_bias_v = nn.Parameter(torch.zeros(self.heads, self.head_size))

    def _rotate(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        h = x.view(b, n, self.heads, self.head_size).transpose(0, 1)  # [T, B, H, d]
        cos, sin = positions[0, :n], positions[1, :n]
        half = self.head_size // 2
        rotated = torch.cat((-h[..., half:], h[..., :half]), dim=-1)
        return (h * cos + rotated * sin).transpose(0, 1).reshape(b, n, -1)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None, positions: torch.Tensor | None) -> torch.Tensor:
        b, n, _ = x.shape
        qk_in = self._rotate(x, positions) if self.kind == "rotary" else x

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, self.head_size).transpose(1, 2)

        q, k, v = heads(self.linear_q(qk_in)), heads(self.linear_k(qk_in)), heads(self.linear_v(x))
        scale = self.head_size ** -0.5
        bias = None
        if self.kind == "relative":
            pos = self.linear_pos(positions).view(positions.shape[0], -1, self.heads, self.head_size).permute(0, 2, 3, 1)
            bd = torch.matmul(q + self.pos_bias_v[None, :, None, :], pos)  # [B, H, T, 2T-1]
            shape = bd.shape
            bd = F.pad(bd, (1, 0)).view(*shape[:2], shape[3] + 1, shape[2])[..., 1:, :].reshape(shape)
            bias = bd[..., :n] * scale
            q = q + self.pos_bias_u[None, :, None, :]
        if key_mask is not None:
            masked = torch.zeros(b, 1, 1, n, dtype=q.dtype, device=q.device).masked_fill(
                ~key_mask[:, None, None, :], torch.finfo(q.dtype).min)
            bias = masked if bias is None else bias + masked
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=self.dropout_p if self.training else 0.0,
                                             scale=scale)
        return self.linear_out(out.transpose(1, 2).reshape(b, n, -1))


class ConformerLayer(nn.Module):
    def __init__(self, s: ConformerSettings) -> None:
        super().__init__()
        d = s.hidden_size
        self.ffn1_layer_norm = nn.LayerNorm(d)
        self.ffn1 = FeedForward(s)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.self_attn_dropout = nn.Dropout(s.attention_dropout)
        self.self_attn = SelfAttention(s)
        self.conv_module = ConvolutionModule(s)
        self.ffn2_layer_norm = nn.LayerNorm(d)
        self.ffn2 = FeedForward(s)
        self.final_layer_norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None, positions: torch.Tensor | None) -> torch.Tensor:
        x = self.ffn1(self.ffn1_layer_norm(x)) * 0.5 + x
        x = self.self_attn_dropout(self.self_attn(self.self_attn_layer_norm(x), key_mask, positions)) + x
        x = self.conv_module(x) + x
        x = self.ffn2(self.ffn2_layer_norm(x)) * 0.5 + x
        return self.final_layer_norm(x)


class ConformerEncoder(nn.Module):
    """``forward(x [B, T, D], mask [B, T] | None, output_hidden_states) -> (last, hidden_states | None)``."""

    def __init__(self, s: ConformerSettings) -> None:
        super().__init__()
        if s.position_embeddings_type == "rotary":
            self.embed_positions: nn.Module | None = RotaryPositions(s)
        elif s.position_embeddings_type == "relative":
            self.embed_positions = RelativePositions(s)
        else:
            self.embed_positions = None
        self.pos_conv_embed = PositionalConv(s)
        self.layer_norm = nn.LayerNorm(s.hidden_size, eps=s.layer_norm_eps)
        self.dropout = nn.Dropout(s.hidden_dropout)
        self.layers = nn.ModuleList(ConformerLayer(s) for _ in range(s.num_hidden_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                output_hidden_states: bool = False) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        if mask is not None:
            mask = mask.bool()
            x = x.masked_fill(~mask[..., None], 0.0)
        x = self.dropout(x)
        positions = self.embed_positions(x) if self.embed_positions is not None else None
        states: list[torch.Tensor] = []
        for layer in self.layers:
            if output_hidden_states:
                states.append(x)
            x = layer(x, mask, positions)
        x = self.layer_norm(x)
        if output_hidden_states:
            states.append(x)
            return x, tuple(states)
        return x, None
