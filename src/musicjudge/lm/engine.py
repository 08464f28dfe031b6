"""Probe engine: score one clip and many perturbed versions of it with a shared prefix.

A perturbation leaves every code before its onset (minus the codec's look-ahead) unchanged,
so the decoder's keys/values up to the first differing position are the same for the
original and every perturbed clip. The engine runs the original once (keeping its KV cache)
and scores each perturbation only from its first differing *delayed* position on, in
batches that reuse the cached prefix. This is exact, not an approximation: the result equals
a full forward pass of each perturbed clip (tests check max |diff| <= 1e-4 in float32).

Delay pattern: code ``(k, t)`` is fed at delayed position ``t + delay_k + 1`` and predicted at
``t + delay_k``. A change of codebook ``k`` at frame ``t`` therefore alters predictions at
positions ``>= t + delay_k`` -- which includes codebook ``j > k`` of frames *before* ``t``
(``t' >= t + delay_k - delay_j``). The engine works in delayed positions, so this is handled
by construction, and it uses the actual code differences (EnCodec's look-ahead makes codes
change a few frames before the waveform does; its LSTM can make late frames differ too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from musicjudge.errors import AudioError, ConfigError
from musicjudge.lm.types import TokenNLL

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass(frozen=True)
class DiffSpan:
    """Where a perturbed clip's codes differ from the original's.

    ``first_frame``/``last_frame``: first/last frame where any codebook differs;
    ``first_position``: first differing delayed decoder position (``>= 1``; 0 is the BOS frame);
    ``stop_position``: exclusive end of the decoder positions that must be computed."""

    first_frame: int
    last_frame: int
    first_position: int
    stop_position: int


def diff_span(original: "torch.Tensor", perturbed: "torch.Tensor", delays: Sequence[int],
              horizon: int | None = None) -> DiffSpan | None:
    """Span of code differences (``None`` when identical). With ``horizon`` only frames up to
    ``last_frame + horizon`` are to be scored, so fewer positions are needed."""
    import torch

    differs = original != perturbed  # [K, T]
    if not bool(differs.any()):
        return None
    num_frames = original.shape[1]
    frames = torch.arange(num_frames)
    first_position = None
    for k, d in enumerate(delays):
        hits = frames[differs[k].cpu()]
        if hits.numel():
            pos = int(hits[0]) + d + 1
            first_position = pos if first_position is None else min(first_position, pos)
    any_frame = frames[differs.any(0).cpu()]
    first_frame, last_frame = int(any_frame[0]), int(any_frame[-1])
    num_positions = num_frames + max(delays)
    stop = num_positions if horizon is None else min(num_positions, last_frame + horizon + max(delays) + 1)
    return DiffSpan(first_frame, last_frame, int(first_position), int(stop))


def score_code_perturbations(
    lm: Any,
    original_codes: "torch.Tensor",
    perturbed_codes: Sequence["torch.Tensor"],
    *,
    condition: str | None = None,
    horizon: int | None = None,
    batch_size: int | None = None,
    stats: dict | None = None,
) -> tuple[TokenNLL, list[TokenNLL]]:
    """Score ``original_codes`` ``[K, T]`` and each of ``perturbed_codes`` (same shape) with
    ``lm`` (a :class:`~musicjudge.lm.base.DelayPatternLM`), sharing the unchanged prefix.

    ``horizon``: score perturbed clips only up to ``horizon`` frames after their last changed
    frame (later frames get ``mask`` False / NaN) -- for profile-only runs. ``batch_size``: most
    perturbations decoded together; ``None`` = 1 on CPU (measured fastest: CPU matmuls are
    already efficient for one suffix, and a shared batch costs KV-cache copies at every
    join/leave), 8 on GPU. ``stats``: if a dict
    is given it receives position counts (``positions_naive``, ``positions_unique``,
    ``positions_computed``) and the per-perturbation ``spans``."""
    import torch

    from musicjudge.lm.scoring import (
        cache_from_key_values,
        codebook_delays,
        delayed_input_ids,
        heads_nll,
        prefix_length,
        run_decoder,
    )

    if horizon is not None and horizon < 0:
        raise ConfigError(f"horizon {horizon}: must be >= 0 frames (or None for the whole clip)")
    decoder = lm.decoder
    device = decoder.device
    if batch_size is None:
        batch_size = 1 if device.type == "cpu" else 8
    if batch_size < 1:
        raise ConfigError(f"batch_size {batch_size}: must be >= 1")
    original = lm.check_codes(original_codes)
    perturbed = [lm.check_codes(c) for c in perturbed_codes]
    for i, codes in enumerate(perturbed):
        if codes.shape != original.shape:
            raise ConfigError(f"perturbation {i}: codes shape {tuple(codes.shape)} differs from the original's "
                              f"{tuple(original.shape)}; perturbations must keep the clip length")
    num_codebooks, num_frames = original.shape
    delays = codebook_delays(decoder)
    num_positions = num_frames + max(delays)
    # predicted-at position of code (k, t): t + delay_k
    position_of = torch.arange(num_frames)[None, :] + torch.tensor(delays)[:, None]  # [K, T]
    states, states_mask = lm.condition_tensors(condition)
    # a prefix-conditioned model (MusicGen-Melody) starts every pass from the condition's cached
    # keys/values; cache index = offset + delayed position
    prefix = lm.condition_prefix_kv(condition) if hasattr(lm, "condition_prefix_kv") else None
    offset = prefix_length(prefix)

    spans = [diff_span(original, codes, delays, horizon) for codes in perturbed]
    computed = num_positions
    with torch.inference_mode():
        seq0 = delayed_input_ids(decoder, original[None].to(device), bos_token_id=lm.bos_token_id)
        hidden0, cache0 = run_decoder(decoder, seq0[..., :num_positions], encoder_hidden_states=states,
                                      encoder_attention_mask=states_mask, use_cache=True,
                                      cache=None if prefix is None else cache_from_key_values(prefix, 1),
                                      chunk_size=lm.chunk_size)
        nll0 = heads_nll(decoder, hidden0, original[None].to(device))[0][0].cpu()  # [K, T]
        prefix_kv = [(layer.keys, layer.values) for layer in cache0.self_attention_cache.layers]
        del cache0

        results: list[TokenNLL | None] = [None] * len(perturbed)
        todo = [i for i, span in enumerate(spans) if span is not None]
        for i, span in enumerate(spans):
            if span is None:  # codes identical: exactly the original's scores
                results[i] = TokenNLL(nll=nll0.clone(), mask=torch.ones_like(nll0, dtype=torch.bool))
        todo.sort(key=lambda i: (spans[i].first_position, spans[i].stop_position))
        for begin in range(0, len(todo), batch_size):
            idx = todo[begin : begin + batch_size]
            codes = {i: perturbed[i].to(device) for i in idx}
            seqs = delayed_input_ids(decoder, torch.stack(list(codes.values())), bos_token_id=lm.bos_token_id)
            seqs = dict(zip(idx, seqs))
            parts = _sweep(decoder, prefix_kv, seqs, {i: spans[i] for i in idx}, states, states_mask,
                           lm.chunk_size, offset)
            for i in idx:
                span = spans[i]
                start = span.first_position
                computed += span.stop_position - start
                # position start-1 depends only on the shared prefix: take the original's state
                hidden = hidden0[0, start - 1 : start]
                if parts[i] is not None:
                    hidden = torch.cat([hidden, parts[i]], dim=0)
                hidden = hidden[None]
                nll = heads_nll(decoder, hidden, codes[i][None], position_offset=start - 1)[0][0].cpu()
                values = torch.where(position_of < start - 1, nll0, nll)
                if horizon is None:
                    mask = torch.ones_like(values, dtype=torch.bool)
                else:
                    limit = span.last_frame + horizon
                    mask = (torch.arange(num_frames)[None, :] <= limit).expand(num_codebooks, -1).clone()
                values = torch.where(mask, values, torch.full_like(values, float("nan")))
                results[i] = TokenNLL(nll=values, mask=mask)

    if stats is not None:
        unique = num_positions + sum(s.stop_position - s.first_position for s in spans if s is not None)
        stats.update(
            positions_naive=num_positions * (len(perturbed) + 1),
            positions_unique=int(unique),
            positions_computed=int(computed),
            spans=spans,
        )
    return TokenNLL(nll=nll0, mask=torch.ones_like(nll0, dtype=torch.bool)), results  # type: ignore[return-value]


def _sweep(decoder, prefix_kv, seqs, spans, states, states_mask, chunk_size, offset=0):
    """Decoder states of several perturbed clips at their own positions
    ``[first_position, stop_position)`` in one left-to-right sweep over positions.

    Between consecutive start/stop positions the set of active clips is fixed, so they run as
    one batch from a shared KV cache. A clip *joins* at its first differing position with the
    original's cached keys/values up to there (its prefix is the original's) and *leaves* at
    its stop; so no position is computed twice or in vain, whatever the mix of onsets and
    lengths. ``offset``: condition-prefix positions held at the start of ``prefix_kv``.
    Returns ``{clip: hidden [stop - first, D]}``."""
    import torch
    from transformers import DynamicCache, EncoderDecoderCache

    from musicjudge.lm.scoring import self_attention_cache

    starts = {i: span.first_position for i, span in spans.items()}
    stops = {i: span.stop_position for i, span in spans.items()}
    points = sorted(set(starts.values()) | set(stops.values()))
    bounds = []
    for a, b in zip(points, points[1:]):
        step = chunk_size or (b - a)
        bounds.extend((x, min(b, x + step)) for x in range(a, b, step))
    rows: list = []  # clip ids, in cache batch order
    kv = None  # per layer (keys, values) [len(rows), heads, a, head_dim]
    parts = {i: [] for i in spans}
    for a, b in bounds:
        keep = [r for r, i in enumerate(rows) if stops[i] > a]
        if len(keep) < len(rows):
            rows = [rows[r] for r in keep]
            kv = [(k[keep], v[keep]) for k, v in kv] if rows else None
        joiners = [i for i in spans if starts[i] == a]
        if joiners:
            new = [(k[:, :, : offset + a].expand(len(joiners), -1, -1, -1),
                    v[:, :, : offset + a].expand(len(joiners), -1, -1, -1)) for k, v in prefix_kv]
            kv = new if kv is None else [(torch.cat([k0, k1]), torch.cat([v0, v1]))
                                         for (k0, v0), (k1, v1) in zip(kv, new)]
            rows = rows + joiners
        if not rows:
            continue
        batch = len(rows)
        inputs = torch.stack([seqs[i][:, a:b] for i in rows])  # [batch, K, b - a]
        cache = EncoderDecoderCache(self_attention_cache(kv), DynamicCache())
        out = decoder.model(
            input_ids=inputs.reshape(batch * inputs.shape[1], b - a),
            encoder_hidden_states=None if states is None else states.expand(batch, *states.shape[1:]),
            encoder_attention_mask=None if states_mask is None else states_mask.expand(batch, *states_mask.shape[1:]),
            cache=cache,
            use_cache=True,
        )
        kv = [(layer.keys, layer.values) for layer in out.cache.self_attention_cache.layers]
        for r, i in enumerate(rows):
            parts[i].append(out.last_hidden_state[r])
    # a clip whose only change is the very last target has nothing to decode beyond the prefix
    return {i: torch.cat(p, dim=0) if p else None for i, p in parts.items()}


def score_perturbations(
    lm: Any,
    original_wave: np.ndarray,
    perturbed_waves: Sequence[np.ndarray],
    *,
    condition: str | None = None,
    horizon: int | None = None,
    batch_size: int | None = None,
    stats: dict | None = None,
) -> tuple[TokenNLL, list[TokenNLL]]:
    """Encode the original and all perturbed waves (batched; same length required) and score
    them with :func:`score_code_perturbations`. Returns ``(original TokenNLL, [TokenNLL per
    perturbation])``; each equals ``lm.token_nll(lm.encode(wave), condition)``."""
    original_wave = lm.check_wave(original_wave, "<original wave>")
    checked = []
    for i, wave in enumerate(perturbed_waves):
        wave = lm.check_wave(wave, f"<perturbed wave {i}>")
        if wave.size != original_wave.size:
            raise AudioError(f"<perturbed wave {i}>: {wave.size} samples but the original has "
                             f"{original_wave.size}; perturbations must keep the clip length")
        checked.append(wave)
    codes = lm.encode_batch([original_wave, *checked])
    return score_code_perturbations(lm, codes[0], codes[1:], condition=condition, horizon=horizon,
                                    batch_size=batch_size, stats=stats)
