"""CMI-RM, the CMI-RewardBench baseline reward model, loaded from its official release folder.

A CMI-RM folder holds ``config.yaml`` (the training config; the model settings at top level or
under ``model:``) and ``model.safetensors`` (every weight, the MuQ-MuLan towers included). The
towers' *architecture* comes from the MuQ-MuLan folder named by ``model_name`` (its
``config.json``) and, through it, the MuQ and XLM-R folders it names (``config.json``, and the
tokenizer for XLM-R). Each name is looked up as a path, then relative to the CMI-RM folder and
its parent, then as a Hugging Face hub id (the local cache, or a download when online).

Scoring follows the reference ``RewardModelInference.score_batch`` in ``mode="final"``:

* clips are read as mono at 24 kHz and cut to ``max_dur`` seconds (default 30);
* items go in groups of ``batch_size`` (default 4); within a group each clip is split into 30 s
  chunks, chunks are encoded in padded batches of 32 by the audio tower, and each clip's valid
  frames are concatenated; the group's sequences are padded to the longest;
* reference audio is encoded the same way. When no item of the group has one, every item gets an
  empty (fully masked) reference slot; when some do, the others get one second of silence as
  their reference (the reference implementation's rule; so an item's score can depend on the
  other items of its group, exactly as in the reference);
* text and lyrics are tokenised separately (a missing one is the empty string), encoded by the
  text tower, downsampled, concatenated with the reference audio into the prompt;
* prompt transformer, joint transformer (self-attention over prompt + clip, or cross-attention
  from the clip to the prompt), masked mean over the clip frames, score head -> [alignment, quality].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from musicjudge.errors import ConfigError, ModelLoadError, MusicjudgeError
from musicjudge.reward.cmi_rm.layers import CrossAttentionBlock, QKNormTransformer, build_downsampler
from musicjudge.reward.muq import build_muq_from_config, resolve_pretrained  # noqa: F401 - resolve_pretrained re-exported
from musicjudge.reward.muq.loading import read_json as _read_json
from musicjudge.reward.muq.loading import load_strict, read_state_dict
from musicjudge.reward.muq.mulan import MulanAudioFrames, MulanTextTokens, build_text_model

SAMPLE_RATE = 24000
CHUNK_SECONDS = 30.0
ENCODE_BATCH = 32
DEFAULT_BATCH_SIZE = 4
DEFAULT_MAX_DUR = 30.0
# MuQ's STFT (n_fft 2048, centred, reflect padding) needs more than n_fft / 2 samples
MIN_SAMPLES = 1025
CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "model.safetensors"


# ------------------------------------------------------------------------------------------
# config.yaml
# ------------------------------------------------------------------------------------------


@dataclass
class CmiRmConfig:
    """The model settings of a CMI-RM ``config.yaml`` (defaults as in the official code)."""

    model_name: str = "OpenMuQ/MuQ-MuLan-large"
    dim: int = 768
    mode: str = "concat_text_late"
    attention_mode: str = "SA"
    mlp_dim: int = 512
    output_dim: int = 2
    sr: int = SAMPLE_RATE
    prompt_tf_depth: int = 1
    joint_tf_depth: int = 4
    dim_head: int = 64
    heads: int = 8
    attn_dropout: float = 0.0
    ff_dropout: float = 0.0
    ff_mult: float = 4
    null_lengths: dict[str, int] = field(default_factory=lambda: {"text": 10, "lyrics": 10, "audio": 10})
    downsample: dict[str, Any] | None = None
    text_encoder: Any = "muqmulan"
    text_lora_config: Any = None
    name: str = "reward"

    @classmethod
    def from_yaml(cls, path: Path) -> "CmiRmConfig":
        import yaml

        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise ModelLoadError(f"{path}: cannot read the CMI-RM config ({str(e).splitlines()[0]}); re-download config.yaml") from None
        if not isinstance(raw, dict):
            raise ModelLoadError(f"{path}: expected a mapping of model settings; re-download config.yaml")
        settings = raw["model"] if isinstance(raw.get("model"), dict) else raw
        cfg = cls()
        for key in ("model_name", "mode", "attention_mode", "name"):
            if key in settings:
                setattr(cfg, key, str(settings[key]))
        for key in ("dim", "mlp_dim", "output_dim", "sr", "prompt_tf_depth", "joint_tf_depth", "dim_head", "heads"):
            if key in settings:
                cfg_value = settings[key]
                if isinstance(cfg_value, bool) or not isinstance(cfg_value, int):
                    raise ModelLoadError(f"{path}: {key}={cfg_value!r} must be an integer")
                setattr(cfg, key, cfg_value)
        for key in ("attn_dropout", "ff_dropout", "ff_mult"):
            if key in settings:
                setattr(cfg, key, float(settings[key]))
        null = settings.get("null_embedding") or {}
        for part in ("text", "lyrics", "audio"):
            cfg.null_lengths[part] = int((null.get(part) or {}).get("length", 10))
        cfg.downsample = settings.get("downsample")
        cfg.text_encoder = settings.get("text_encoder", "muqmulan")
        cfg.text_lora_config = settings.get("text_lora_config")
        cfg.check(path)
        return cfg

    def check(self, path: Path) -> None:
        if self.name == "sanity":
            raise ModelLoadError(f"{path}: name: sanity is the paper's sanity-check model, not CMI-RM; use a reward checkpoint")
        if self.attention_mode not in ("SA", "CA"):
            raise ModelLoadError(f"{path}: attention_mode={self.attention_mode!r}; CMI-RM has 'SA' or 'CA'")
        if self.mode not in ("concat_text_late", "concat_text_early", "text_only"):
            raise ModelLoadError(f"{path}: mode={self.mode!r}; use concat_text_late, concat_text_early or text_only")
        if self.output_dim != 2:
            raise ModelLoadError(f"{path}: output_dim={self.output_dim}; CMI-RM scores two columns (alignment, quality)")
        if self.sr != SAMPLE_RATE:
            raise ModelLoadError(f"{path}: sr={self.sr}; MuQ-MuLan runs at {SAMPLE_RATE} Hz")
        encoder = self.text_encoder.get("name") if isinstance(self.text_encoder, dict) else self.text_encoder
        if str(encoder).lower() == "t5":
            raise ModelLoadError(f"{path}: text_encoder t5 (Flan-T5) is not supported; only the MuQ-MuLan text tower")
        if isinstance(self.text_lora_config, dict) and self.text_lora_config.get("use_lora"):
            raise ModelLoadError(f"{path}: text_lora_config.use_lora is not supported; merge the LoRA weights first")

    def downsampler_settings(self, path: Path) -> dict[str, dict[str, Any]]:
        """The ``text``/``lyrics``/``eval``/``ref`` downsampler settings (official rules: ref inherits eval)."""
        none = {"kind": "none"}
        ds = self.downsample
        if not isinstance(ds, dict) or not ds.get("configs"):
            return {"text": none, "lyrics": none, "eval": none, "ref": none}
        configs = ds["configs"]

        def pick(role: str, default: str | None) -> dict[str, Any]:
            name = ds.get(role, default)
            if name not in configs:
                raise ModelLoadError(f"{path}: downsample.{role}={name!r} is not in downsample.configs ({', '.join(configs)})")
            return dict(configs[name])

        evaluated = pick("eval", "none")
        text = pick("text", "none")
        ref = evaluated if ds.get("ref") is None else pick("ref", None)
        return {"text": text, "lyrics": text, "eval": evaluated, "ref": ref}


# ------------------------------------------------------------------------------------------
# The network (parameter names as in the checkpoints)
# ------------------------------------------------------------------------------------------


def _score_head(dim: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, out))


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(x.dtype)
    return (x * weights).sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1)


class CmiRmNetwork(nn.Module):
    """Towers + prompt transformer + joint transformer + heads."""

    def __init__(self, cfg: CmiRmConfig, audio_module: nn.Module, text_module: nn.Module, path: Path) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        if getattr(audio_module, "dim", d) != d or getattr(text_module, "dim", d) != d:
            raise ModelLoadError(f"{path}: dim={d} but the MuQ-MuLan towers are {audio_module.dim}-wide; "
                                 "model_name names a different MuQ-MuLan than the one this CMI-RM was trained on")
        self.text_module = text_module
        self.audio_module = audio_module
        block = dict(dim_head=cfg.dim_head, heads=cfg.heads, attn_dropout=cfg.attn_dropout, ff_mult=cfg.ff_mult,
                     ff_dropout=cfg.ff_dropout)
        self.prompt_transformer = QKNormTransformer(d, cfg.prompt_tf_depth, **block)
        if cfg.attention_mode == "SA":
            self.joint_transformer = QKNormTransformer(d, cfg.joint_tf_depth, **block)
        else:
            self.joint_transformer = nn.ModuleList(
                CrossAttentionBlock(d, cfg.dim_head, cfg.heads, cfg.ff_mult, cfg.attn_dropout, cfg.ff_dropout)
                for _ in range(cfg.joint_tf_depth))
        self.score_projector = _score_head(d, cfg.mlp_dim, cfg.output_dim)
        # Trained heads the inference path does not use; kept so that every checkpoint key loads.
        self.single_score_projector = _score_head(d, cfg.mlp_dim, 1)
        self.alignment_head = _score_head(d, cfg.mlp_dim, 1)
        self.quality_head = _score_head(d, cfg.mlp_dim, 1)
        settings = cfg.downsampler_settings(path)
        self.text_downsampler = build_downsampler(settings["text"], d, f"{path}: downsample.text")
        self.lyrics_downsampler = build_downsampler(settings["lyrics"], d, f"{path}: downsample.text")
        self.eval_downsampler = build_downsampler(settings["eval"], d, f"{path}: downsample.eval")
        self.ref_downsampler = build_downsampler(settings["ref"], d, f"{path}: downsample.ref")
        # Learned stand-ins for a dropped modality during training; inference never drops one.
        self.null_text_embedding = nn.Parameter(torch.zeros(1, cfg.null_lengths["text"], d))
        self.null_lyrics_embedding = nn.Parameter(torch.zeros(1, cfg.null_lengths["lyrics"], d))
        self.null_audio_embedding = nn.Parameter(torch.zeros(1, cfg.null_lengths["audio"], d))
        self.category_embeddings = nn.ParameterDict()

    @torch.no_grad()
    def scores(self, texts: list[str], lyrics: list[str], ref: torch.Tensor, ref_mask: torch.Tensor,
               clip: torch.Tensor, clip_mask: torch.Tensor) -> torch.Tensor:
        """[B, 2] (alignment, quality) from raw texts and the towers' frame sequences."""
        # Text and lyrics are encoded separately in every mode (the reference's raw-text path;
        # "concat_text_early" only changes training), lyrics dropped for "text_only".
        parts = [self.text_downsampler(*self.text_module(texts))]
        if self.cfg.mode != "text_only":
            parts.append(self.lyrics_downsampler(*self.text_module(lyrics)))
        parts.append(self.ref_downsampler(ref, ref_mask))
        prompt = torch.cat([p[0] for p in parts], dim=1)
        prompt_mask = torch.cat([p[1] for p in parts], dim=1)
        prompt = self.prompt_transformer(prompt, prompt_mask)
        clip, clip_mask = self.eval_downsampler(clip, clip_mask)
        if self.cfg.attention_mode == "SA":
            joint = self.joint_transformer(torch.cat([prompt, clip], dim=1), torch.cat([prompt_mask, clip_mask], dim=1))
            frames = joint[:, prompt.shape[1]:]
        else:
            frames = clip
            for block in self.joint_transformer:
                frames = block(frames, clip_mask, prompt, prompt_mask)
        return self.score_projector(_masked_mean(frames, clip_mask))


# ------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------


def build_towers(cfg: CmiRmConfig, folder: Path) -> tuple[nn.Module, nn.Module]:
    """The MuQ-MuLan audio and text towers, architecture from the configs ``model_name`` leads to."""
    near = [folder, folder.parent]
    mulan_dir = resolve_pretrained(cfg.model_name, near, "MuQ-MuLan", ["config.json"])
    mulan = _read_json(mulan_dir / "config.json", "MuQ-MuLan")
    try:
        audio_model, text_model = mulan["audio_model"], mulan["text_model"]
        audio_tf, text_tf = mulan["audio_transformer"], mulan["text_transformer"]
    except KeyError as e:
        raise ModelLoadError(f"{mulan_dir / 'config.json'}: no {e} section; is this a MuQ-MuLan config?") from None
    near_towers = [mulan_dir, mulan_dir.parent, *near]
    muq_dir = resolve_pretrained(str(audio_model["name"]), near_towers, "MuQ", ["config.json"])
    muq = build_muq_from_config(_read_json(muq_dir / "config.json", "MuQ"))
    muq_dim = int(audio_model.get("model_dim") or 1024)
    audio = MulanAudioFrames(muq, muq_dim, audio_tf)
    text_dir = resolve_pretrained(str(text_model["name"]), near_towers, "XLM-R text model", ["config.json", "tokenizer files"])
    xlmr, tokenizer = build_text_model(text_dir)
    model_dim = text_model.get("model_dim")
    text = MulanTextTokens(xlmr, tokenizer, None if model_dim is None else int(model_dim), text_tf)
    return audio, text


# ------------------------------------------------------------------------------------------
# Scoring
# ------------------------------------------------------------------------------------------


def _pad(sequences: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D waves or [T, D] frame sequences to the longest; mask True on real entries."""
    longest = max(s.shape[0] for s in sequences)
    out = sequences[0].new_zeros((len(sequences), longest, *sequences[0].shape[1:]))
    mask = torch.zeros(len(sequences), longest, dtype=torch.bool)
    for i, s in enumerate(sequences):
        out[i, : s.shape[0]] = s
        mask[i, : s.shape[0]] = True
    return out, mask


def _as_wave(x: Any) -> torch.Tensor:
    """A waveform given as a tensor/array: [L], [1, L] or [C, L] (channels averaged)."""
    wave = torch.as_tensor(np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float32))
    if wave.ndim == 2:
        wave = wave[0] if wave.shape[0] == 1 else wave.mean(dim=0)
    if wave.ndim != 1:
        raise ConfigError(f"waveform of shape {tuple(wave.shape)}: give [samples] or [channels, samples] at {SAMPLE_RATE} Hz")
    return wave


class CmiRewardModel:
    """CMI-RM as a musicjudge reward model (``score(items)``) and with the reference interface
    (``sr``, ``score_batch(inputs, batch_size, max_dur) -> [N, 2]``, column 0 alignment,
    column 1 quality)."""

    sample_rate = SAMPLE_RATE

    def __init__(self, folder: str | Path, *, device: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                 max_dur: float = DEFAULT_MAX_DUR) -> None:
        folder = Path(folder).expanduser()
        if folder.is_file() and folder.suffix == ".safetensors":  # the reference takes the weights file
            folder = folder.parent
        config_path, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        for need in (config_path, weights):
            if not need.is_file():
                raise ModelLoadError(f"{folder}: no {need.name}; a CMI-RM folder holds config.yaml and model.safetensors "
                                     "(huggingface-cli download HaiwenXia/CMI-RM --local-dir FOLDER)")
        if int(batch_size) < 1:
            raise ConfigError(f"cmi-rm batch_size={batch_size}: must be >= 1")
        if not (float(max_dur) > 0 and math.isfinite(float(max_dur))):
            raise ConfigError(f"cmi-rm max_dur={max_dur}: must be a positive number of seconds")
        self.folder = folder
        self.cfg = CmiRmConfig.from_yaml(config_path)
        audio, text = build_towers(self.cfg, folder)
        self.net = CmiRmNetwork(self.cfg, audio, text, config_path)
        load_strict(self.net, read_state_dict(weights), weights, "use the config.yaml released with these weights")
        from musicjudge.device import check_device

        self.device = check_device(device) or ("cuda" if torch.cuda.is_available() else "cpu")
        self.net.to(self.device).eval()
        self.batch_size = int(batch_size)
        self.max_dur = float(max_dur)
        self.failures: dict[str, str] = {}
        from musicjudge.io import stable_hash

        stats = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in (config_path, weights)]
        self.name = f"cmi-rm:{folder.name}"
        self.fingerprint = stable_hash(["cmi-rm", stats, self.batch_size, self.max_dur])

    @property
    def sr(self) -> int:
        return SAMPLE_RATE

    # -- audio ---------------------------------------------------------------------------

    def _wave(self, x: Any, max_dur: float | None) -> torch.Tensor:
        if x is None:
            return torch.zeros(SAMPLE_RATE)
        if isinstance(x, (str, Path)):
            from musicjudge.audio import load_audio_with_sr

            wave = torch.from_numpy(np.ascontiguousarray(load_audio_with_sr(x, SAMPLE_RATE, mono=True)[0]))
        else:
            wave = _as_wave(x)
        return wave if max_dur is None else wave[: int(max_dur * SAMPLE_RATE)]

    @torch.no_grad()
    def _encode(self, waves: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per clip: its 30 s chunks' valid frames, concatenated (chunks batched by 32 across clips)."""
        step = int(CHUNK_SECONDS * SAMPLE_RATE)
        chunks, owner = [], []
        for i, wave in enumerate(waves):
            pieces = [wave[s: s + step] for s in range(0, wave.shape[0], step)] if wave.numel() else [wave]
            for piece in pieces or [wave]:
                chunks.append(piece)
                owner.append(i)
        frames: list[torch.Tensor] = []
        for start in range(0, len(chunks), ENCODE_BATCH):
            padded, mask = _pad(chunks[start: start + ENCODE_BATCH])
            out, out_mask = self.net.audio_module(padded.to(self.device), mask.to(self.device))
            frames += [out[j][out_mask[j]].cpu() for j in range(out.shape[0])]
        per_clip: list[list[torch.Tensor]] = [[] for _ in waves]
        for f, i in zip(frames, owner):
            per_clip[i].append(f)
        seqs = [torch.cat(fs) for fs in per_clip]
        return seqs, [torch.ones(s.shape[0], dtype=torch.bool) for s in seqs]

    @torch.no_grad()
    def _group_scores(self, texts: list[str], lyrics: list[str], waves: list[torch.Tensor],
                      refs: list[torch.Tensor | None]) -> np.ndarray:
        clip, clip_mask = _pad(self._encode(waves)[0])
        if any(r is not None for r in refs):
            ref, ref_mask = _pad(self._encode([r if r is not None else torch.zeros(SAMPLE_RATE) for r in refs])[0])
        else:  # one fully masked slot: no reference in the whole group
            ref = clip.new_zeros(clip.shape[0], 1, clip.shape[2])
            ref_mask = torch.zeros(clip.shape[0], 1, dtype=torch.bool)
        out = self.net.scores(texts, lyrics, ref.to(self.device), ref_mask.to(self.device),
                              clip.to(self.device), clip_mask.to(self.device))
        return out.float().cpu().numpy().astype(np.float64)

    # -- the reference interface -----------------------------------------------------------

    def score_batch(self, inputs: Sequence[dict[str, Any]], batch_size: int | None = None,
                    max_dur: float | None = None, **_ignored: Any) -> np.ndarray:
        """[N, 2]: column 0 alignment, column 1 quality; an unreadable clip raises (as the reference does)."""
        batch_size = self.batch_size if batch_size is None else max(1, int(batch_size))
        max_dur = self.max_dur if max_dur is None else float(max_dur)
        out = np.zeros((len(inputs), 2))
        for start in range(0, len(inputs), batch_size):
            group = list(inputs[start: start + batch_size])
            for i, g in enumerate(group):
                if "audio" not in g:
                    raise ConfigError(f"input {start + i}: missing 'audio'; give a path or a waveform")
            out[start: start + len(group)] = self._group_scores(
                [g.get("text") or "" for g in group], [g.get("lyrics") or "" for g in group],
                [self._wave(g["audio"], max_dur) for g in group],
                [None if g.get("ref_audio") is None else self._wave(g["ref_audio"], max_dur) for g in group])
        return out

    # -- musicjudge's interface --------------------------------------------------------------

    def score(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        """{"alignment", "musicality"} per item; a clip (or reference) that cannot be read gets NaN
        and its reason in ``failures``, the rest of its group is scored without it. If a group
        still fails (e.g. a clip too short for MuQ), its items are scored one by one."""
        items = list(items)
        self.failures = {}
        out = np.full((len(items), 2), np.nan)
        for start in range(0, len(items), self.batch_size):
            idx, texts, lyrics, waves, refs = [], [], [], [], []
            for i in range(start, min(start + self.batch_size, len(items))):
                item = items[i]
                ins = item.instruction
                try:
                    wave = self._wave(item.audio, self.max_dur)
                    ref = None if not ins.ref_audio else self._wave(ins.ref_audio, self.max_dur)
                except MusicjudgeError as e:
                    self.failures[str(item.audio)] = str(e)
                    continue
                short = [(what, w.shape[0]) for what, w in (("clip", wave), ("reference", ref)) if w is not None
                         and w.shape[0] < MIN_SAMPLES]
                if short:  # MuQ cannot encode it alone; in a padded group its score would depend on the group
                    what, n = short[0]
                    self.failures[str(item.audio)] = (f"{item.audio}: CMI-RM failed (the {what} has {n} samples; MuQ needs "
                                                      f"at least {MIN_SAMPLES} at {SAMPLE_RATE} Hz)")
                    continue
                idx.append(i)
                texts.append(ins.text or "")
                lyrics.append(ins.lyrics or "")
                waves.append(wave)
                refs.append(ref)
            if not idx:
                continue
            try:
                out[idx] = self._group_scores(texts, lyrics, waves, refs)
            except Exception:  # noqa: BLE001 - e.g. a clip too short for MuQ: find it, score the rest alone
                for j, i in enumerate(idx):
                    try:
                        out[i] = self._group_scores([texts[j]], [lyrics[j]], [waves[j]], [refs[j]])[0]
                    except Exception as e:  # noqa: BLE001
                        reason = str(e).splitlines()[0] if str(e) else ""
                        self.failures[str(items[i].audio)] = f"{items[i].audio}: CMI-RM failed ({type(e).__name__}: {reason})"
        return {"alignment": out[:, 0], "musicality": out[:, 1]}


def load_cmi_rm(folder: str | Path, *, device: str | None = None, **options: Any) -> CmiRewardModel:
    """``cmi-rm=FOLDER``: options ``batch_size`` (items per group, default 4) and ``max_dur`` (seconds, default 30)."""
    unknown = set(options) - {"batch_size", "max_dur"}
    if unknown:
        raise ConfigError(f"cmi-rm: unknown option(s) {', '.join(sorted(unknown))}; it takes batch_size and max_dur")
    return CmiRewardModel(folder, device=device, **options)
