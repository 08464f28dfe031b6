"""MusicGen adapter (``transformers``' ``MusicgenForConditionalGeneration``) scored correctly:
own EnCodec at its sampling rate, delay pattern + BOS frame, null or text condition.

Hub ids stay real (``facebook/musicgen-small`` etc. through ``from_pretrained``); offline tests
use :func:`build_tiny_musicgen`, a randomly initialised model with the same architecture
(T5 text encoder + EnCodec + 4-codebook decoder) saved like a hub checkpoint."""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from musicjudge.errors import ConfigError, ModelLoadError
from musicjudge.lm.base import DelayPatternLM, split_condition

#: text-encoder vocabulary of the tiny test model (word level; real checkpoints ship T5's)
TINY_WORDS = (
    "a calm piano piece slow fast loud soft jazz rock pop classical guitar drums bass strings "
    "violin synth with and in the of minor major happy sad dark bright melody chords beat 80s 90s "
    "electronic ambient orchestral solo duet trio quartet song track music"
).split()


#: The adapter (``module:Class``) of each MusicGen variant's checkpoint ``model_type``: a plain
#: MusicGen adapter asked to load such a checkpoint hands it over. Named, not imported: the
#: variants' modules import this one, so this one must not import them (a new variant is one line).
VARIANTS = {
    "musicgen_melody": "musicjudge.lm.musicgen_melody:MusicGenMelodyLM",
}


def variant_class(model_type: str) -> type:
    """The :data:`VARIANTS` adapter class of a checkpoint ``model_type``."""
    import importlib

    module, _, name = VARIANTS[model_type].partition(":")
    return getattr(importlib.import_module(module), name)


def resolve_device(device: str | None = None) -> str:
    """``device`` as given, else CUDA when present, else CPU."""
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: Any = None, device: str = "cpu"):
    """torch dtype from ``None``/name/dtype; ``"auto"`` is bfloat16 on CUDA, float32 on CPU."""
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    if dtype not in names:
        raise ConfigError(f"dtype {dtype!r}: unknown; use one of float32, bfloat16, float16, auto")
    return names[dtype]


class MusicGenLM(DelayPatternLM):
    """A MusicGen checkpoint (small/medium/large/stereo) as a :class:`~musicjudge.lm.base.MusicLM`.
    :meth:`from_pretrained` hands MusicGen-Melody checkpoints to
    :class:`~musicjudge.lm.musicgen_melody.MusicGenMelodyLM`."""

    #: ``model_type`` of the checkpoints this class loads
    model_type = "musicgen"

    def __init__(self, model: Any, tokenizer: Any = None, name: str = "musicgen"):
        self.model = model.eval()
        self.decoder = model.decoder
        self.tokenizer = tokenizer
        self.name = name
        codec = model.config.audio_encoder
        self.sample_rate = int(codec.sampling_rate)
        self.frame_rate = float(codec.frame_rate)
        gen = getattr(model, "generation_config", None)
        dec = model.config.decoder
        start = getattr(gen, "decoder_start_token_id", None) if gen is not None else None
        pad = getattr(gen, "pad_token_id", None) if gen is not None else None
        self.bos_token_id = int(start if start is not None else dec.bos_token_id)
        self.pad_token_id = int(pad if pad is not None else dec.pad_token_id)
        self.min_frames = 2

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str | None = None, dtype: Any = None,
                        attn_implementation: str = "sdpa") -> "MusicGenLM":
        """Load a MusicGen checkpoint (hub id or local directory) and its tokenizer if present."""
        device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, device)
        local = Path(name_or_path).expanduser()
        if (local.exists() and not (local / "config.json").exists()) or (
            not local.exists() and (name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1)
        ):
            raise ModelLoadError(f"{name_or_path}: no MusicGen checkpoint there (config.json missing); "
                                 "give a hub id like facebook/musicgen-small or a saved model directory")
        from transformers.utils import logging as hf_logging

        # MusicGen's own checkpoints put pad/bos (2048) just outside the vocabulary on purpose
        # (the extra embedding row); transformers warns about that on every load.
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            return cls._load(name_or_path, device, torch_dtype, attn_implementation)
        finally:
            hf_logging.set_verbosity(verbosity)

    @classmethod
    def _load(cls, name_or_path: str, device: str, torch_dtype: Any, attn_implementation: str) -> "MusicGenLM":
        import torch
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(name_or_path)
        except Exception as e:  # noqa: BLE001 - hub/filesystem errors come in many types
            raise ModelLoadError(f"{name_or_path}: cannot load config ({_first_line(e)}); "
                                 "check the id/path (offline: use a local directory)") from None
        if config.model_type in VARIANTS and cls.model_type != config.model_type:
            return variant_class(config.model_type)._load(name_or_path, device, torch_dtype, attn_implementation)
        if config.model_type != cls.model_type:
            raise ModelLoadError(f"{name_or_path}: model_type {config.model_type!r} is not MusicGen; "
                                 "use load_music_lm('module:Class') for other models")
        try:
            # load in float32 and cast only the LM parts: EnCodec's codes must not depend on
            # the scoring dtype (loading it in bf16 and casting back changes them)
            model = cls._model_class().from_pretrained(
                name_or_path, dtype=torch.float32,
                attn_implementation={"decoder": attn_implementation, "text_encoder": attn_implementation,
                                     "audio_encoder": "eager"},
            )
        except Exception as e:  # noqa: BLE001
            raise ModelLoadError(f"{name_or_path}: cannot load MusicGen weights ({_first_line(e)}); "
                                 "re-download or re-save the checkpoint") from None
        if torch_dtype != torch.float32:
            for part in (model.decoder, model.text_encoder, getattr(model, "enc_to_dec_proj", None),
                         getattr(model, "audio_enc_to_dec_proj", None)):
                if part is not None:
                    part.to(torch_dtype)
        model.to(device)
        return cls._from_loaded(model, name_or_path)

    @classmethod
    def _model_class(cls):
        from transformers import MusicgenForConditionalGeneration

        return MusicgenForConditionalGeneration

    @classmethod
    def _from_loaded(cls, model: Any, name_or_path: str) -> "MusicGenLM":
        return cls(model, tokenizer=load_tokenizer(name_or_path), name=str(name_or_path))

    # ------------------------------------------------------------------ codec
    @property
    def codec(self):
        return self.model.audio_encoder

    def encode(self, wave: np.ndarray) -> "torch.LongTensor":
        return self.encode_batch([wave])[0]

    def encode_batch(self, waves: Sequence[np.ndarray], batch_size: int = 8) -> list["torch.LongTensor"]:
        """EnCodec codes ``[K, T]`` per wave (mono float32 at :attr:`sample_rate`). Waves of equal
        length are encoded together; different lengths never share a batch, because padding
        would change EnCodec's edge handling and so the codes."""
        import torch

        checked = [self.check_wave(w, f"<wave {i}>") for i, w in enumerate(waves)]
        out: list[torch.Tensor | None] = [None] * len(checked)
        by_length: dict[int, list[int]] = {}
        for i, w in enumerate(checked):
            by_length.setdefault(w.size, []).append(i)
        with torch.inference_mode():
            for idx in by_length.values():
                for begin in range(0, len(idx), batch_size):
                    part = idx[begin : begin + batch_size]
                    x = torch.from_numpy(np.stack([checked[i] for i in part]))[:, None, :]
                    x = x.to(self.device, dtype=self.codec.dtype)
                    codes = self.codec.encode(x).audio_codes  # [chunks=1, B, K, T]
                    if codes.shape[0] != 1:
                        raise ConfigError(f"{self.name}: codec returned {codes.shape[0]} chunks; "
                                          "set chunk_length_s=None in its audio_encoder config")
                    codes = codes[0]
                    if self.decoder.config.audio_channels == 2 and codes.shape[1] == self.num_codebooks // 2:
                        codes = codes.repeat_interleave(2, dim=1)  # mono input to a stereo model
                    for row, i in enumerate(part):
                        out[i] = codes[row].long().cpu()
        return out  # type: ignore[return-value]

    @cached_property
    def lookahead_frames(self) -> int:  # type: ignore[override]
        """How many frames before a waveform change EnCodec's codes can change: the right
        extent of the encoder's receptive field (non-causal convs; the LSTM is causal),
        measured exactly by back-propagating one frame's embedding to the input."""
        return encoder_lookahead_frames(self.codec.encoder, int(self.codec.config.hop_length))

    # ------------------------------------------------------------------ condition
    def null_condition_is_zero(self) -> bool:
        """True when cross-attention to the null condition contributes exactly zero."""
        if "_null_zero" not in self.__dict__:
            self._null_zero = _null_is_zero(self.model)
        return self._null_zero

    def conditioning(self, condition: str | None):
        """Cross-attention inputs exactly as ``MusicgenForConditionalGeneration.forward`` builds
        them: text-encoder states (or the zero null condition of ``get_unconditional_inputs``),
        projected by ``enc_to_dec_proj`` when sizes differ, multiplied by the attention mask."""
        import torch

        condition, melody = split_condition(condition)
        if melody:
            raise ConfigError(f"{self.name}: MusicGen has no melody conditioning; use a MusicGen-Melody "
                              f"checkpoint (e.g. facebook/musicgen-melody) or drop --melody {melody}")
        with torch.inference_mode():
            if condition is None or condition == "":
                null = self.model.get_unconditional_inputs(num_samples=1)
                states, mask = null.encoder_outputs[0], null.attention_mask
                if self.null_condition_is_zero():
                    # The null condition is one masked zero state; with bias-free key/value/output
                    # projections cross-attention then adds exactly 0, so skipping the block is
                    # exact and saves ~1/7 of the decoder's work (tested against the model's
                    # own forward with get_unconditional_inputs).
                    return None, None
            else:
                if self.tokenizer is None:
                    raise ConfigError(f"{self.name}: no tokenizer found with this checkpoint; "
                                      "cannot use a text condition (omit --condition)")
                enc = self.tokenizer([condition], return_tensors="pt", padding=True)
                ids = enc["input_ids"].to(self.device)
                mask = enc["attention_mask"].to(self.device)
                states = self.model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            return project_condition(self.model, states, mask)


def _null_is_zero(model: Any) -> bool:
    for layer in model.decoder.model.decoder.layers:
        attn = layer.encoder_attn
        if any(getattr(attn, name).bias is not None for name in ("k_proj", "v_proj", "out_proj")):
            return False
    return True


def project_condition(model: Any, states, mask):
    """Apply MusicGen's ``enc_to_dec_proj`` (when present) and zero masked positions."""
    if (
        model.text_encoder.config.hidden_size != model.decoder.config.hidden_size
        and model.decoder.config.cross_attention_hidden_size is None
    ):
        states = model.enc_to_dec_proj(states)
    if mask is not None:
        states = states * mask[..., None]
    return states, mask


def encoder_lookahead_frames(encoder: Any, hop: int, probe_frames: int = 24) -> int:
    import torch

    param = next(encoder.parameters())
    x = torch.randn(1, 1, hop * probe_frames, dtype=param.dtype, device=param.device, requires_grad=True)
    with torch.enable_grad():
        emb = encoder(x)  # [1, D, frames]
        frame = probe_frames // 3
        emb[0, :, frame].float().pow(2).sum().backward()
    touched = torch.nonzero(x.grad[0, 0].abs() > 0).flatten()
    if touched.numel() == 0:
        return 0
    last_sample = int(touched.max())
    ahead = last_sample - ((frame + 1) * hop - 1)
    return max(0, math.ceil(ahead / hop))


def load_tokenizer(name_or_path: str):
    """The checkpoint's text tokenizer (MusicGen ships T5's), or None when absent (shared by the
    MusicGen-family adapters)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except Exception:  # noqa: BLE001 - no tokenizer files: text conditions are then refused clearly
        return None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


def build_tiny_musicgen(
    out_dir: str | Path | None = None,
    *,
    seed: int = 0,
    codebook_size: int = 64,
    num_codebooks: int = 4,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    text_hidden_size: int = 16,
    sample_rate: int = 32000,
    upsampling_ratios: Sequence[int] = (8, 5, 4, 4),
    audio_channels: int = 1,
):
    """A randomly initialised MusicGen with the real architecture, small enough for tests:
    T5 text encoder (word-level tokenizer), EnCodec at 32 kHz / 50 fps with ``num_codebooks``
    codebooks of ``codebook_size`` (random codebooks so codes vary), and a decoder whose
    hidden size differs from the text encoder's (so ``enc_to_dec_proj`` is exercised).
    Returns the model; with ``out_dir`` also saves model (safetensors), generation config and
    tokenizer there, loadable by :meth:`MusicGenLM.from_pretrained`."""
    import torch
    from transformers import MusicgenConfig, MusicgenDecoderConfig, MusicgenForConditionalGeneration

    torch.manual_seed(seed)
    text, codec = tiny_configs(codebook_size=codebook_size, num_codebooks=num_codebooks,
                                text_hidden_size=text_hidden_size, sample_rate=sample_rate,
                                upsampling_ratios=upsampling_ratios)
    hop = int(np.prod(upsampling_ratios))
    decoder = MusicgenDecoderConfig(
        vocab_size=codebook_size, num_codebooks=num_codebooks * audio_channels, audio_channels=audio_channels,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, ffn_dim=2 * hidden_size,
        max_position_embeddings=512, pad_token_id=codebook_size, bos_token_id=codebook_size, dropout=0.0,
    )
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # pad/BOS one past the vocabulary is MusicGen's own layout
    try:
        config = MusicgenConfig(text_encoder=text, audio_encoder=codec, decoder=decoder)
        model = MusicgenForConditionalGeneration(config).eval()
    finally:
        hf_logging.set_verbosity(verbosity)
    seed_tiny_codebooks(model.audio_encoder, hop, codebook_size)
    tiny_generation_config(model.generation_config, codebook_size)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out_dir)
        tiny_tokenizer().save_pretrained(out_dir)
    return model


def tiny_configs(*, codebook_size: int, num_codebooks: int, text_hidden_size: int, sample_rate: int,
                  upsampling_ratios: Sequence[int]):
    """(T5 text encoder, EnCodec) configs of the tiny test models (:func:`build_tiny_musicgen` and
    :func:`~musicjudge.lm.musicgen_melody.build_tiny_musicgen_melody`)."""
    from transformers import EncodecConfig, T5Config

    nbits = int(math.log2(codebook_size))
    if 2**nbits != codebook_size:
        raise ConfigError(f"codebook_size {codebook_size}: must be a power of 2")
    frame_rate = math.ceil(sample_rate / int(np.prod(upsampling_ratios)))
    text = T5Config(vocab_size=len(TINY_WORDS) + 3, d_model=text_hidden_size, d_kv=8, d_ff=32, num_layers=1,
                    num_heads=2, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    codec = EncodecConfig(
        sampling_rate=sample_rate, upsampling_ratios=list(upsampling_ratios), num_filters=4, hidden_size=16,
        codebook_size=codebook_size, codebook_dim=16, target_bandwidths=[num_codebooks * nbits * frame_rate / 1000],
        use_causal_conv=False, normalize=False, num_lstm_layers=1, use_conv_shortcut=False, chunk_length_s=None,
    )
    return text, codec


def seed_tiny_codebooks(audio_encoder: Any, hop: int, codebook_size: int) -> None:
    """Give a freshly initialised tiny EnCodec non-degenerate codebooks (see the comment below);
    used by the tiny test-model builders."""
    import torch

    with torch.no_grad():
        # HF initialises EnCodec codebooks to zeros (every code would be 0). Seed each residual
        # codebook with residual vectors of real encoder outputs (one k-means-free step), so
        # different audio gives different codes in every codebook.
        probe = torch.randn(4, 1, hop * 100) * 0.1
        residual = audio_encoder.encoder(probe).transpose(1, 2).reshape(-1, 16)
        for layer in audio_encoder.quantizer.layers:
            pick = torch.randperm(residual.shape[0])[:codebook_size]
            book = residual[pick] + 1e-3 * torch.randn(codebook_size, 16)
            layer.codebook.embed.copy_(book)
            layer.codebook.embed_avg.copy_(book)
            nearest = torch.cdist(residual, book).argmin(-1)
            residual = residual - book[nearest]


def tiny_generation_config(gen: Any, codebook_size: int) -> None:
    """Set a tiny test model's generation config: pad/BOS/decoder start one past the vocabulary
    (MusicGen's layout), greedy, no classifier-free guidance."""
    gen.decoder_start_token_id = codebook_size
    gen.pad_token_id = codebook_size
    gen.bos_token_id = codebook_size
    gen.guidance_scale = None
    gen.do_sample = False
    gen.max_length = 256


def tiny_tokenizer():
    """The word-level text tokenizer (:data:`TINY_WORDS`) saved with the tiny test models."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for w in TINY_WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Lowercase()]) \
        if hasattr(pre_tokenizers, "Lowercase") else pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
