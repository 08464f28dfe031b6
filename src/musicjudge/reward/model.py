"""CMI-RM-style fusion reward model over frozen features.

:class:`FusionHead` (torch) takes pooled embeddings of the evaluated clip and of any subset of
{text, lyrics, reference audio}; an absent modality is replaced by a learned "absent" embedding
(also used for modality dropout in training). Tokens [musicality-query, alignment-query, clip,
text, lyrics, reference] go through a small transformer; musicality is read from its query
token, alignment from its query token plus explicit clip x condition products (alignment is a
matching problem, and products make it learnable from few pairs).

:class:`FusionRewardModel` = encoder + head, implements ``score(items)``; checkpoints are a
folder with ``config.json`` and ``model.safetensors``. Loading refuses tensors that do not
match the config exactly (never silently random weights).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from musicjudge.errors import ConfigError, ModelLoadError
from musicjudge.reward.data import DIMENSIONS, Instruction
from musicjudge.reward.base import ScoreItem

CHECKPOINT_FORMAT = "musicjudge-reward/1"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# Output column order of the head (DIMENSIONS order).
OUTPUTS = DIMENSIONS
# Ways a head reads alignment (HeadConfig.alignment).
ALIGNMENT_READINGS = ("fusion", "terms")


@dataclass
class HeadConfig:
    audio_dim: int
    text_dim: int
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    ff_mult: int = 2
    dropout: float = 0.1
    # Probability of hiding a present modality in training (CMI-RM: 0.2 / 0.3 / 0.5).
    drop_text: float = 0.2
    drop_lyrics: float = 0.3
    drop_ref: float = 0.5
    # Attribute matching terms (encoder.attribute_layout(): feature blocks, tempo/key slices of the
    # audio and text vectors); None = the head without them (checkpoints written before).
    layout: dict[str, Any] | None = None
    # How alignment is read: "fusion" = the transformer's alignment output plus the matching terms
    # (weights parametrised as scales and kernels); "terms" = only the matching terms, one free
    # weight each (warm-started by a convex Bradley-Terry fit, see train.fit_term_weights).
    alignment: str = "fusion"

    def __post_init__(self) -> None:
        if self.alignment not in ALIGNMENT_READINGS:
            raise ConfigError(f"head alignment={self.alignment!r}: use one of {', '.join(ALIGNMENT_READINGS)}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HeadConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ModelLoadError(f"head config has unknown keys {unknown}; was the checkpoint written by a newer musicjudge?")
        if d.get("alignment", "fusion") not in ALIGNMENT_READINGS:
            raise ModelLoadError(f"head config alignment={d.get('alignment')!r}: use one of {', '.join(ALIGNMENT_READINGS)}")
        return cls(**d)


def _build_head_class():
    import torch
    import torch.nn.functional as F
    from torch import nn

    class FusionHead(nn.Module):
        def __init__(self, cfg: HeadConfig) -> None:
            super().__init__()
            self.cfg = cfg
            d = cfg.d_model
            # Standardisation of frozen features, fitted on training data and saved with the weights.
            self.register_buffer("audio_mean", torch.zeros(cfg.audio_dim))
            self.register_buffer("audio_std", torch.ones(cfg.audio_dim))
            self.audio_proj = nn.Sequential(nn.Linear(cfg.audio_dim, d), nn.GELU(), nn.Linear(d, d), nn.LayerNorm(d))
            self.text_proj = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.GELU(), nn.Linear(d, d), nn.LayerNorm(d))
            self.lyrics_proj = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.GELU(), nn.Linear(d, d), nn.LayerNorm(d))
            self.ref_proj = nn.Sequential(nn.Linear(d, d), nn.LayerNorm(d))  # on top of the shared audio projection
            self.absent = nn.Parameter(torch.randn(3, d) * 0.02)  # text, lyrics, reference
            self.queries = nn.Parameter(torch.randn(2, d) * 0.02)  # musicality, alignment
            self.type_embedding = nn.Parameter(torch.randn(6, d) * 0.02)
            layer = nn.TransformerEncoderLayer(d, cfg.n_heads, d * cfg.ff_mult, cfg.dropout, batch_first=True, norm_first=True)
            self.fusion = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
            self.match = nn.ModuleList([nn.Linear(d, d, bias=False) for _ in range(3)])
            self.musicality_out = nn.Sequential(nn.LayerNorm(2 * d), nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, 1))
            self.alignment_out = nn.Sequential(nn.LayerNorm(4 * d), nn.Linear(4 * d, d), nn.GELU(), nn.Linear(d, 1))
            # Linear matching in the standardised audio-feature space: cos(text -> expected features,
            # clip) and cos(reference, clip). Cheap, hard to overfit, and warm-started from a ridge
            # fit (see set_text_map), so the head starts where the cosine baseline ends.
            self.text_to_audio = nn.Linear(cfg.text_dim, cfg.audio_dim, bias=False)
            self.ref_to_audio = nn.Linear(cfg.audio_dim, cfg.audio_dim, bias=False)
            with torch.no_grad():
                self.ref_to_audio.weight.copy_(torch.eye(cfg.audio_dim))
            self.match_scale = nn.Parameter(torch.tensor([5.0, 5.0]))
            # Output layers start at zero: before training, alignment is exactly the warm-started
            # linear matching and musicality is flat, and training moves away from that only as far
            # as validation accuracy rewards it (epoch 0 is evaluated too).
            for out_layer in (self.musicality_out[-1], self.alignment_out[-1]):
                nn.init.zeros_(out_layer.weight)
                nn.init.zeros_(out_layer.bias)
            layout = cfg.layout or {}
            self.blocks = [tuple(v) for v in (layout.get("blocks") or {}).values()]
            if self.blocks:
                # per feature block: cos(text -> expected features, clip) and cos(reference, clip)
                # restricted to the block, so that a small block (tempo, key) is not drowned by the
                # 144 log-mel numbers in the global cosine; weights start at zero
                self.block_scale = nn.Parameter(torch.zeros(len(self.blocks), 2))
            self.has_tempo = "audio_tempo" in layout and "text_tempo" in layout
            self.has_key = "audio_key" in layout and "text_key" in layout
            if self.has_tempo:
                n = layout["audio_tempo"][1] - layout["audio_tempo"][0]
                # salience of the clip's onset periodicity at the stated tempo and its multiples: a
                # kernel over log-tempo offsets (audio bin - text bin, 1/8 octave each), shared over
                # the grid; starts at "periodic at T, 2T, 4T and T/2"
                kernel = torch.zeros(2 * n - 1)
                for offset, w in ((0, 1.0), (8, 1.0), (16, 0.5), (-8, 0.5)):
                    if abs(offset) < n:
                        kernel[n - 1 + offset] = w
                self.tempo_kernel = nn.Parameter(kernel)
                idx = torch.arange(n)
                self.register_buffer("tempo_index", (idx[None, :] - idx[:, None] + n - 1), persistent=False)
            if self.has_key:
                # stated key/mode vs the clip's key-profile correlations: weights per (stated mode,
                # clip mode, clip tonic - stated tonic); starts at "correlation with the stated key"
                key_kernel = torch.zeros(2, 2, 12)
                key_kernel[0, 0, 0] = key_kernel[1, 1, 0] = 1.0
                self.key_kernel = nn.Parameter(key_kernel)
                pcs = torch.arange(12)
                self.register_buffer("key_index", (pcs[None, :] - pcs[:, None]) % 12, persistent=False)
            if self.has_tempo or self.has_key:
                self.attr_scale = nn.Parameter(torch.tensor([5.0 if self.has_tempo else 0.0, 5.0 if self.has_key else 0.0]))
            self.n_tempo = (layout["audio_tempo"][1] - layout["audio_tempo"][0]) if self.has_tempo else 0
            if cfg.alignment == "terms":
                with torch.no_grad():
                    init = self.fusion_term_weights()
                # one weight per matching feature (the reference-attribute cosines start at 0, as
                # they have no counterpart in the fusion parametrisation)
                self.term_weights = nn.Parameter(init.clone())

        def set_feature_stats(self, audio: "torch.Tensor") -> None:
            self.audio_mean.copy_(audio.mean(0))
            self.audio_std.copy_(audio.std(0).clamp_min(1e-4))

        def set_text_map(self, text: "torch.Tensor", audio: "torch.Tensor", ridge: float = 1.0) -> None:
            """Closed-form ridge map text -> standardised features of clips that match the text."""
            z = self.standardise(audio)
            gram = text.T @ text + ridge * torch.eye(text.shape[1], dtype=text.dtype)
            self.text_to_audio.weight.copy_(torch.linalg.solve(gram, text.T @ z).T)

        def standardise(self, audio: "torch.Tensor") -> "torch.Tensor":
            return (audio - self.audio_mean) / self.audio_std

        def embed_audio(self, audio: "torch.Tensor") -> "torch.Tensor":
            return self.audio_proj(self.standardise(audio))

        def forward(self, audio, text, text_present, lyrics, lyrics_present, ref, ref_present):
            """audio/ref [B, Da], text/lyrics [B, Dt], *_present bool [B] -> [B, 2] (musicality, alignment)."""
            batch = audio.shape[0]
            clip = self.embed_audio(audio)
            conds = []
            for k, (proj, x, present) in enumerate(
                ((self.text_proj, text, text_present), (self.lyrics_proj, lyrics, lyrics_present),
                 (lambda r: self.ref_proj(self.embed_audio(r)), ref, ref_present))
            ):
                emb = proj(x)
                conds.append(torch.where(present[:, None], emb, self.absent[k].expand(batch, -1)))
            tokens = torch.stack([self.queries[0].expand(batch, -1), self.queries[1].expand(batch, -1), clip, *conds], dim=1)
            hidden = self.fusion(tokens + self.type_embedding)
            musicality = self.musicality_out(torch.cat([hidden[:, 0], clip], -1))
            features = self.matching_features(audio, text, text_present, ref, ref_present)
            if self.cfg.alignment == "terms":
                alignment = (features @ self.term_weights)[:, None]
            else:
                products = [self.match[k](clip) * conds[k] / math.sqrt(self.cfg.d_model) for k in range(3)]
                alignment = self.alignment_out(torch.cat([hidden[:, 1], *products], -1))
                alignment = alignment + (features @ self.fusion_term_weights())[:, None]
            return torch.cat([musicality, alignment], -1)

        def matching_features(self, audio, text, text_present, ref, ref_present):
            """Interpretable text/reference-to-clip matching evidence, [B, F] (zero where the
            condition is absent): cos(W_text text, clip), cos(W_ref ref, clip) in the standardised
            feature space; with a layout, the same two per feature block (so a small block such
            as tempo or key is not drowned by the 144 log-mel numbers), the stated tempo's
            agreement with the clip's onset periodicity at each log-tempo offset (1/8 octave
            each), the stated key/mode against the clip's key-profile correlations per (stated
            mode, clip mode, tonic offset), and the reference's tempo/key evidence against the
            clip's (centred cosines). Alignment adds these up with learned weights."""
            z = self.standardise(audio)
            ref_z = self.standardise(ref)
            tp, rp = text_present.to(audio.dtype)[:, None], ref_present.to(audio.dtype)[:, None]
            expected, mapped_ref = self.text_to_audio(text), self.ref_to_audio(ref_z)
            cos = lambda x, y: F.cosine_similarity(x, y, dim=-1, eps=1e-6)[:, None]  # noqa: E731
            columns = [cos(expected, z) * tp, cos(mapped_ref, z) * rp]
            for a, b in self.blocks:
                columns += [cos(expected[:, a:b], z[:, a:b]) * tp, cos(mapped_ref[:, a:b], z[:, a:b]) * rp]
            layout = self.cfg.layout or {}
            batch = audio.shape[0]
            if self.has_tempo:
                (a0, a1), (t0, t1) = layout["audio_tempo"], layout["text_tempo"]
                outer = (text[:, t0:t1, None] * audio[:, None, a0:a1]).reshape(batch, -1)
                offsets = outer.new_zeros(batch, 2 * self.n_tempo - 1).index_add_(1, self.tempo_index.reshape(-1), outer)
                columns.append(offsets * tp)
            if self.has_key:
                (a0, a1), (t0, t1) = layout["audio_key"], layout["text_key"]
                stated = text[:, t0:t1].reshape(-1, 2, 1, 12, 1)  # [B, mode_t, ., tonic_t, .]
                corr = audio[:, a0:a1].reshape(-1, 1, 2, 1, 12)  # [B, ., mode_a, ., tonic_a]
                outer = (stated * corr).reshape(batch, 2, 2, 144)
                by_offset = outer.new_zeros(batch, 2, 2, 12).index_add_(3, self.key_index.reshape(-1), outer)
                columns.append(by_offset.reshape(batch, 48) * tp)
            for name, present in (("audio_tempo", self.has_tempo), ("audio_key", self.has_key)):
                if present:
                    a0, a1 = layout[name]
                    clip_block, ref_block = audio[:, a0:a1], ref[:, a0:a1]
                    columns.append(cos(clip_block - clip_block.mean(1, keepdim=True), ref_block - ref_block.mean(1, keepdim=True)) * rp)
            return torch.cat(columns, 1)

        def fusion_term_weights(self):
            """The weights of matching_features() in the fusion parametrisation: global scales,
            per-block scales, the tempo kernel and the key kernel times their scales (0 for the
            reference-attribute cosines)."""
            parts = [self.match_scale]
            if self.blocks:
                parts.append(self.block_scale.reshape(-1))
            if self.has_tempo:
                parts.append(self.attr_scale[0] * self.tempo_kernel)
            if self.has_key:
                parts.append(self.attr_scale[1] * self.key_kernel.reshape(-1))
            n_ref_attr = int(self.has_tempo) + int(self.has_key)
            if n_ref_attr:
                parts.append(self.match_scale.new_zeros(n_ref_attr))
            return torch.cat(parts)

    return FusionHead


_HEAD_CLASS = None


def make_head(cfg: HeadConfig):
    """Build a FusionHead (torch imported lazily)."""
    global _HEAD_CLASS
    if _HEAD_CLASS is None:
        _HEAD_CLASS = _build_head_class()
    return _HEAD_CLASS(cfg)


def count_parameters(module) -> int:
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))


# ------------------------------------------------------------------------------------------
# Feature assembly shared by scoring and training
# ------------------------------------------------------------------------------------------


@dataclass
class InstructionFeatures:
    """Embeddings of clips and instructions, indexed per item (-1 = absent)."""

    audio: np.ndarray  # [n_unique_audio, Da]
    text: np.ndarray  # [n_unique_text, Dt]
    audio_index: dict[str, int] = field(default_factory=dict)
    text_index: dict[str, int] = field(default_factory=dict)


def embed_for_items(encoder, audio_paths: Sequence[str], texts: Sequence[str], *, progress: bool = False) -> InstructionFeatures:
    """Embed every distinct clip and text once (the encoder's cache makes repeats free)."""
    unique_audio = list(dict.fromkeys(audio_paths))
    unique_text = list(dict.fromkeys(texts))
    audio = encoder.embed_audio(unique_audio, progress=progress) if unique_audio else np.zeros((0, 1), np.float32)
    text = encoder.embed_text(unique_text) if unique_text else np.zeros((0, 1), np.float32)
    return InstructionFeatures(audio, text, {p: i for i, p in enumerate(unique_audio)}, {t: i for i, t in enumerate(unique_text)})


def instruction_inputs(feats: InstructionFeatures, instructions: Sequence[Instruction], audio_dim: int, text_dim: int):
    """Arrays for the head's condition inputs; a reference clip that failed to embed counts as absent."""
    n = len(instructions)
    text = np.zeros((n, text_dim), np.float32)
    lyrics = np.zeros((n, text_dim), np.float32)
    ref = np.zeros((n, audio_dim), np.float32)
    present = np.zeros((n, 3), bool)
    for i, ins in enumerate(instructions):
        if ins.text:
            text[i] = feats.text[feats.text_index[ins.text]]
            present[i, 0] = True
        if ins.lyrics:
            lyrics[i] = feats.text[feats.text_index[ins.lyrics]]
            present[i, 1] = True
        if ins.ref_audio:
            row = feats.audio[feats.audio_index[ins.ref_audio]]
            if np.all(np.isfinite(row)):
                ref[i] = row
                present[i, 2] = True
    return text, lyrics, ref, present


def instruction_texts(instructions: Sequence[Instruction]) -> list[str]:
    return [t for ins in instructions for t in (ins.text, ins.lyrics) if t]


# ------------------------------------------------------------------------------------------
# The reward model
# ------------------------------------------------------------------------------------------


class FusionRewardModel:
    """Frozen encoder + trainable :class:`FusionHead`; ``score(items)`` -> musicality/alignment."""

    def __init__(self, encoder, head, *, info: dict[str, Any] | None = None, device: str | None = None) -> None:
        import torch

        self.encoder = encoder
        self.head = head.eval()
        self.device = torch.device(device or "cpu")
        self.head.to(self.device)
        self.info = dict(info or {})
        self.failures: dict[str, str] = {}

    @property
    def name(self) -> str:
        return str(self.info.get("name", "fusion-reward-model"))

    @property
    def num_parameters(self) -> int:
        return count_parameters(self.head)

    # ---- scoring -------------------------------------------------------------------------
    def score(self, items: Sequence[ScoreItem], *, batch_size: int = 256, progress: bool = False) -> dict[str, np.ndarray]:
        import torch

        items = list(items)
        n = len(items)
        if n == 0:
            return {d: np.zeros(0) for d in DIMENSIONS}
        instructions = [it.instruction for it in items]
        audio_paths = [str(it.audio) for it in items] + [i.ref_audio for i in instructions if i.ref_audio]
        self.encoder.failures.clear()
        feats = embed_for_items(self.encoder, audio_paths, instruction_texts(instructions), progress=progress)
        cfg = self.head.cfg
        clip = np.stack([feats.audio[feats.audio_index[str(it.audio)]] for it in items])
        text, lyrics, ref, present = instruction_inputs(feats, instructions, cfg.audio_dim, cfg.text_dim)
        ok = np.all(np.isfinite(clip), axis=1)
        self.failures = {p: m for p, m in self.encoder.failures.items() if p in {str(it.audio) for it in items}}
        out = np.full((n, 2), np.nan)
        index = np.flatnonzero(ok)
        with torch.inference_mode():
            for start in range(0, len(index), batch_size):
                sel = index[start:start + batch_size]
                t = lambda a: torch.from_numpy(np.ascontiguousarray(a[sel])).to(self.device)  # noqa: E731
                pred = self.head(t(clip), t(text), t(present[:, 0]), t(lyrics), t(present[:, 1]), t(ref), t(present[:, 2]))
                out[sel] = pred.double().cpu().numpy()
        return {dim: out[:, k] for k, dim in enumerate(OUTPUTS)}

    # ---- checkpoints ---------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "encoder": self.encoder.config(), "head": asdict(self.head.cfg),
                "outputs": list(OUTPUTS), "num_parameters": self.num_parameters, "info": self.info}

    def save(self, folder: str | Path) -> Path:
        save_checkpoint(folder, self.head, self.encoder.config(), self.info)
        return Path(folder)

    @classmethod
    def from_checkpoint(cls, folder: str | Path, *, device: str | None = None, use_cache: bool = True, encoder=None) -> "FusionRewardModel":
        from musicjudge.reward.encoders import build_encoder

        config, head = load_checkpoint(folder, device=device)
        if encoder is None:
            encoder = build_encoder(config["encoder"], device=device, use_cache=use_cache)
        return cls(encoder, head, info=config.get("info"), device=device)


def save_checkpoint(folder: str | Path, head, encoder_config: dict[str, Any], info: dict[str, Any] | None = None) -> Path:
    """Write config.json + model.safetensors (atomic: weights first, then config)."""
    from safetensors.torch import save

    from musicjudge.io import atomic_write_bytes, atomic_write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    atomic_write_bytes(folder / WEIGHTS_NAME, save(tensors))
    atomic_write_json(folder / CONFIG_NAME, {
        "format": CHECKPOINT_FORMAT, "encoder": encoder_config, "head": asdict(head.cfg), "outputs": list(OUTPUTS),
        "num_parameters": count_parameters(head), "info": info or {},
    })
    return folder


def load_checkpoint(folder: str | Path, *, device: str | None = None):
    """(config, head) from a checkpoint folder; refuses any tensor that does not match the config."""
    import json

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not folder.is_dir() or not cfg_path.exists() or not weights_path.exists():
        raise ModelLoadError(f"{folder}: not a reward checkpoint (needs {CONFIG_NAME} and {WEIGHTS_NAME}); train one with 'musicjudge reward train'")
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{cfg_path}: invalid JSON ({e.msg}); the checkpoint is damaged") from None
    if config.get("format") != CHECKPOINT_FORMAT:
        raise ModelLoadError(f"{cfg_path}: format {config.get('format')!r} is not {CHECKPOINT_FORMAT!r}; not a musicjudge reward checkpoint")
    head = make_head(HeadConfig.from_dict(config["head"]))
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError) as e:
        raise ModelLoadError(f"{weights_path}: cannot read safetensors ({e}); the checkpoint is damaged") from None
    expected = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if expected != found:
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
        detail = "; ".join(x for x in (
            f"missing {missing[:3]}" if missing else "", f"unexpected {extra[:3]}" if extra else "",
            f"shape mismatch {[(k, found[k], expected[k]) for k in wrong[:2]]}" if wrong else "") if x)
        raise ModelLoadError(f"{weights_path}: tensors do not match {CONFIG_NAME} ({detail}); use the config written with these weights")
    head.load_state_dict(tensors, strict=True)
    if device:
        head.to(device)
    return config, head.eval()
