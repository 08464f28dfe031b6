"""The one resolver of reward-model specs (``--model`` of ``reward score/eval``, ``bench run``,
``bench topk``, ``pseudolabel label --judge reward:SPEC`` and ``musicjudge.load_reward_model``).

Registered names (``musicjudge bench list`` prints them), then, in this order: an existing
checkpoint folder, an entry point of the group ``musicjudge.reward_models``, ``module:Class``
(a class or factory; classes written for the reference CMI-RewardBench interface, with
``score_batch``, are wrapped). Every resolved model carries a display ``name`` and a cache
``fingerprint`` that changes whenever its weights or settings do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicjudge.errors import ConfigError, ModelLoadError
from musicjudge.io import stable_hash
from musicjudge.reward.base import builtin_checkpoint_dir
from musicjudge.specs import SpecRegistry, integer_arg

ENTRY_POINT_GROUP = "musicjudge.reward_models"
REWARD_MODELS = SpecRegistry("reward model")
_FORMS = "an existing checkpoint folder, an installed entry point or module:Class"


@dataclass
class ResolvedReward:
    """A reward model with the spec it came from, its display name and its cache fingerprint."""

    spec: str
    name: str
    fingerprint: str
    model: Any


def dir_fingerprint(path: Path) -> str:
    """Names, sizes and mtimes of a checkpoint's files: new weights, new fingerprint."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return stable_hash([[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files])


def _checkpoint(folder: Path, spec: str, device: str | None, options: dict[str, Any]) -> ResolvedReward:
    from musicjudge.reward.model import FusionRewardModel

    model = FusionRewardModel.from_checkpoint(folder, device=device, **options)
    return ResolvedReward(spec, folder.name, stable_hash([spec, dir_fingerprint(folder), options]), model)


@REWARD_MODELS.register("builtin", aliases=("builtin_reward",), usage="builtin",
                        summary="the shipped reward model (fusion head over offline music features + MiniLM)")
def _builtin(arg: str | None, *, spec: str, device: str | None = None, **options: Any) -> ResolvedReward:
    folder = builtin_checkpoint_dir()
    if not (folder / "model.safetensors").exists():
        raise ModelLoadError(f"{folder}: the built-in reward model weights are missing; reinstall musicjudge or "
                             "train one with 'musicjudge reward train'")
    resolved = _checkpoint(folder, spec, device, options)
    resolved.name = "builtin"
    return resolved


@REWARD_MODELS.register("random", usage="random[:SEED]",
                        summary="chance baseline: a fixed hash-drawn score per (seed, item), batch-independent")
def _random(arg: str | None, *, spec: str, device: str | None = None, **options: Any) -> ResolvedReward:
    from musicjudge.reward.baselines import RandomReward

    seed = integer_arg(spec, arg, int(options.pop("seed", 0)), "the random baseline takes an integer seed")
    if options:
        raise ConfigError(f"{spec}: the random baseline takes no options but seed (got {', '.join(options)})")
    model = RandomReward(seed)
    return ResolvedReward(spec, model.name, model.fingerprint, model)


def encoder_from_spec(text: str | None, *, device: str | None = None, default: str = "builtin"):
    """An audio/text encoder from ``builtin``, ``BACKBONE:MODEL`` (``clap:/models/clap``,
    ``mert:...``, ``muq-mulan:...``), a bare model folder/hub id of ``default``'s backbone, or
    ``module:Attr`` (a factory returning an object with ``embed_audio``/``embed_text``)."""
    from musicjudge.reward.encoders import BACKBONES, BuiltinEncoder, build_encoder

    text = (text or default).strip()
    if text == "builtin":
        return BuiltinEncoder(device=device)
    backbone, _, model = text.partition(":")
    if backbone in BACKBONES and backbone != "builtin":
        if not model:
            raise ConfigError(f"encoder {text!r}: name the model folder or hub id, e.g. {backbone}:/models/{backbone}")
        return build_encoder({"backbone": backbone, "model": model}, device=device)
    if ":" in text and not Path(text).exists():
        from musicjudge.plugins import load_object

        factory = load_object(text)
        return factory() if callable(factory) else factory
    if default in BACKBONES and default != "builtin":  # a bare folder / hub id for the default backbone
        return build_encoder({"backbone": default, "model": text}, device=device)
    raise ConfigError(f"encoder {text!r}: use builtin, BACKBONE:MODEL ({', '.join(b for b in BACKBONES if b != 'builtin')}) "
                      "or module:Factory")


@REWARD_MODELS.register("text-ridge", usage="text-ridge[:ENCODER]",
                        summary="no trained head: text embedding mapped into audio-feature space by ridge regression "
                                "(fit_pairs=PATH, default: built-in train pairs), cosine to clip and reference")
def _text_ridge(arg: str | None, *, spec: str, device: str | None = None, fit_pairs: Any = None, fit_n: int = 256,
                corpus_limit: int | None = None, **options: Any) -> ResolvedReward:
    from musicjudge.reward.baselines import TextRidgeBaseline
    from musicjudge.reward.data import read_pairs

    if options:
        raise ConfigError(f"{spec}: unknown option(s) {', '.join(options)}; text-ridge takes fit_pairs, fit_n, corpus_limit")
    encoder = encoder_from_spec(arg, device=device)
    if fit_pairs is None:
        from musicjudge.reward.builtin_pairs import build_builtin_pairs

        fit_pairs = build_builtin_pairs(split="train", n=int(fit_n), seed=0,
                                        corpus_limit=None if corpus_limit is None else int(corpus_limit))
    name = f"text-ridge:{arg or 'builtin'}"
    model = TextRidgeBaseline(encoder, name=name).fit(read_pairs(fit_pairs, require_label=True))
    model.fingerprint = stable_hash([name, dir_fingerprint(Path(fit_pairs)), str(encoder.audio_key())])
    return ResolvedReward(spec, name, model.fingerprint, model)


@REWARD_MODELS.register("clap-cosine", usage="clap-cosine[:ENCODER]",
                        summary="zero-shot cosine in a joint audio/text space (CLAP folder or hub id, muq-mulan:MODEL, "
                                "module:Factory): clip vs text/reference, good- vs bad-music prompt")
def _clap_cosine(arg: str | None, *, spec: str, device: str | None = None, **options: Any) -> ResolvedReward:
    from musicjudge.reward.baselines import JointCosineBaseline

    text = arg or "laion/clap-htsat-unfused"
    if ":" in text and not Path(text).exists() and text.partition(":")[0] not in ("clap", "mert", "muq", "muq-mulan"):
        from musicjudge.plugins import load_object

        factory = load_object(text)
        encoder = factory(**options) if callable(factory) else factory
    else:
        encoder = encoder_from_spec(text, device=device, default="clap")
    name = f"clap-cosine:{Path(text).name if Path(text).exists() else text.rsplit(':', 1)[-1].rsplit('.', 1)[-1]}"
    model = JointCosineBaseline(encoder, name=name)
    key = encoder.audio_key() if hasattr(encoder, "audio_key") else model.fingerprint
    return ResolvedReward(spec, name, stable_hash([spec, str(key), options]), model)


@REWARD_MODELS.register("cosine", usage="cosine[:...] (old name)",
                        summary="old name, kept for scripts: cosine / cosine:builtin = text-ridge:builtin, "
                                "cosine:clap:PATH / cosine:module:Attr = clap-cosine")
def _cosine_old_name(arg: str | None, *, spec: str, **options: Any) -> ResolvedReward:
    if arg in (None, "", "builtin"):
        resolved = _text_ridge("builtin", spec=spec, **options)
    else:
        resolved = _clap_cosine(arg[len("clap:"):] if arg.startswith("clap:") else arg, spec=spec, **options)
    return resolved


@REWARD_MODELS.register("cmi-rm", usage="cmi-rm=FOLDER",
                        summary="CMI-RM, the CMI-RewardBench baseline: its official config.yaml + model.safetensors "
                                "(MuQ-MuLan towers; options batch_size=4, max_dur=30)")
def _cmi_rm(arg: str | None, *, spec: str, device: str | None = None, **options: Any) -> ResolvedReward:
    from musicjudge.reward.cmi_rm import load_cmi_rm

    if not arg:
        raise ConfigError(f"{spec}: name the CMI-RM folder (config.yaml + model.safetensors), e.g. cmi-rm=/models/CMI-RM")
    model = load_cmi_rm(Path(arg).expanduser(), device=device, **options)
    return ResolvedReward(spec, model.name, stable_hash([spec, model.fingerprint, options]), model)


@REWARD_MODELS.register("loss-profile", usage="loss-profile[:LM]",
                        summary="label-free musicality: the probe's profile score under a music LM (default builtin)")
def _loss_profile(arg: str | None, *, spec: str, device: str | None = None, **options: Any) -> ResolvedReward:
    from musicjudge.reward.baselines import LossProfileReward

    model = LossProfileReward(arg or "builtin", **options)
    return ResolvedReward(spec, model.name, model.fingerprint, model)


def _construct(obj: Any, spec: str, device: str | None, options: dict[str, Any]) -> Any:
    import inspect

    if not (isinstance(obj, type) or (callable(obj) and not hasattr(obj, "score") and not hasattr(obj, "score_batch"))):
        return obj
    kwargs = dict(options)
    try:
        params = inspect.signature(obj).parameters
        if device is not None and ("device" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())):
            kwargs["device"] = device
    except (TypeError, ValueError):
        pass
    try:
        return obj(**kwargs)
    except TypeError as e:
        raise ModelLoadError(f"{spec}: cannot construct the model ({e}); pass its arguments with --model-arg key=value") from None


def wrap_reward_object(model: Any, spec: str) -> Any:
    """``model`` itself if it has ``score(items)``; a reference-interface model (``score_batch``) wrapped."""
    if hasattr(model, "score"):
        return model
    if hasattr(model, "score_batch"):
        from musicjudge.reward.reference_interface import FromReferenceInterface

        return FromReferenceInterface(model)
    raise ModelLoadError(f"{spec}: object has neither score(items) nor score_batch(inputs, batch_size, max_dur); "
                         "see docs/reward.md")


def resolve_reward_model(spec: str | Path = "builtin", *, device: str | None = None, **options: Any) -> ResolvedReward:
    """Resolve ``spec`` (see the module docstring); ``options`` go to the model's constructor
    (``--model-arg key=value`` on the command line)."""
    spec = str(spec).strip() or "builtin"
    hit = REWARD_MODELS.match(spec)  # a registered name wins; a folder is named by a path (runs/rm, ./random)
    if hit is not None:
        entry, arg = hit
        return entry.factory(arg, spec=spec, device=device, **options)
    path = Path(spec).expanduser()
    if path.exists():
        return _checkpoint(path, spec, device, options)
    from musicjudge.plugins import load_entry_point

    plugin = load_entry_point(ENTRY_POINT_GROUP, spec)
    if plugin is not None:
        obj, target = plugin
        model = wrap_reward_object(_construct(obj, spec, device, options), spec)
        fp = getattr(model, "fingerprint", None) or stable_hash([spec, target, options])
        return ResolvedReward(spec, spec, str(fp), model)
    if ":" in spec:
        from musicjudge.plugins import load_object

        model = wrap_reward_object(_construct(load_object(spec), spec, device, options), spec)
        fp = getattr(model, "fingerprint", None) or stable_hash([spec, options])
        return ResolvedReward(spec, spec.rsplit(":", 1)[-1].rsplit(".", 1)[-1], str(fp), model)
    raise ModelLoadError(f"{spec}: not 'builtin', another registered name ({', '.join(REWARD_MODELS.names()[1:])}), "
                         f"{_FORMS}; check the spelling ('musicjudge bench list' shows the names)")


def load_reward_model(spec: str | Path = "builtin", *, device: str | None = None, **options: Any) -> Any:
    """The reward model a spec names (an object with ``score(items) -> {dimension: array}``)."""
    return resolve_reward_model(spec, device=device, **options).model


def available_reward_models() -> list[dict[str, str]]:
    """Registered names plus installed entry points, as rows (``bench list``, ``reward info``)."""
    from musicjudge.plugins import entry_point_names

    rows = [e.row() for e in REWARD_MODELS.entries()]
    rows += [{"kind": "reward model", "name": name, "usage": name, "summary": f"entry point {ep.value}", "aliases": ""}
             for name, ep in sorted(entry_point_names(ENTRY_POINT_GROUP).items())]
    return rows
