"""MuQ (Zhu et al., 2025): log-mel front-end -> 2-D conv subsampling -> conformer, at 24 kHz.

A module tree whose ``state_dict`` has exactly the keys of the official ``muq.MuQ`` (``model.conv``,
``model.conformer``, ``model.linear``, ``model.cls_token`` and the target quantiser's buffers or
weights), built from a MuQ ``config.json`` (``OpenMuQ/MuQ-large-msd-iter`` or a tiny test one).
Inference only: the training targets (random-projection quantiser, Mel-RVQ) are kept as plain
tensors so that checkpoints load strictly, and are never run.

Forward (as ``muq.MuQ.forward`` / ``MuQModel.get_predictions``): wave [B, L] -> log-mel
(:mod:`.frontend`) without its last frame -> ``(x - mean) / std`` with the config's ``stat`` ->
``Conv2dSubsampling`` (two residual conv blocks, /2 in frequency each, time strides by label rate)
-> linear -> conformer (:mod:`.conformer`). With an ``attention_mask`` over samples, the frame mask
is the sample mask taken every ``L // frames`` samples (the official rule).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from musicjudge.errors import ModelLoadError
from musicjudge.reward.muq.conformer import ConformerEncoder, ConformerSettings
from musicjudge.reward.muq.frontend import LogMelSpectrogram

SAMPLE_RATE = 24000
FEATURE = "melspec_2048"

# the defaults of muq.MuQConfig
MUQ_DEFAULTS: dict[str, Any] = {
    "label_rate": 25, "num_codebooks": 1, "codebook_dim": 16, "codebook_size": 4096, "features": [FEATURE],
    "hop_length": 240, "n_mels": 128, "conv_dim": 512, "encoder_dim": 1024, "encoder_depth": 12,
    "mask_hop": 0.4, "mask_prob": 0.6, "is_flash": False, "stat": {}, "w2v2_config": {},
    "use_rvq_target": False, "use_vq_target": False, "use_encodec_target": False, "rvq_ckpt_path": None,
    "recon_loss_ratio": None, "resume_checkpoint": None, "rvq_n_codebooks": 8, "rvq_multi_layer_num": 1,
}


class ResidualConvBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus a strided conv-BN shortcut, then ReLU (``Res2dModule``)."""

    def __init__(self, cin: int, cout: int, stride: tuple[int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, stride=stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.has_shortcut = cin != cout or stride[0] > 1
        if self.has_shortcut:
            self.conv3 = nn.Conv2d(cin, cout, 3, padding=1, stride=stride)
            self.bn3 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        if self.has_shortcut:
            x = self.bn3(self.conv3(x))
        return torch.relu(x + out)


class ConvSubsampling(nn.Module):
    """[B, n_mels, T] -> [B, T / time_stride, out_dim]: two residual blocks (frequency /4) and a linear."""

    def __init__(self, conv_dim: int, out_dim: int, time_strides: tuple[int, int], n_mels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(ResidualConvBlock(1, conv_dim, (2, time_strides[0])),
                                  ResidualConvBlock(conv_dim, conv_dim, (2, time_strides[1])))
        self.linear = nn.Linear(conv_dim * n_mels // 2 // 2, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x.unsqueeze(1))  # [B, C, F', T']
        b, c, f, t = h.shape
        return self.linear(h.permute(0, 3, 1, 2).reshape(b, t, c * f))


class _Tensors(nn.Module):
    """Named tensors of a training-only submodule, kept so that a checkpoint loads strictly."""

    def __init__(self, parameters: Mapping[str, tuple[int, ...]], buffers: Mapping[str, tuple[int, ...]] = ()) -> None:
        super().__init__()
        for name, shape in parameters.items():
            self._child(name).register_parameter(name.rsplit(".", 1)[-1], nn.Parameter(torch.zeros(shape), requires_grad=False))
        for name, shape in dict(buffers).items():
            self._child(name).register_buffer(name.rsplit(".", 1)[-1], torch.zeros(shape))

    def _child(self, dotted: str) -> nn.Module:
        module: nn.Module = self
        for part in dotted.split(".")[:-1]:
            if not hasattr(module, part):
                module.add_module(part, nn.Module())
            module = getattr(module, part)
        return module


def _vq_tensors(prefix: str, input_dim: int, codebook_size: int, codebook_dim: int) -> tuple[dict, dict]:
    """The tensors of one ``VectorQuantize`` (weight-normalised 1x1 in/out projections, codebook)."""
    params = {}
    for proj, (cin, cout) in (("in_proj", (input_dim, codebook_dim)), ("out_proj", (codebook_dim, input_dim))):
        params[f"{prefix}{proj}.weight_g"] = (cout, 1, 1)
        params[f"{prefix}{proj}.weight_v"] = (cout, cin, 1)
        params[f"{prefix}{proj}.bias"] = (cout,)
    params[f"{prefix}codebook.weight"] = (codebook_size, codebook_dim)
    return params, {f"{prefix}stale_counter": (codebook_size,)}


class MuQCore(nn.Module):
    """``muq.MuQ().model`` (``MuQModel``) for feature extraction."""

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        super().__init__()
        features = list(cfg["features"])
        if features != [FEATURE]:
            raise ModelLoadError(f"MuQ config: features={features}; MuQ's encoder takes ['{FEATURE}']")
        self.n_fold = int(100 // int(cfg["label_rate"]))
        strides = {4: (2, 2), 2: (2, 1)}.get(self.n_fold)
        if strides is None:
            raise ModelLoadError(f"MuQ config: label_rate={cfg['label_rate']}; MuQ supports 25 or 50 (frames per second)")
        n_mels, dim = int(cfg["n_mels"]), int(cfg["encoder_dim"])
        stat = cfg.get("stat") or {}
        try:
            self.mean, self.std = float(stat[f"{FEATURE}_mean"]), float(stat[f"{FEATURE}_std"])
        except (KeyError, TypeError, ValueError):
            raise ModelLoadError(f"MuQ config: stat needs {FEATURE}_mean and {FEATURE}_std (the front-end's "
                                 "normalisation)") from None
        self.hop_length = int(cfg["hop_length"])
        self.preprocessor = LogMelSpectrogram(SAMPLE_RATE, 2048, self.hop_length, n_mels)
        if int(cfg.get("num_codebooks", 1)) < 1:
            raise ModelLoadError("MuQ config: num_codebooks must be >= 1")
        if cfg.get("use_encodec_target"):
            raise ModelLoadError("MuQ config: use_encodec_target (an EnCodec training target) is not supported")
        if cfg.get("use_rvq_target"):
            if int(cfg.get("rvq_multi_layer_num", 1)) != 1:
                raise ModelLoadError("MuQ config: rvq_multi_layer_num != 1 is not supported")
            params, buffers = {}, {}
            for i in range(int(cfg["rvq_n_codebooks"])):
                p, b = _vq_tensors(f"quantizers.{i}.", 128 * self.n_fold, 1024, 16)
                params.update(p)
                buffers.update(b)
            self.rvq = _Tensors(params, buffers)
        elif cfg.get("use_vq_target"):
            self.rvq = _Tensors(*_vq_tensors("", 128 * self.n_fold, 1024, 8))
        else:
            # random-projection quantiser (one per feature; its buffers are saved)
            self.quantizer_melspec_2048 = _Tensors({}, {"random_projection": (n_mels * self.n_fold, int(cfg["codebook_dim"])),
                                                        "codebook": (int(cfg["codebook_size"]), int(cfg["codebook_dim"]))})
        self.conv = ConvSubsampling(int(cfg["conv_dim"]), dim, strides, n_mels)
        w2v2 = dict(cfg.get("w2v2_config") or {})
        self.conformer = ConformerEncoder(ConformerSettings(w2v2, hidden_size=dim, num_hidden_layers=int(cfg["encoder_depth"])))
        self.linear = nn.Linear(dim, int(cfg["codebook_size"]))
        if cfg.get("recon_loss_ratio"):
            self.recon_proj = nn.Linear(dim, n_mels * self.n_fold)
        self.cls_token = nn.Parameter(torch.zeros(dim))

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel [B, n_mels, frames] (last STFT frame dropped, as MuQ does)."""
        with torch.no_grad():
            mel = self.preprocessor(wave.float())[..., :-1]
            return (mel - self.mean) / self.std

    def forward(self, wave: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_hidden_states: bool = False) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        x = self.conv(self.features(wave).to(self.conv.linear.weight.dtype))
        mask = None
        if attention_mask is not None:
            attention_mask = attention_mask.bool()
            step = int(attention_mask.shape[-1] / x.shape[1])
            mask = attention_mask[:, ::step][:, : x.shape[1]]
        return self.conformer(x, mask, output_hidden_states=output_hidden_states)


class MuQ(nn.Module):
    """``muq.MuQ``: ``forward(wave [B, L] at 24 kHz, attention_mask=None, output_hidden_states=False)``
    -> ``(last_hidden_state [B, T, D], hidden_states | None)``; 25 frames per second."""

    sample_rate = SAMPLE_RATE

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        if not isinstance(config, Mapping):
            raise ModelLoadError("MuQ config: expected a JSON object")
        unknown = sorted(set(config) - set(MUQ_DEFAULTS))
        if unknown:
            raise ModelLoadError(f"MuQ config: unknown field(s) {', '.join(unknown)}; is this a MuQ config.json?")
        self.config = {**MUQ_DEFAULTS, **dict(config)}
        self.model = MuQCore(self.config)
        self.dim = int(self.config["encoder_dim"])

    def forward(self, wave: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_hidden_states: bool = False) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        if wave.ndim == 1:
            wave = wave.unsqueeze(0)
        return self.model(wave, attention_mask=attention_mask, output_hidden_states=output_hidden_states)


def build_muq_from_config(config: Mapping[str, Any]) -> MuQ:
    """A MuQ of the architecture in ``config`` (a MuQ ``config.json``), eval mode, weights not loaded."""
    return MuQ(config).eval()


def muq_frames(muq: MuQ, wave: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The last conformer hidden state [B, T, D] of a (padded) batch, padding masked in the conformer."""
    return muq(wave, attention_mask=attention_mask)[0]
