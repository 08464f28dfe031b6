"""Loading MuQ / MuQ-MuLan from their official folders, strictly.

* a **MuQ** folder (``OpenMuQ/MuQ-large-msd-iter``): ``config.json`` + ``model.safetensors`` (or
  ``pytorch_model.bin``), the state dict of ``muq.MuQ``;
* a **MuQ-MuLan** folder (``OpenMuQ/MuQ-MuLan-large``): ``config.json`` + weights holding *every*
  tensor (MuQ and XLM-R included). The towers' architectures come from the folders its config
  names (``audio_model.name``: a MuQ ``config.json``; ``text_model.name``: XLM-R's ``config.json``
  and tokenizer), looked up as a path, next to the folder, or as a hub id (cache, or download
  when online); their weights are not needed.

Every name is resolved by :func:`resolve_pretrained`. Loading compares the checkpoint's keys and
shapes with the architecture: a missing, unexpected or mis-shaped tensor is a ``ModelLoadError``
that lists them. Two renamings are not mismatches: weight-norm tensors saved as
``weight_g``/``weight_v`` by older torch vs ``parametrizations.weight.original0/1``, and an XLM-R
``embeddings.position_ids`` buffer written by transformers < 4.31 (checked to be ``0..n-1``, then dropped).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from musicjudge.errors import ModelLoadError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def resolve_pretrained(name: str, near: Sequence[Path], what: str, needs: Sequence[str],
                       patterns: Sequence[str] = ("*.json", "*.model", "*.txt")) -> Path:
    """The local folder of ``name`` (a path, a folder of that name next to one of ``near``, or a
    hub id in the local cache / downloaded when online) holding ``needs[0]``."""
    candidates = [Path(name).expanduser()] + [Path(base) / name for base in near]
    for folder in candidates:
        if folder.is_dir() and all((folder / f).exists() for f in needs[:1]):
            return folder
    try:
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(name, allow_patterns=list(patterns), local_files_only=True))
        except Exception:  # noqa: BLE001 - not cached: try the hub
            return Path(snapshot_download(name, allow_patterns=list(patterns)))
    except Exception as e:  # noqa: BLE001 - offline, unknown id, bad name
        where = ", ".join(str(p) for p in candidates[:3])
        raise ModelLoadError(f"{what} {name!r}: not a local folder (looked at {where}) and not downloadable "
                             f"({type(e).__name__}); put its {' + '.join(needs)} in a folder next to the checkpoint "
                             "named like it, or point the name in the config at a local folder") from None


def read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{path}: cannot read the {what} config ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path}: the {what} config is not a JSON object")
    return data


def weights_file(folder: Path, what: str) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise ModelLoadError(f"{folder}: no {' or '.join(WEIGHT_FILES)}; a {what} folder holds config.json and its weights")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated or not a weights file
        raise ModelLoadError(f"{path}: cannot read the weights ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}); re-download it") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{path}: not a state dict of tensors")
    return state


_WEIGHT_NORM_NAMES = ((".weight_g", ".parametrizations.weight.original0"), (".weight_v", ".parametrizations.weight.original1"))


def rename_weight_norm(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Map weight-norm tensors to whichever naming (``weight_g``/``weight_v`` or parametrizations) the model uses."""
    out = {}
    for key, value in state.items():
        if key not in expected:
            for old, new in _WEIGHT_NORM_NAMES:
                for a, b in ((old, new), (new, old)):
                    if key.endswith(a) and key[: -len(a)] + b in expected:
                        key = key[: -len(a)] + b
        out[key] = value
    return out


def _drop_legacy_position_ids(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if key not in expected and key.endswith("embeddings.position_ids"):
            flat = value.reshape(-1)
            if torch.equal(flat.long(), torch.arange(flat.numel())):
                continue
        out[key] = value
    return out


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], where: Path | str, hint: str) -> None:
    """Load ``state`` into ``module``; any missing, unexpected or mis-shaped key is a ModelLoadError listing them."""
    own = module.state_dict()
    state = _drop_legacy_position_ids(rename_weight_norm(dict(state), set(own)), set(own))
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if keys:
            shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise ModelLoadError(f"{where}: does not match the architecture of its config ({'; '.join(problems)}); {hint}")
    module.load_state_dict(state, strict=True)


def _hub_or_folder(name: str | Path, what: str) -> Path:
    return resolve_pretrained(str(name), [], what, ["config.json", "weights"],
                              patterns=("*.json", "*.safetensors", "*.bin"))


def load_muq(name: str | Path, *, device: str | None = None) -> nn.Module:
    """A MuQ with its weights from a folder (or hub id): ``config.json`` + weights, strict."""
    from musicjudge.reward.muq.model import build_muq_from_config

    folder = _hub_or_folder(name, "MuQ")
    muq = build_muq_from_config(read_json(folder / "config.json", "MuQ"))
    weights = weights_file(folder, "MuQ")
    load_strict(muq, read_state_dict(weights), weights, "use the config.json released with these weights")
    return muq.to(device or "cpu").eval()


def build_muq_mulan(folder: Path, config: dict[str, Any]) -> nn.Module:
    """A MuQ-MuLan of the architecture ``config`` (from ``folder/config.json``) leads to, weights not loaded."""
    from musicjudge.reward.muq.model import build_muq_from_config
    from musicjudge.reward.muq.mulan import MuQMuLan, build_text_model

    try:
        audio_name, text_name = str(config["audio_model"]["name"]), str(config["text_model"]["name"])
    except (KeyError, TypeError) as e:
        raise ModelLoadError(f"{folder / 'config.json'}: no {e} entry; is this a MuQ-MuLan config?") from None
    near = [folder, folder.parent]
    muq_dir = resolve_pretrained(audio_name, near, "MuQ", ["config.json"])
    muq = build_muq_from_config(read_json(muq_dir / "config.json", "MuQ"))
    text_dir = resolve_pretrained(text_name, near, "XLM-R text model", ["config.json", "tokenizer files"])
    xlmr, tokenizer = build_text_model(text_dir)
    model = MuQMuLan(config, muq, xlmr, tokenizer)
    model.tower_configs = {"muq": read_json(muq_dir / "config.json", "MuQ"), "text": read_json(text_dir / "config.json", "XLM-R")}
    return model


def load_muq_mulan(name: str | Path, *, device: str | None = None) -> nn.Module:
    """A MuQ-MuLan with every weight from its folder (or hub id), strict."""
    folder = _hub_or_folder(name, "MuQ-MuLan")
    model = build_muq_mulan(folder, read_json(folder / "config.json", "MuQ-MuLan"))
    weights = weights_file(folder, "MuQ-MuLan")
    load_strict(model, read_state_dict(weights), weights, "use the config.json (and tower configs) released with these weights")
    return model.to(device or "cpu").eval()
