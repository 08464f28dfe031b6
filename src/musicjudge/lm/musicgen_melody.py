"""MusicGen-Melody (``transformers``' ``MusicgenMelodyForConditionalGeneration``) scored exactly:
the delay pattern and EnCodec of :class:`~musicjudge.lm.musicgen.MusicGenLM`, conditioned on a
text and/or a reference recording's chroma.

Unlike MusicGen, the melody model has no cross-attention: the condition is a *prefix*. Its
decoder concatenates ``[projected chroma (chroma_length frames), projected text states]`` before
the code embeddings and runs one causal self-attention over both, so the codes sit at decoder
positions ``P ..`` after the ``P`` prefix positions. musicjudge computes the prefix's keys/values
once per condition and scores every clip from them (:meth:`condition_prefix`,
``DelayPatternLM.condition_prefix_kv``), which is the same computation and yields the logits of
the code positions only.

The condition is built as ``generate`` builds it (guidance off), which is also audiocraft's:

- chroma: one-hot dominant pitch class per frame of the reference
  (:mod:`musicjudge.lm.chroma`), projected by ``audio_enc_to_dec_proj``, tiled (repeated whole)
  to ``chroma_length`` frames and cut there; no reference = the null melody, one frame with
  pitch class 0 set (what a silent reference gives) tiled the same way;
- text: T5 states projected by ``enc_to_dec_proj`` when sizes differ, times the attention mask;
  no text = the null text, one masked (all-zero) state -- what ``generate`` makes of an absent
  description and audiocraft of an empty one.

So the null condition is ``[null melody, null text]``. (``forward`` differs in one corner: given
chroma and no text it leaves the text part out; ``generate`` and audiocraft, which the model
samples with, keep the null text, and musicjudge follows them.)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from musicjudge.errors import ConfigError, MusicjudgeError
from musicjudge.lm.base import Condition, split_condition
from musicjudge.lm.chroma import ChromaConfig, chroma_features
from musicjudge.lm.musicgen import (
    MusicGenLM,
    load_tokenizer,
    seed_tiny_codebooks,
    tiny_configs,
    tiny_generation_config,
    tiny_tokenizer,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["MusicGenMelodyLM", "build_tiny_musicgen_melody", "Condition"]


class MusicGenMelodyLM(MusicGenLM):
    """A MusicGen-Melody checkpoint (facebook/musicgen-melody, -melody-large, -stereo-melody) as a
    :class:`~musicjudge.lm.base.MusicLM`; the condition is text, a
    :class:`~musicjudge.lm.base.Condition` (text and/or melody reference) or ``None`` (null)."""

    model_type = "musicgen_melody"

    def __init__(self, model: Any, tokenizer: Any = None, name: str = "musicgen-melody",
                 chroma_config: ChromaConfig | None = None):
        super().__init__(model, tokenizer=tokenizer, name=name)
        self.chroma_config = chroma_config or ChromaConfig()
        if self.chroma_config.num_chroma != int(model.config.num_chroma):
            raise ConfigError(f"{name}: preprocessor_config.json has num_chroma={self.chroma_config.num_chroma} "
                              f"but the model takes {model.config.num_chroma}; re-download the checkpoint")

    @classmethod
    def _model_class(cls):
        from transformers import MusicgenMelodyForConditionalGeneration

        return MusicgenMelodyForConditionalGeneration

    @classmethod
    def _from_loaded(cls, model: Any, name_or_path: str) -> "MusicGenMelodyLM":
        return cls(model, tokenizer=load_tokenizer(name_or_path), name=str(name_or_path),
                   chroma_config=ChromaConfig.from_pretrained(name_or_path))

    # ------------------------------------------------------------------ condition
    def conditioning(self, condition):
        """No cross-attention: everything is in :meth:`condition_prefix`."""
        split_condition(condition)
        return None, None

    def null_condition_is_zero(self) -> bool:
        return False  # the null condition is a prefix the decoder attends to, never a no-op

    def melody_chroma(self, melody: str | Path | np.ndarray | None) -> "torch.Tensor":
        """One-hot chroma ``[1, frames, num_chroma]`` of a reference (audio file path or mono wave
        at the front-end's rate), or the null melody (one frame, pitch class 0) for ``None``."""
        import torch

        cfg = self.chroma_config
        if melody is None:
            null = torch.zeros(1, 1, cfg.num_chroma)
            null[:, :, 0] = 1.0
            return null
        if isinstance(melody, (str, Path)):
            from musicjudge.audio import load_audio

            if not Path(melody).is_file():
                raise ConfigError(f"melody reference {melody}: file not found; pass an audio file with --melody")
            try:
                wave = load_audio(melody, sample_rate=cfg.sampling_rate)
            except MusicjudgeError as e:  # a bad reference is a setting, not a bad clip
                raise ConfigError(f"melody reference {e}; pass a readable, non-silent audio file with --melody") from None
            return chroma_features(wave, cfg, source=str(melody))[None]
        return chroma_features(np.asarray(melody), cfg)[None]

    def condition_prefix(self, condition) -> "torch.Tensor":
        """``[1, chroma_length + text_length, D]``: projected chroma then projected text states,
        exactly as ``MusicgenMelodyForConditionalGeneration.generate`` prepends them."""
        import torch

        text, melody = split_condition(condition)
        model = self.model
        with torch.inference_mode():
            audio = self.melody_chroma(melody).to(self.device)
            proj = getattr(model, "audio_enc_to_dec_proj", None)
            if proj is not None:  # only when num_chroma != hidden size, as in transformers
                audio = proj(audio.to(proj.weight.dtype))
            length = int(model.config.chroma_length)
            if audio.shape[1] < length:
                audio = audio.repeat(1, math.ceil(length / audio.shape[1]), 1)
            audio = audio[:, :length]
            hidden = model.decoder.config.hidden_size
            if text:
                if self.tokenizer is None:
                    raise ConfigError(f"{self.name}: no tokenizer found with this checkpoint; "
                                      "cannot use a text condition (omit --condition)")
                enc = self.tokenizer([text], return_tensors="pt", padding=True)
                ids, mask = enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
                states = model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
                if model.text_encoder.config.hidden_size != hidden:
                    states = model.enc_to_dec_proj(states)
                states = states * mask[..., None]
            else:
                states = torch.zeros(1, 1, hidden, device=self.device)
            return torch.cat([audio.to(self.dtype), states.to(self.dtype)], dim=1)


def build_tiny_musicgen_melody(
    out_dir: str | Path | None = None,
    *,
    seed: int = 0,
    codebook_size: int = 64,
    num_codebooks: int = 4,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    text_hidden_size: int = 16,
    chroma_length: int = 12,
    sample_rate: int = 32000,
    upsampling_ratios: Sequence[int] = (8, 5, 4, 4),
    audio_channels: int = 1,
    chroma: ChromaConfig | None = None,
):
    """A randomly initialised MusicGen-Melody with the real architecture, small enough for tests:
    T5 text encoder (word-level tokenizer), EnCodec at 32 kHz / 50 fps, a 4-codebook prefix
    decoder whose hidden size differs from both the text encoder's and ``num_chroma`` (so both
    projections are exercised), and a short ``chroma_length``; ``audio_channels=2`` is the
    stereo-melody layout (left/right codebooks interleaved, pairs sharing a delay). ``chroma``: front-end settings
    written to ``preprocessor_config.json`` (default: n_fft 4096, hop 1024 -- small, so short
    references give several chroma frames). Returns the model; with ``out_dir`` also saves
    model (safetensors), generation config, tokenizer and preprocessor config there."""
    import json

    import torch
    from transformers import (
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        MusicgenMelodyForConditionalGeneration,
    )

    torch.manual_seed(seed)
    text, codec = tiny_configs(codebook_size=codebook_size, num_codebooks=num_codebooks,
                                text_hidden_size=text_hidden_size, sample_rate=sample_rate,
                                upsampling_ratios=upsampling_ratios)
    decoder = MusicgenMelodyDecoderConfig(
        vocab_size=codebook_size, num_codebooks=num_codebooks * audio_channels, audio_channels=audio_channels,
        hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads, ffn_dim=2 * hidden_size,
        max_position_embeddings=512, pad_token_id=codebook_size, bos_token_id=codebook_size, dropout=0.0,
    )
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # pad/BOS one past the vocabulary is MusicGen's own layout
    try:
        config = MusicgenMelodyConfig(text_encoder=text, audio_encoder=codec, decoder=decoder,
                                      num_chroma=12, chroma_length=chroma_length)
        model = MusicgenMelodyForConditionalGeneration(config).eval()
    finally:
        hf_logging.set_verbosity(verbosity)
    with torch.no_grad():
        # at the default init (std 0.02) the projected condition is drowned by the positional
        # embeddings and barely moves the NLL; std 1 makes tests see every prefix detail
        for proj in (model.enc_to_dec_proj, model.audio_enc_to_dec_proj):
            proj.weight.normal_(0.0, 1.0)
            proj.bias.normal_(0.0, 1.0)
    seed_tiny_codebooks(model.audio_encoder, int(np.prod(upsampling_ratios)), codebook_size)
    tiny_generation_config(model.generation_config, codebook_size)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out_dir)
        tiny_tokenizer().save_pretrained(out_dir)
        front = chroma or ChromaConfig(sampling_rate=sample_rate, n_fft=4096, hop_length=1024)
        # the keys of the official preprocessor_config.json (the extractor class itself needs torchaudio)
        (out_dir / "preprocessor_config.json").write_text(json.dumps({
            "feature_extractor_type": "MusicgenMelodyFeatureExtractor", "processor_class": "MusicgenMelodyProcessor",
            "feature_size": front.num_chroma, "num_chroma": front.num_chroma, "sampling_rate": front.sampling_rate,
            "n_fft": front.n_fft, "hop_length": front.hop_length, "chunk_length": front.chunk_length,
            "padding_side": "right", "padding_value": 0.0, "return_attention_mask": False, "stem_indices": [3, 2],
        }, indent=2))
    return model
