"""Build a judge from a command-line spec.

Specs: ``openai`` (needs base_url and model), ``heuristic``, ``simulated[:accuracy=0.8,bias=0.3,seed=0]``,
``reward:SPEC`` (SPEC as for ``musicjudge.reward.load_reward_model``: "builtin", a checkpoint
folder or module:Class), or ``module:Class`` for a user judge (instantiated without arguments).
"""

from __future__ import annotations

from typing import Any, Sequence

from musicjudge.errors import ConfigError
from musicjudge.specs import SpecRegistry
from musicjudge.pseudolabel.judges import (
    DEFAULT_DIMENSIONS,
    HeuristicJudge,
    OpenAIChatJudge,
    RewardModelJudge,
    SimulatedJudge,
)

JUDGE_SPECS_HELP = "openai | heuristic | simulated[:accuracy=A,bias=B,seed=S] | reward:SPEC | module:Class"


def _parse_kv(text: str, spec: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"judge {spec!r}: {part!r} is not key=number; e.g. simulated:accuracy=0.8,bias=0.3") from None
        if not sep:
            raise ConfigError(f"judge {spec!r}: {part!r} is not key=number; e.g. simulated:accuracy=0.8,bias=0.3")
    return out


JUDGES = SpecRegistry("judge")


@JUDGES.register("openai", usage="openai (with --base-url and --model)",
                 summary="an OpenAI-compatible chat endpoint (e.g. a local vLLM server) judging both orders of a pair")
def _openai(arg: str | None, *, spec: str, dimensions: Sequence[str], base_url: str | None = None,
            model: str | None = None, device: str | None = None, **openai_kwargs: Any):
    if not base_url or not model:
        raise ConfigError("judge 'openai': pass --base-url (e.g. http://127.0.0.1:8000/v1) and --model")
    return OpenAIChatJudge(base_url, model, dimensions=dimensions, **openai_kwargs)


@JUDGES.register("heuristic", usage="heuristic", summary="no model: spectral flatness for musicality, chroma vs reference or named key for alignment")
def _heuristic(arg: str | None, *, spec: str, dimensions: Sequence[str], **_: Any):
    return HeuristicJudge(dimensions=dimensions)


@JUDGES.register("simulated", usage="simulated[:accuracy=A,bias=B,seed=S]",
                 summary="a judge of known accuracy and position bias over pairs with truth (for testing the filter)")
def _simulated(arg: str | None, *, spec: str, dimensions: Sequence[str], **_: Any):
    kv = _parse_kv(arg or "", spec)
    unknown = set(kv) - {"accuracy", "bias", "seed"}
    if unknown:
        raise ConfigError(f"judge {spec!r}: unknown setting(s) {sorted(unknown)}; use accuracy, bias, seed")
    return SimulatedJudge(accuracy=kv.get("accuracy", 0.8), position_bias=kv.get("bias", 0.3),
                          seed=int(kv.get("seed", 0)), dimensions=dimensions)


@JUDGES.register("reward", usage="reward:SPEC", summary="a reward model as judge (SPEC as for --model of reward/bench commands)")
def _reward(arg: str | None, *, spec: str, dimensions: Sequence[str], device: str | None = None, **_: Any):
    from musicjudge.reward.registry import load_reward_model

    if not arg:
        raise ConfigError(f"judge {spec!r}: name the reward model, e.g. reward:builtin")
    return RewardModelJudge(load_reward_model(arg, device=device), name=f"reward:{arg}", dimensions=dimensions)


def make_judge(spec: str, *, dimensions: Sequence[str] = DEFAULT_DIMENSIONS, base_url: str | None = None,
               model: str | None = None, device: str | None = None, **openai_kwargs: Any):
    """A judge object for ``spec`` (see the module docstring)."""
    spec = spec.strip()
    hit = JUDGES.match(spec)
    if hit is not None:
        entry, arg = hit
        return entry.factory(arg, spec=spec, dimensions=dimensions, base_url=base_url, model=model, device=device,
                             **openai_kwargs)
    if ":" in spec:
        from musicjudge.plugins import load_object

        obj = load_object(spec)
        judge = obj() if isinstance(obj, type) else obj
        if not hasattr(judge, "judge"):
            raise ConfigError(f"judge {spec!r}: object has no judge(pair, order) method")
        if not hasattr(judge, "name"):
            judge.name = spec
        return judge
    raise ConfigError(f"judge {spec!r}: unknown; use {JUDGE_SPECS_HELP}")


def available_judges() -> list[dict[str, str]]:
    """Registered judge names as rows (``bench list``)."""
    return [e.row() for e in JUDGES.entries()]
