"""The music-LM scorer interface: :class:`MusicLM` (protocol), :class:`TokenNLL` (result) and
:class:`DelayPatternLM`, the base class for any MusicGen-architecture decoder (the MusicGen
adapter and the built-in LM both derive from it and so share one scoring code path)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

import numpy as np

from musicjudge.errors import AudioError, ConfigError
# the value types live in the leaf module lm.types (the engine needs them too); importable from here
from musicjudge.lm.types import Condition, TokenNLL, make_condition, split_condition

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["Condition", "DelayPatternLM", "MusicLM", "TokenNLL", "make_condition", "split_condition"]


@runtime_checkable
class MusicLM(Protocol):
    """What probes need from a music LM (see docs/interfaces.md)."""

    name: str
    sample_rate: int
    frame_rate: float
    num_codebooks: int
    codebook_size: int

    @property
    def lookahead_frames(self) -> int: ...

    def encode(self, wave: np.ndarray) -> "torch.LongTensor": ...

    def encode_batch(self, waves: Sequence[np.ndarray]) -> list["torch.LongTensor"]: ...

    def token_nll(self, codes: "torch.Tensor", condition: "str | Condition | None" = None) -> TokenNLL: ...

    def token_nll_batch(self, codes: Sequence["torch.Tensor"], condition: "str | Condition | None" = None) -> list[TokenNLL]: ...


class DelayPatternLM:
    """Base class for a MusicGen-architecture LM (``MusicgenForCausalLM`` decoder).

    A subclass sets, in ``__init__``: ``self.decoder`` (a ``MusicgenForCausalLM`` in eval mode),
    ``self.name``, ``self.sample_rate``, ``self.frame_rate``, ``self.pad_token_id``,
    ``self.bos_token_id`` (the decoder-start token that fills the BOS frame and delay slots),
    and implements :meth:`encode` (mono float32 wave at ``sample_rate`` -> LongTensor ``[K, T]``).
    It may override :meth:`conditioning` (default: unconditional, no cross-attention),
    :meth:`condition_prefix` (states the decoder reads *before* the BOS frame, for prefix-conditioned
    models such as MusicGen-Melody), :meth:`encode_batch` and :attr:`lookahead_frames`. Everything else -- token NLL, batched
    NLL, the shared-prefix perturbation engine -- comes from here and goes through
    :func:`musicjudge.lm.scoring.decoder_token_nll`'s delay-pattern layout.
    """

    name: str = "delay-pattern-lm"
    sample_rate: int
    frame_rate: float
    pad_token_id: int
    bos_token_id: int
    decoder: Any
    #: positions per decoder call for long clips (exact causal chunking through the KV cache)
    chunk_size: int = 1024
    #: minimum clip length accepted by :meth:`check_wave`, in frames
    min_frames: int = 2

    # ----------------------------------------------------------------- properties
    @property
    def num_codebooks(self) -> int:
        return int(self.decoder.config.num_codebooks)

    @property
    def codebook_size(self) -> int:
        return int(self.decoder.config.vocab_size)

    @property
    def device(self) -> "torch.device":
        return self.decoder.device

    @property
    def dtype(self) -> "torch.dtype":
        return self.decoder.dtype

    @property
    def lookahead_frames(self) -> int:
        """Frames by which the codec's codes can change *before* a change in the waveform."""
        return 0

    # ----------------------------------------------------------------- to implement
    def encode(self, wave: np.ndarray) -> "torch.LongTensor":
        raise NotImplementedError

    def encode_batch(self, waves: Sequence[np.ndarray]) -> list["torch.LongTensor"]:
        return [self.encode(w) for w in waves]

    def conditioning(self, condition: "str | Condition | None") -> tuple["torch.Tensor | None", "torch.Tensor | None"]:
        """``(encoder_hidden_states [1, S, D], encoder_attention_mask [1, S])`` for the decoder's
        cross-attention, or ``(None, None)`` for an unconditional decoder."""
        text, melody = split_condition(condition)
        if melody:
            raise ConfigError(f"{self.name}: this model takes no melody condition; drop --melody {melody} "
                              "(or use a MusicGen-Melody checkpoint)")
        if text:
            raise ConfigError(f"{self.name}: this model is unconditional; drop the text condition {text!r}")
        return None, None

    def condition_prefix(self, condition: "str | Condition | None") -> "torch.Tensor | None":
        """Embeddings ``[1, P, D]`` the decoder reads before the BOS frame (its positions
        ``0 .. P-1``; the codes follow at ``P ..``), or ``None`` (no prefix: cross-attention or
        unconditional models)."""
        return None

    # ----------------------------------------------------------------- helpers
    def check_wave(self, wave: np.ndarray, source: str = "<wave>") -> np.ndarray:
        """Validate a mono wave (finite, not silent, at least ``min_frames`` frames)."""
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1:
            raise AudioError(f"{source}: expected a mono wave [samples], got shape {wave.shape}; mix down to mono")
        min_samples = int(math.ceil(self.min_frames * self.sample_rate / self.frame_rate))
        if wave.size < min_samples:
            raise AudioError(
                f"{source}: clip too short ({wave.size} samples < {min_samples} at {self.sample_rate} Hz); "
                f"use at least {self.min_frames / self.frame_rate:.2f} s"
            )
        if not np.isfinite(wave).all():
            raise AudioError(f"{source}: wave contains NaN/inf; repair or re-render the audio")
        if not np.any(wave):
            raise AudioError(f"{source}: wave is silent (all zeros); use a non-silent clip")
        return wave

    def check_codes(self, codes: "torch.Tensor") -> "torch.Tensor":
        import torch

        codes = torch.as_tensor(codes)
        if codes.dim() != 2 or codes.shape[0] != self.num_codebooks:
            raise ConfigError(f"codes: expected shape [{self.num_codebooks}, T], got {tuple(codes.shape)}")
        if codes.shape[1] < 1:
            raise ConfigError("codes: empty sequence (T = 0); encode a longer clip")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ConfigError(f"codes: values must lie in [0, {self.codebook_size}); were they made by this model's codec?")
        return codes.long()

    def condition_tensors(self, condition: "str | Condition | None"):
        """:meth:`conditioning` of ``condition``, computed once per condition (a small cache):
        what every scoring pass (here and in :mod:`musicjudge.lm.engine`) feeds cross-attention."""
        cache = self.__dict__.setdefault("_condition_cache", {})
        if condition not in cache:
            if len(cache) > 16:
                cache.clear()
            cache[condition] = self.conditioning(condition)
        return cache[condition]

    def prepare_condition(self, condition: "str | Condition | None") -> None:
        """Build (and cache) everything ``condition`` needs now, so a condition this model rejects
        (ConfigError) or a bad melody reference fails once, before any clip is scored."""
        self.condition_tensors(condition)
        self.condition_prefix_kv(condition)

    def condition_prefix_kv(self, condition: "str | Condition | None"):
        """Per-layer ``(keys, values)`` ``[1, heads, P, head_dim]`` of :meth:`condition_prefix`
        (computed once per condition), or ``None``. Scoring starts every decoder pass from them,
        which is exact: the prefix precedes the codes and attention is causal."""
        cache = self.__dict__.setdefault("_prefix_kv_cache", {})
        if condition not in cache:
            import torch

            from musicjudge.lm.scoring import prefix_key_values

            if len(cache) >= 4:  # a big model's prefix KV is ~100 MB; per-clip texts must not pile up
                cache.clear()
            prefix = self.condition_prefix(condition)
            with torch.inference_mode():
                cache[condition] = None if prefix is None else prefix_key_values(self.decoder, prefix)
        return cache[condition]

    # ----------------------------------------------------------------- scoring
    def token_nll(self, codes: "torch.Tensor", condition: "str | Condition | None" = None) -> TokenNLL:
        """Teacher-forced per-token NLL ``[K, T]`` of one clip's codes."""
        return self.token_nll_batch([codes], condition=condition)[0]

    def token_nll_batch(
        self, codes: Sequence["torch.Tensor"], condition: "str | Condition | None" = None, batch_size: int = 8
    ) -> list[TokenNLL]:
        """Score several clips (any lengths): right-padded batches, masks mark the valid frames."""
        import torch

        from musicjudge.lm.scoring import decoder_token_nll

        items = [self.check_codes(c) for c in codes]
        hidden, hidden_mask = self.condition_tensors(condition)
        prefix_kv = self.condition_prefix_kv(condition)
        results: list[TokenNLL | None] = [None] * len(items)
        order = sorted(range(len(items)), key=lambda i: items[i].shape[1])  # similar lengths together
        with torch.inference_mode():
            for begin in range(0, len(order), batch_size):
                idx = order[begin : begin + batch_size]
                lengths = [items[i].shape[1] for i in idx]
                longest = max(lengths)
                batch = torch.full((len(idx), self.num_codebooks, longest), self.pad_token_id, dtype=torch.long)
                for row, i in enumerate(idx):
                    batch[row, :, : lengths[row]] = items[i]
                out = decoder_token_nll(
                    self.decoder,
                    batch,
                    pad_token_id=self.pad_token_id,
                    bos_token_id=self.bos_token_id,
                    encoder_hidden_states=hidden,
                    encoder_attention_mask=hidden_mask,
                    lengths=lengths,
                    chunk_size=self.chunk_size,
                    prefix_key_values=prefix_kv,
                )
                nll = torch.where(out.mask, out.nll, torch.full_like(out.nll, float("nan"))).cpu()
                for row, i in enumerate(idx):
                    results[i] = TokenNLL(nll=nll[row, :, : lengths[row]].clone(),
                                          mask=out.mask[row, :, : lengths[row]].cpu().clone())
        return results  # type: ignore[return-value]

    def score_perturbations(self, original_wave: np.ndarray, perturbed_waves: Sequence[np.ndarray], **kwargs):
        """See :func:`musicjudge.lm.engine.score_perturbations`."""
        from musicjudge.lm.engine import score_perturbations

        return score_perturbations(self, original_wave, perturbed_waves, **kwargs)
