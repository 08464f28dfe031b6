"""MuQ-MuLan's audio and text towers as CMI-RM uses them: per-frame / per-token embeddings with
their masks (CMI-RM attends over the sequences instead of MuLan's pooled vectors).

* audio: MuQ (``musicjudge.reward.muq``) -> linear to the MuLan width -> QK-norm transformer;
  padding is masked in MuQ's conformer and in the transformer, the frame mask is the sample mask
  taken every ``samples // frames`` samples (the official rule);
* text: XLM-RoBERTa (``transformers``) on the tokenizer's padded batch -> optional linear ->
  QK-norm transformer with the tokenizer's attention mask.

Parameter names (``model.``, ``aggregator``, ``transformer``, ``proj``) match the checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from musicjudge.errors import ModelLoadError
from musicjudge.reward.cmi_rm.layers import QKNormTransformer


def _transformer(settings: dict[str, Any]) -> QKNormTransformer:
    return QKNormTransformer(dim=int(settings.get("dim", 768)), depth=int(settings.get("tf_depth", 8)),
                             dim_head=int(settings.get("dim_head", 64)), heads=int(settings.get("heads", 8)),
                             attn_dropout=float(settings.get("attn_dropout", 0.0)),
                             ff_mult=float(settings.get("ff_mult", 4)), ff_dropout=float(settings.get("ff_dropout", 0.0)))


class MulanAudioFrames(nn.Module):
    """MuQ frames -> MuLan audio width -> transformer; ``forward(wave [B, L], mask [B, L]) -> (frames, frame_mask)``."""

    def __init__(self, muq: nn.Module, muq_dim: int, settings: dict[str, Any]) -> None:
        super().__init__()
        self.dim = int(settings.get("dim", 768))
        self.model = muq
        # Unused by MuQ-MuLan (a MERT layer mixer) but part of every checkpoint.
        self.aggregator = nn.Conv1d(in_channels=25, out_channels=1, kernel_size=1)
        self.transformer = _transformer(settings)
        self.proj = nn.Linear(muq_dim, self.dim)

    def forward(self, wave: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = mask.bool()
        hidden = muq_last_hidden_state(self.model, wave, mask)
        step = int(mask.shape[-1] / hidden.shape[1])
        frame_mask = mask[:, ::step][:, :hidden.shape[1]]
        return self.transformer(self.proj(hidden), frame_mask), frame_mask


def muq_last_hidden_state(muq: nn.Module, wave: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MuQ's last conformer layer for a padded batch, padding masked in the conformer."""
    from musicjudge.reward.cmi_rm.model import _muq_module

    return _muq_module().muq_frames(muq, wave, attention_mask=mask)


class MulanTextTokens(nn.Module):
    """XLM-R tokens -> (optional projection) -> transformer; ``forward(texts) -> (tokens, mask)``."""

    def __init__(self, text_model: nn.Module, tokenizer: Any, model_dim: int | None, settings: dict[str, Any]) -> None:
        super().__init__()
        self.dim = int(settings.get("dim", 768))
        self.max_seq_len = int(settings.get("max_seq_len", 1024))
        self.model = text_model
        self.tokenizer = tokenizer
        self.transformer = _transformer(settings)
        self.proj = nn.Linear(model_dim, self.dim) if model_dim is not None and model_dim != self.dim else nn.Identity()

    def forward(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        device = next(self.parameters()).device
        batch = self.tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True,
                               max_length=min(self.max_seq_len, 512), return_token_type_ids=False)
        batch = {k: v.to(device) for k, v in batch.items()}
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].bool()
        return self.transformer(self.proj(hidden), mask), mask


XLMR_SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
                       "cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>"}


def build_text_model(folder: Path) -> tuple[nn.Module, Any]:
    """An XLM-R of the architecture in ``folder/config.json`` (weights come from the CMI-RM checkpoint) and its tokenizer."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel

    try:
        config = XLMRobertaConfig.from_pretrained(str(folder))
        if (folder / "tokenizer.json").is_file():
            # The saved pipeline as is: transformers 5's XLMRobertaTokenizer rebuilds its own
            # normaliser / pre-tokeniser and can split text differently from the file (and from
            # the transformers 4 the reference ran on).
            tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), **XLMR_SPECIAL_TOKENS)
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{folder}: cannot read the text model's config/tokenizer ({str(e).splitlines()[0]}); "
                             "it needs config.json and the tokenizer files of xlm-roberta-base") from None
    model = XLMRobertaModel(config, add_pooling_layer=True)
    return model.eval(), tokenizer
