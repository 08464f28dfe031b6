"""MuQ-MuLan: MuQ and XLM-RoBERTa towers with MuLan transformers and linear heads into a shared,
L2-normalised latent space (audio and text embeddings are comparable by dot product).

Module tree and parameter names as ``muq.MuQMuLan`` (``mulan.audio.model`` = MuQ,
``mulan.audio.aggregator``/``transformer``/``proj``, ``mulan.text.model`` = ``XLMRobertaModel``
from ``transformers``, ``mulan.text.transformer``/``proj``, ``mulan.audio_to_latents``,
``mulan.text_to_latents``, ``mulan.contrast.temperatures``).

* :class:`MulanAudioFrames` / :class:`MulanTextTokens`: the towers' per-frame / per-token outputs
  with their masks (CMI-RM attends over these sequences);
* :class:`MuQMuLan`: the pooled embeddings of ``muq.MuQMuLan(wavs=...)`` / ``(texts=...)``. Audio:
  the wave is cut into ``clip_secs`` clips (a short last clip is filled up with the start of the
  wave, as the official code does), each clip -> MuQ last layer -> projection -> transformer ->
  mean over frames -> latent head -> L2 norm, and the clips' latents are averaged. Text: XLM-R ->
  projection -> transformer -> mean over tokens -> latent head -> L2 norm. Texts are batched with
  padding *masked*; the official code averages over padding too, so its batched text embeddings
  depend on the other texts of the batch; ours equal its embeddings of each text alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from musicjudge.errors import ModelLoadError
from musicjudge.reward.muq.model import SAMPLE_RATE, muq_frames
from musicjudge.reward.muq.transformer import QKNormTransformer

TEXT_MAX_TOKENS = 512  # XLM-R's positions


def mulan_transformer(settings: Mapping[str, Any]) -> QKNormTransformer:
    return QKNormTransformer(dim=int(settings.get("dim", 768)), depth=int(settings.get("tf_depth", 8)),
                             dim_head=int(settings.get("dim_head", 64)), heads=int(settings.get("heads", 8)),
                             attn_dropout=float(settings.get("attn_dropout", 0.0)),
                             ff_mult=float(settings.get("ff_mult", 4)), ff_dropout=float(settings.get("ff_dropout", 0.0)))


def _masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return x.mean(dim=-2)
    w = mask.unsqueeze(-1).to(x.dtype)
    return (x * w).sum(dim=-2) / w.sum(dim=-2).clamp(min=1)


class MulanAudioFrames(nn.Module):
    """MuQ frames -> MuLan audio width -> transformer; ``forward(wave [B, L], mask [B, L] | None) -> (frames, frame_mask)``."""

    def __init__(self, muq: nn.Module, muq_dim: int, settings: Mapping[str, Any], use_layer_idx: int = -1) -> None:
        super().__init__()
        self.dim = int(settings.get("dim", 768))
        self.use_layer_idx = int(use_layer_idx)
        self.model = muq
        # Unused by MuQ-MuLan (a MERT layer mixer) but part of every checkpoint.
        self.aggregator = nn.Conv1d(in_channels=25, out_channels=1, kernel_size=1)
        self.transformer = mulan_transformer(settings)
        self.proj = nn.Linear(muq_dim, self.dim)

    def muq_hidden(self, wave: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.use_layer_idx == -1:
            return muq_frames(self.model, wave, attention_mask=mask)
        return self.model(wave, attention_mask=mask, output_hidden_states=True)[1][self.use_layer_idx]

    def forward(self, wave: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if mask is None:
            hidden = self.muq_hidden(wave, None)
            return self.transformer(self.proj(hidden)), None
        mask = mask.bool()
        hidden = self.muq_hidden(wave, mask)
        step = int(mask.shape[-1] / hidden.shape[1])
        frame_mask = mask[:, ::step][:, :hidden.shape[1]]
        return self.transformer(self.proj(hidden), frame_mask), frame_mask


class MulanTextTokens(nn.Module):
    """XLM-R tokens -> (optional projection) -> transformer; ``forward(texts) -> (tokens, mask)``."""

    def __init__(self, text_model: nn.Module, tokenizer: Any, model_dim: int | None, settings: Mapping[str, Any]) -> None:
        super().__init__()
        self.dim = int(settings.get("dim", 768))
        self.max_seq_len = int(settings.get("max_seq_len", 1024))
        self.model = text_model
        self.tokenizer = tokenizer
        self.transformer = mulan_transformer(settings)
        self.proj = nn.Linear(model_dim, self.dim) if model_dim is not None and model_dim != self.dim else nn.Identity()

    def forward(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        device = next(self.parameters()).device
        batch = self.tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True,
                               max_length=min(self.max_seq_len, TEXT_MAX_TOKENS), return_token_type_ids=False)
        batch = {k: v.to(device) for k, v in batch.items()}
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].bool()
        return self.transformer(self.proj(hidden), mask), mask


XLMR_SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
                       "cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>"}


def build_text_model(folder: Path) -> tuple[nn.Module, Any]:
    """An XLM-R of the architecture in ``folder/config.json`` (weights come from the MuQ-MuLan / CMI-RM checkpoint) and its tokenizer."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel

    folder = Path(folder)
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


class _Contrast(nn.Module):
    """The contrastive loss's learned temperature (and bias for the sigmoid loss): checkpoint tensors only."""

    def __init__(self, sigmoid: bool) -> None:
        super().__init__()
        self.temperatures = nn.Parameter(torch.zeros(1, 1, 1), requires_grad=False)
        if sigmoid:
            self.bias = nn.Parameter(torch.zeros(1, 1, 1), requires_grad=False)


class MulanHeads(nn.Module):
    def __init__(self, audio: MulanAudioFrames, text: MulanTextTokens, settings: Mapping[str, Any]) -> None:
        super().__init__()
        if settings.get("hierarchical_contrastive_loss"):
            raise ModelLoadError("MuQ-MuLan config: hierarchical_contrastive_loss is not supported (no released model uses it)")
        dim_latent = int(settings.get("dim_latent", 512))
        self.audio = audio
        self.text = text
        self.text_to_latents = nn.Linear(text.dim, dim_latent)
        self.audio_to_latents = nn.Linear(audio.dim, dim_latent)
        self.contrast = _Contrast(bool(settings.get("sigmoid_contrastive_loss")))


class MuQMuLan(nn.Module):
    """``embed_audio(wave [L] at 24 kHz) -> [dim_latent]``, ``embed_texts(texts) -> [N, dim_latent]``."""

    sample_rate = SAMPLE_RATE

    def __init__(self, config: Mapping[str, Any], muq: nn.Module, text_model: nn.Module, tokenizer: Any) -> None:
        super().__init__()
        try:
            settings, audio_model, text_cfg = dict(config["mulan"]), dict(config["audio_model"]), dict(config["text_model"])
            audio_tf, text_tf = dict(config["audio_transformer"]), dict(config["text_transformer"])
        except (KeyError, TypeError, ValueError) as e:
            raise ModelLoadError(f"MuQ-MuLan config: no {e} section; is this a MuQ-MuLan config.json?") from None
        self.config = dict(config)
        if int(settings.get("sr", SAMPLE_RATE)) != SAMPLE_RATE:
            raise ModelLoadError(f"MuQ-MuLan config: sr={settings.get('sr')}; MuQ runs at {SAMPLE_RATE} Hz")
        self.clip_secs = float(settings.get("clip_secs", 10))
        muq_dim = int(audio_model.get("model_dim") or getattr(muq, "dim", 1024))
        audio = MulanAudioFrames(muq, muq_dim, audio_tf, int(audio_model.get("use_layer_idx", -1)))
        text_dim = text_cfg.get("model_dim")
        text = MulanTextTokens(text_model, tokenizer, None if text_dim is None else int(text_dim), text_tf)
        self.mulan = MulanHeads(audio, text, settings)
        self.dim = self.mulan.audio_to_latents.out_features

    def audio_clips(self, wave: torch.Tensor) -> list[torch.Tensor]:
        """``clip_secs`` pieces of a 1-D wave; a short tail is completed with the wave's beginning (official rule)."""
        size = int(self.sample_rate * self.clip_secs)
        n = wave.shape[-1]
        clips = [wave[s:s + size] for s in range(0, n - size + 1, size)]
        done = len(clips) * size
        if done < n:
            clips.append(torch.cat([wave[done:], wave[: size - (n - done)]]))
        return clips

    @torch.no_grad()
    def audio_latents(self, clips: torch.Tensor) -> torch.Tensor:
        """[B, L] equal-length clips -> [B, dim_latent] (L2-normalised)."""
        frames, _ = self.mulan.audio(clips)
        return F.normalize(self.mulan.audio_to_latents(frames.mean(dim=-2)), p=2, dim=-1)

    @torch.no_grad()
    def embed_audio(self, wave: torch.Tensor) -> torch.Tensor:
        """``muq.MuQMuLan(wavs=wave[None])[0]``: the mean of the clips' latents."""
        wave = wave.reshape(-1).float()
        clips = self.audio_clips(wave)
        full = [c for c in clips if c.shape[0] == clips[0].shape[0]]
        latents = [self.audio_latents(torch.stack(full))]
        if len(full) < len(clips):
            latents.append(self.audio_latents(clips[-1][None]))
        return torch.cat(latents).mean(dim=0)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        tokens, mask = self.mulan.text(list(texts))
        return F.normalize(self.mulan.text_to_latents(_masked_mean(tokens, mask)), p=2, dim=-1)
