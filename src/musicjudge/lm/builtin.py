"""The built-in music LM: a small MusicGen decoder (``MusicgenForCausalLM``, same delay pattern
and BOS layout as MusicGen) over the mel residual-VQ tokenizer, trained on the built-in corpus.

It subclasses :class:`~musicjudge.lm.base.DelayPatternLM`, so scoring goes through exactly the
same :func:`~musicjudge.lm.scoring.decoder_token_nll` code path as real MusicGen checkpoints.
Weights ship in ``musicjudge/assets/builtin_lm/`` (safetensors, fp16) and load offline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from musicjudge.errors import ConfigError, ModelLoadError
from musicjudge.lm.base import DelayPatternLM
from musicjudge.lm.tokenizer import MelRVQTokenizer

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def builtin_dir() -> Path:
    """Folder of the built-in LM and tokenizer: ``$MUSICJUDGE_BUILTIN_LM`` (a folder written by
    ``musicjudge lm train``) if set, else the copy shipped in ``musicjudge/assets/builtin_lm``."""
    override = os.environ.get("MUSICJUDGE_BUILTIN_LM")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "assets" / "builtin_lm"


def decoder_config(codebook_size: int = 256, num_codebooks: int = 4, hidden_size: int = 256, num_layers: int = 4,
                   num_heads: int = 4, ffn_dim: int = 1024, max_positions: int = 2048, dropout: float = 0.1):
    """``MusicgenDecoderConfig`` of the built-in LM (pad = BOS = ``codebook_size``, as in MusicGen)."""
    from transformers import MusicgenDecoderConfig

    return MusicgenDecoderConfig(
        vocab_size=codebook_size, num_codebooks=num_codebooks, hidden_size=hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, ffn_dim=ffn_dim,
        max_position_embeddings=max_positions, pad_token_id=codebook_size, bos_token_id=codebook_size,
        dropout=dropout, attention_dropout=0.0, activation_dropout=0.0, layerdrop=0.0,
        tie_word_embeddings=False,
    )


class BuiltinLM(DelayPatternLM):
    """MusicLM over the mel-RVQ tokenizer; unconditional (a text condition raises ConfigError)."""

    def __init__(self, decoder: Any, tokenizer: MelRVQTokenizer, name: str = "builtin"):
        cfg = decoder.config
        if cfg.vocab_size != tokenizer.codebook_size or cfg.num_codebooks != tokenizer.num_codebooks:
            raise ModelLoadError(
                f"{name}: decoder expects {cfg.num_codebooks}x{cfg.vocab_size} codes but the tokenizer makes "
                f"{tokenizer.num_codebooks}x{tokenizer.codebook_size}; ship matching files")
        self.decoder = decoder.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.sample_rate = tokenizer.sample_rate
        self.frame_rate = tokenizer.frame_rate
        self.pad_token_id = int(cfg.pad_token_id)
        self.bos_token_id = int(cfg.bos_token_id)

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str | None = None, dtype: Any = None) -> "BuiltinLM":
        """Load decoder + tokenizer from ``path`` (default: the shipped ``assets/builtin_lm``).
        Offline; tensors must match the config exactly (ModelLoadError otherwise)."""
        import torch

        d = Path(path) if path is not None else builtin_dir()
        decoder = load_decoder(d)
        tokenizer = MelRVQTokenizer.load(d)
        if dtype is not None:
            if isinstance(dtype, str):
                dtype = getattr(torch, dtype, None) or _bad_dtype(dtype)
            decoder = decoder.to(dtype=dtype)
        if device is not None and device != "auto":
            decoder = decoder.to(device)
        return cls(decoder, tokenizer, name="builtin" if path is None else str(d))

    # ----------------------------------------------------------------- codec
    @property
    def lookahead_frames(self) -> int:  # type: ignore[override]
        return self.tokenizer.lookahead_frames

    def encode(self, wave: np.ndarray):
        return self.tokenizer.encode(self.check_wave(wave))

    def decode(self, codes, n_iter: int = 32, seed: int = 0) -> np.ndarray:
        return self.tokenizer.decode(codes, n_iter=n_iter, seed=seed)

    # ----------------------------------------------------------------- features for other packages
    def hidden_states(self, codes) -> "Any":
        """Decoder output ``[T, D]`` for one clip's codes: row ``t`` is the state at delayed position
        ``t + max_delay``, which has seen codebook ``k`` of frames up to ``t + max_delay - 1 - k``
        (every codebook of frames ``< t``)."""
        import torch

        from musicjudge.lm.scoring import codebook_delays, decoder_token_nll

        codes = self.check_codes(codes)
        with torch.inference_mode():
            out = decoder_token_nll(self.decoder, codes[None], pad_token_id=self.pad_token_id,
                                    bos_token_id=self.bos_token_id, return_hidden=True, chunk_size=self.chunk_size)
        max_delay = max(codebook_delays(self.decoder))
        return out.hidden[0, max_delay : max_delay + codes.shape[1]].float().cpu()

    def embed(self, wave: np.ndarray) -> np.ndarray:
        """Clip embedding: time-mean of :meth:`hidden_states` (float32 ``[D]``)."""
        return self.hidden_states(self.encode(wave)).mean(0).numpy().astype(np.float32)

    # ----------------------------------------------------------------- sampling
    def sample(self, num_frames: int, *, top_k: "int | Sequence[int | None] | None" = 250, temperature: float = 1.0,
               seed: int = 0, batch_size: int = 1):
        """Sample ``batch_size`` code sequences ``[B, K, num_frames]`` (unconditional; MusicGen's
        ``generate`` applies the delay pattern and reverts it). ``top_k``: one value or one per sample."""
        return sample_codes(self.decoder, num_frames, top_k=top_k, temperature=temperature, seed=seed,
                            batch_size=batch_size)

    def generate_audio(self, duration_s: float, *, top_k: int | None = 250, temperature: float = 1.0, seed: int = 0,
                       batch_size: int = 1, griffin_lim_iters: int = 32) -> list[np.ndarray]:
        """Sample and decode ``batch_size`` clips of ``duration_s`` seconds (float32, ``sample_rate``)."""
        frames = int(round(duration_s * self.frame_rate))
        codes = self.sample(frames, top_k=top_k, temperature=temperature, seed=seed, batch_size=batch_size)
        return [self.decode(c, n_iter=griffin_lim_iters, seed=seed + i) for i, c in enumerate(codes)]


def sample_codes(decoder: Any, num_frames: int, *, top_k: "int | Sequence[int | None] | None" = 250,
                 temperature: float = 1.0, seed: int = 0, batch_size: int = 1):
    """Top-k / temperature sampling from an unconditional ``MusicgenForCausalLM`` -> ``[B, K, T]``.

    ``top_k`` may be one value or one per batch item (a whole top-k sweep in one ``generate`` call,
    which on CPU costs about the same as a single sample); ``None`` or >= vocab = no truncation."""
    import torch
    from transformers import GenerationConfig, LogitsProcessorList

    if num_frames < 1:
        raise ConfigError(f"num_frames={num_frames}: must be at least 1")
    if temperature <= 0:
        raise ConfigError(f"temperature={temperature}: must be > 0")
    ks = list(top_k) if isinstance(top_k, (list, tuple)) else [top_k] * batch_size
    if len(ks) != batch_size:
        raise ConfigError(f"top_k has {len(ks)} values for batch_size={batch_size}; give one per sample")
    if any(k is not None and k < 1 for k in ks):
        raise ConfigError(f"top_k={top_k}: must be >= 1 (or None for no top-k)")
    cfg = decoder.config
    k = cfg.num_codebooks
    vocab = int(cfg.vocab_size)
    bos = int(cfg.bos_token_id)
    start = torch.full((batch_size * k, 1), bos, dtype=torch.long, device=decoder.device)
    row_k = torch.tensor([min(x or vocab, vocab) for x in ks for _ in range(k)], device=decoder.device)
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    # Each step multiplies tiny matrices: extra threads only add synchronisation (10x slower on a
    # busy 2-core machine), so sample single-threaded.
    torch.set_num_threads(1)
    with _restore_threads(threads), torch.inference_mode():
        gen = GenerationConfig(
            do_sample=True, top_k=0, temperature=float(temperature),
            # frames + K - 1 new delayed steps revert to at least num_frames frames (cropped below);
            # max_new_tokens (not max_length) keeps transformers from warning on every call
            max_new_tokens=max(num_frames, k) + k - 1, pad_token_id=bos, bos_token_id=bos, decoder_start_token_id=bos,
            num_return_sequences=1, num_beams=1, use_cache=True,
        )
        out = decoder.generate(input_ids=start, generation_config=gen,
                               logits_processor=LogitsProcessorList([_RowTopK(row_k)]))
    # generate() reverts the delay pattern; its output is cropped to num_frames below
    codes = out.reshape(batch_size, k, -1)[..., :num_frames]
    if codes.shape[-1] != num_frames or int(codes.max()) >= vocab:
        raise RuntimeError(f"sampling returned codes of shape {tuple(codes.shape)}; expected [{batch_size}, {k}, {num_frames}]")
    return codes.cpu()


class _restore_threads:
    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self.n)
        return False


class _RowTopK:
    """Logits processor: keep the ``k[r]`` largest logits of row ``r`` (rows = batch x codebook)."""

    def __init__(self, row_k):
        self.row_k = row_k

    def __call__(self, input_ids, scores):
        import torch

        kth = torch.sort(scores, dim=-1, descending=True).values.gather(-1, (self.row_k - 1)[:, None])
        return scores.masked_fill(scores < kth, float("-inf"))


def load_decoder(directory: str | Path):
    """Build ``MusicgenForCausalLM`` from ``config.json`` and load ``model.safetensors`` strictly
    (missing, unexpected or mis-shaped tensors raise ModelLoadError). Stored fp16 -> float32."""
    import torch
    from safetensors.torch import load_file
    from transformers import MusicgenDecoderConfig, MusicgenForCausalLM

    d = Path(directory)
    cfg_path, w_path = d / CONFIG_FILE, d / WEIGHTS_FILE
    if not cfg_path.exists() or not w_path.exists():
        raise ModelLoadError(f"{d}: missing {CONFIG_FILE} or {WEIGHTS_FILE}; train with 'musicjudge lm train' or reinstall")
    try:
        raw = json.loads(cfg_path.read_text())
        config = MusicgenDecoderConfig(**{k: v for k, v in raw.items() if k not in ("musicjudge",)})
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"{cfg_path}: invalid decoder config ({e}); reinstall or retrain") from None
    torch.manual_seed(0)
    model = MusicgenForCausalLM(config)
    try:
        state = load_file(str(w_path))
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"{w_path}: unreadable safetensors ({e}); reinstall or retrain") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or shapes:
        detail = (f"missing {missing[:3]}" if missing else "") + (f" unexpected {unexpected[:3]}" if unexpected else "") + \
                 (f" mis-shaped {shapes[:3]}" if shapes else "")
        raise ModelLoadError(f"{w_path}: tensors do not match {cfg_path.name} ({detail.strip()}); use matching files")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.eval()


def save_decoder(decoder: Any, directory: str | Path, extra: dict | None = None, fp16: bool = True) -> None:
    """Write ``config.json`` + ``model.safetensors`` (fp16 by default, ~half the size)."""
    import torch
    from safetensors.torch import save_file

    from musicjudge.io import atomic_write_json

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: (v.detach().to(torch.float16) if fp16 and v.is_floating_point() else v.detach()).contiguous().cpu()
             for k, v in decoder.state_dict().items()}
    save_file(state, str(d / WEIGHTS_FILE), metadata={"format": "pt", "producer": "musicjudge"})
    cfg = decoder.config.to_dict()
    if extra:
        cfg["musicjudge"] = extra
    atomic_write_json(d / CONFIG_FILE, cfg)


def load_builtin_lm(device: str | None = None, dtype: Any = None) -> BuiltinLM:
    """The shipped built-in LM (what ``--model builtin`` resolves to)."""
    return BuiltinLM.from_pretrained(None, device=device, dtype=dtype)


def _bad_dtype(name: str):
    raise ConfigError(f"dtype={name!r}: use float32, float16 or bfloat16")


def uniform_loss(codebook_size: int) -> float:
    """NLL of a uniform guess over the codebook (nats): the 'knows nothing' reference."""
    return float(np.log(codebook_size))


def shuffled_frames(codes_or_wave: np.ndarray, frame_len: int, seed: int = 0) -> np.ndarray:
    """Permute consecutive blocks of ``frame_len`` samples (or columns for codes ``[K, T]``)."""
    rng = np.random.default_rng(seed)
    arr = np.asarray(codes_or_wave)
    axis = arr.ndim - 1
    n = arr.shape[axis] // frame_len
    order = rng.permutation(n)
    blocks = np.split(np.take(arr, np.arange(n * frame_len), axis=axis), n, axis=axis)
    head = np.concatenate([blocks[i] for i in order], axis=axis)
    return np.concatenate([head, np.take(arr, np.arange(n * frame_len, arr.shape[axis]), axis=axis)], axis=axis)


__all__: Sequence[str] = ["BuiltinLM", "builtin_dir", "decoder_config", "load_builtin_lm", "load_decoder",
                          "save_decoder", "sample_codes", "uniform_loss", "shuffled_frames"]
