"""MuQ-MuLan's audio and text towers as CMI-RM uses them: per-frame / per-token embeddings with
their masks (CMI-RM attends over the sequences instead of MuLan's pooled vectors). They are
defined with MuQ-MuLan in :mod:`musicjudge.reward.muq.mulan` and re-exported here.

* audio: MuQ (``musicjudge.reward.muq``) -> linear to the MuLan width -> QK-norm transformer;
  padding is masked in MuQ's conformer and in the transformer, the frame mask is the sample mask
  taken every ``samples // frames`` samples (the official rule);
* text: XLM-RoBERTa (``transformers``) on the tokenizer's padded batch -> optional linear ->
  QK-norm transformer with the tokenizer's attention mask.

Parameter names (``model.``, ``aggregator``, ``transformer``, ``proj``) match the checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn

from musicjudge.reward.muq.model import muq_frames
from musicjudge.reward.muq.mulan import XLMR_SPECIAL_TOKENS, MulanAudioFrames, MulanTextTokens, build_text_model

__all__ = ["XLMR_SPECIAL_TOKENS", "MulanAudioFrames", "MulanTextTokens", "build_text_model", "muq_last_hidden_state"]


def muq_last_hidden_state(muq: nn.Module, wave: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MuQ's last conformer layer for a padded batch, padding masked in the conformer."""
    return muq_frames(muq, wave, attention_mask=mask)
