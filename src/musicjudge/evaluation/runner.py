"""``musicjudge eval``: score every clip of every system once (profile score and original loss
under a music LM, musicality and alignment under a reward model, the reward model's audio
embedding), then compare systems (means with CIs, paired win rates, distances to a reference
set, validity of the profile score) and write tables, figures and one HTML report.

Resumable: each finished clip is one line of ``OUT/clips.jsonl`` (appended and fsynced as it
finishes); a re-run reads those lines and scores only the clips that are not there yet. A clip
that cannot be scored is a row with ``status`` failed/partial and its reason, never a crash."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from musicjudge.errors import ConfigError
from musicjudge.evaluation.sources import Clip, Prompt, match_prompt, parse_system_args, read_clips, read_prompts
# the values the report shares live in the leaf module evaluation.types; importable from here
from musicjudge.evaluation.types import FORMAT, METRICS, WIN_METRICS, EvalResult, ProfileSettings

CHUNK = 8  # clips per reward-model call (one text-encoder batch)


def _lm_from(spec: Any, device: str | None):
    if spec is None or (isinstance(spec, str) and spec.lower() == "none"):
        return None
    if not isinstance(spec, str):
        return spec
    from musicjudge.lm.loader import load_music_lm

    return load_music_lm(spec, device=device)


def _reward_from(spec: Any, device: str | None):
    if spec is None or (isinstance(spec, (str, Path)) and str(spec).lower() == "none"):
        return None
    if not isinstance(spec, (str, Path)):
        return getattr(spec, "reward_model", spec)  # musicjudge.load_reward_model's RewardScorer: the model inside
    from musicjudge.reward import load_reward_model

    return load_reward_model(str(spec), device=device)


def audio_embedder(reward_model: Any) -> Callable[[list[str]], tuple[np.ndarray, dict[str, str]]] | None:
    """``paths -> (embeddings [N, D], failures)`` in the reward model's audio feature space:
    its encoder's embedding, standardised with the statistics the model stores (so no feature
    dominates a distance by its units). A model may instead provide ``embed_audio(paths) -> [N, D]``
    itself (NaN rows for clips it cannot read). None when it has neither."""
    if callable(getattr(reward_model, "embed_audio", None)):
        def own(paths: list[str], progress: bool = False) -> tuple[np.ndarray, dict[str, str]]:
            emb = np.asarray(reward_model.embed_audio(paths), dtype=np.float64).reshape(len(paths), -1)
            return emb, dict(getattr(reward_model, "failures", {}) or {})

        return own
    encoder = getattr(reward_model, "encoder", None)
    if encoder is None or not hasattr(encoder, "embed_audio"):
        return None
    head = getattr(reward_model, "head", None)
    mean = std = None
    if head is not None and hasattr(head, "audio_mean") and hasattr(head, "audio_std"):
        mean = np.asarray(head.audio_mean.detach().cpu().numpy(), dtype=np.float64)
        std = np.asarray(head.audio_std.detach().cpu().numpy(), dtype=np.float64)

    def embed(paths: list[str], progress: bool = False) -> tuple[np.ndarray, dict[str, str]]:
        failures = getattr(encoder, "failures", None)
        if isinstance(failures, dict):
            failures.clear()
        emb = np.asarray(encoder.embed_audio(paths, progress=progress), dtype=np.float64)
        if mean is not None and emb.shape[1:] == mean.shape:
            emb = (emb - mean) / std
        return emb, dict(getattr(encoder, "failures", {}) or {})

    return embed


def _instruction(clip: Clip, prompt: Prompt | None):
    from musicjudge.reward.data import Instruction

    if prompt is not None:
        return Instruction(prompt.text or clip.text, prompt.lyrics or clip.lyrics, prompt.ref_audio or clip.ref_audio)
    return Instruction(clip.text, clip.lyrics, clip.ref_audio)


def _score_chunk(system: str, chunk: list[tuple[Clip, Prompt | None]], lm, reward_model, embed,
                 profile: ProfileSettings, prompts_given: bool) -> list[dict[str, Any]]:
    """One row per clip of ``chunk``; every failure becomes the row's ``error``."""
    from musicjudge.errors import MusicjudgeError

    n = len(chunk)
    rows = []
    instructions = [_instruction(c, p) for c, p in chunk]
    musicality = np.full(n, np.nan)
    alignment = np.full(n, np.nan)
    reward_errors: dict[str, str] = {}
    embed_errors: dict[str, str] = {}
    embeddings: list[list[float] | None] = [None] * n
    if reward_model is not None:
        from musicjudge.reward.base import ScoreItem, check_scores

        items = [ScoreItem(c.path, ins) for (c, _), ins in zip(chunk, instructions)]
        try:
            scores = check_scores(reward_model.score(items), n)
            musicality, alignment = scores["musicality"], scores["alignment"].copy()
            reward_errors = dict(getattr(reward_model, "failures", {}) or {})
        except Exception:  # noqa: BLE001 - a plugin may raise anything; find the clip(s) that break it
            for k, item in enumerate(items):
                try:
                    one = check_scores(reward_model.score([item]), 1)
                    musicality[k], alignment[k] = one["musicality"][0], one["alignment"][0]
                    reward_errors.update(getattr(reward_model, "failures", {}) or {})
                except Exception as e:  # noqa: BLE001 - record and go on with the other clips
                    reward_errors[item.audio] = f"{item.audio}: reward model failed ({type(e).__name__}: {e})"[:500]
        if embed is not None:
            for k, (c, _) in enumerate(chunk):
                try:
                    emb, failures = embed([c.path])
                except Exception as e:  # noqa: BLE001 - a plugin's embedding may raise anything
                    emb, failures = np.full((1, 1), np.nan), {c.path: f"{c.path}: audio embedding failed ({type(e).__name__}: {e})"[:500]}
                if emb.size and np.all(np.isfinite(emb[0])):
                    embeddings[k] = [float(f"{v:.7g}") for v in emb[0]]  # 7 significant digits: a third of the JSON
                else:
                    embed_errors[c.path] = failures.get(c.path, f"{c.path}: no audio embedding")
    for k, ((clip, prompt), ins) in enumerate(zip(chunk, instructions)):
        errors = []
        row: dict[str, Any] = {
            "system": system, "id": clip.id, "path": clip.path,
            "prompt_id": prompt.id if prompt is not None else (None if prompts_given else clip.prompt_id or clip.id),
            "instruction_kind": ins.kind, "musicality": None, "alignment": None, "profile_score": None,
            "n_short": 0, "orig_loss": None, "orig_loss_std": None, "duration_s": None,
        }
        try:
            from musicjudge.audio import audio_info

            row["duration_s"] = float(audio_info(clip.path).duration)
        except MusicjudgeError as e:
            errors.append(str(e))
        if reward_model is not None:
            if clip.path in reward_errors or not np.isfinite(musicality[k]):
                errors.append(reward_errors.get(clip.path, f"{clip.path}: the reward model could not score this clip"))
            else:
                row["musicality"] = float(musicality[k])
                # Alignment with no instruction would score the model's "absent" embeddings, not the clip.
                row["alignment"] = float(alignment[k]) if ins.kind != "none" and np.isfinite(alignment[k]) else None
            if clip.path in embed_errors:
                errors.append(embed_errors[clip.path])
        if lm is not None and row["duration_s"] is not None:  # readable audio: the LM may still score it
            from musicjudge.probe.scoring import profile_scores

            try:
                prof = profile_scores(lm, [clip.path], onsets_s=profile.onsets_s, lengths_frames=profile.lengths_frames,
                                      level_db=profile.level_db, crop_duration=profile.crop_duration,
                                      progress=False).iloc[0]
            except Exception as e:  # noqa: BLE001 - profile_scores records user errors itself; this is an LM crash
                prof = {"error": f"{clip.path}: music LM failed ({type(e).__name__}: {e})"[:500]}
            if prof["error"]:
                errors.append(str(prof["error"]))
            else:
                row.update(profile_score=_finite(prof["profile_score"]), n_short=int(prof["n_short"]),
                           orig_loss=_finite(prof["orig_loss_mean"]), orig_loss_std=_finite(prof["orig_loss_std"]))
        scored = [row[m] for m in ("musicality", "profile_score") if row[m] is not None]
        row["status"] = "ok" if not errors else ("partial" if scored else "failed")
        row["error"] = "; ".join(dict.fromkeys(errors)) or None
        row["embedding"] = embeddings[k]
        rows.append(row)
    return rows


def _finite(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _check_config(out: Path, config: dict[str, Any]) -> None:
    """A run folder keeps the scoring settings it was started with (its rows depend on them)."""
    from musicjudge.io import atomic_write_json

    path = out / "config.json"
    # through JSON, so tuples compare equal to the lists config.json holds
    scoring = json.loads(json.dumps({k: config[k] for k in ("format", "lm", "reward", "profile")}))
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            old = None
        if isinstance(old, dict) and {k: old.get(k) for k in scoring} != scoring:
            changed = ", ".join(k for k in scoring if old.get(k) != scoring[k])
            raise ConfigError(f"{out}: this eval folder was scored with other settings ({changed}); "
                              "use a new --out, or the settings in its config.json")
    atomic_write_json(path, config)


def evaluate(
    systems: Mapping[str, str | Path] | Sequence[str],
    out: str | Path,
    *,
    prompts: str | Path | None = None,
    reference: str | Path | None = None,
    lm: Any = "builtin",
    reward: Any = "builtin",
    profile: ProfileSettings | None = None,
    limit: int | None = None,
    device: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    examples: int = 2,
    report: bool = True,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> EvalResult:
    """Evaluate ``systems`` (name -> folder or JSONL manifest, or ``NAME=PATH`` strings) and write
    ``out/``: clips.parquet, systems.csv, winrates.csv, distances.csv, validity.csv,
    results.json, errors.jsonl, figures/*.png and report.html.

    ``lm`` / ``reward``: specs (``"builtin"``, a checkpoint, ``module:Class``, ``"none"`` to skip)
    or loaded models. ``prompts``: JSONL of ``{id, text, lyrics, ref_audio}`` matched to clips by
    id or file stem (without it, clips of different systems pair up by id). ``reference``: a
    folder or manifest of real music for the Fréchet distance and MMD. ``limit``: first N clips
    per system (and of the reference)."""
    from musicjudge.evaluation.stats import distance_caveat
    from musicjudge.io import append_jsonl, read_jsonl

    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: must be >= 1")
    if examples < 0:
        raise ConfigError(f"--examples {examples}: must be >= 0")
    system_paths = dict(parse_system_args(list(systems)) if not isinstance(systems, Mapping) else systems)
    if not system_paths:
        raise ConfigError("no systems to evaluate; pass NAME=FOLDER_OR_MANIFEST at least once")
    profile = profile or ProfileSettings()
    if all(spec is None or (isinstance(spec, (str, Path)) and str(spec).lower() == "none") for spec in (lm, reward)):
        raise ConfigError("--lm none and --reward none leave nothing to score; keep at least one judge")
    if lm is not None and not (isinstance(lm, str) and lm.lower() == "none"):
        from musicjudge.probe.profile import check_profile_settings

        check_profile_settings(onsets_s=profile.onsets_s, lengths_frames=profile.lengths_frames,
                               crop_duration=profile.crop_duration)
    # Read every input before loading any model: a typo fails in a second, not after a minute.
    clips_of = {name: read_clips(path)[:limit] for name, path in system_paths.items()}
    prompt_list = read_prompts(prompts) if prompts is not None else []
    prompt_map = {p.id: p for p in prompt_list}
    reference_clips = read_clips(reference)[:limit] if reference is not None else []

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "format": FORMAT,
        "lm": lm if isinstance(lm, str) or lm is None else getattr(lm, "name", type(lm).__name__),
        "reward": str(reward) if isinstance(reward, (str, Path)) or reward is None else getattr(reward, "name", type(reward).__name__),
        "profile": asdict(profile),
        "systems": {k: str(v) for k, v in system_paths.items()},
        "prompts": str(prompts) if prompts is not None else None,
        "reference": str(reference) if reference is not None else None,
        "limit": limit, "n_boot": n_boot, "seed": seed,
    }
    _check_config(out, config)

    rows_file = out / "clips.jsonl"
    done: dict[tuple[str, str, str], dict] = {}
    if rows_file.exists():
        for row in read_jsonl(rows_file):
            done[(row["system"], row["id"], row["path"])] = row
    todo = {name: [c for c in clips if (name, c.id, c.path) not in done] for name, clips in clips_of.items()}
    n_todo = sum(len(v) for v in todo.values())
    log(f"eval: {len(clips_of)} system(s), {sum(len(v) for v in clips_of.values())} clip(s), "
        f"{n_todo} to score ({len(done)} cached in {rows_file})")

    t0 = time.perf_counter()
    lm_model = reward_model = embed = None
    if n_todo or reference_clips:
        reward_model = _reward_from(reward, device)
        embed = audio_embedder(reward_model) if reward_model is not None else None
    if n_todo:
        lm_model = _lm_from(lm, device)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_todo, desc="eval", unit="clip")
        for name, clips in todo.items():
            if bar is not None:
                bar.set_postfix_str(name)
            for start in range(0, len(clips), CHUNK):
                chunk = [(c, match_prompt(c, prompt_map)) for c in clips[start:start + CHUNK]]
                rows = _score_chunk(name, chunk, lm_model, reward_model, embed, profile, bool(prompt_map))
                for row in rows:
                    append_jsonl(rows_file, row)
                    done[(row["system"], row["id"], row["path"])] = row
                if bar is not None:
                    bar.update(len(chunk))
        if bar is not None:
            bar.close()
    scoring_s = time.perf_counter() - t0

    # The rows of this run's clips, in system then clip order (a folder may hold rows of clips
    # that were later removed or of systems not asked for now: they are left out).
    rows = [done[(name, c.id, c.path)] for name, clips in clips_of.items() for c in clips]

    reference_emb = np.zeros((0, 0))
    reference_errors: list[dict[str, str]] = []
    if reference_clips and embed is not None:
        emb, failures = embed([c.path for c in reference_clips], progress=progress)
        ok = np.all(np.isfinite(emb), axis=1)
        reference_emb = emb[ok]
        reference_errors = [{"system": "reference", "id": c.id, "path": c.path,
                             "reason": failures.get(c.path, "no audio embedding")}
                            for c, good in zip(reference_clips, ok) if not good]
    elif reference_clips:
        log("eval: the reward model exposes no audio encoder; no Fréchet distance / MMD to the reference")

    missing = []
    if prompt_map:
        for name, clips in clips_of.items():
            answered = {r["prompt_id"] for r in rows if r["system"] == name and r["prompt_id"] is not None}
            missing += [{"system": name, "id": p.id, "path": "", "reason": "no clip of this system for this prompt"}
                        for p in prompt_list if p.id not in answered]

    from musicjudge.evaluation.report import write_outputs

    result = write_outputs(
        out, rows, reference_emb=reference_emb, n_reference=len(reference_clips), reference_errors=reference_errors,
        missing_prompts=missing, config=config, n_boot=n_boot, seed=seed, examples=examples, report=report,
        prompts_given=bool(prompt_map), log=log,
    )
    result.results["timings"] = {"scoring_s": round(scoring_s, 1)}
    dist = result.results.get("distances") or []
    if dist:
        log("eval: " + distance_caveat(min(d["n_system"] for d in dist), dist[0]["n_reference"], dist[0]["dim"]))
    log(f"eval: wrote {out} ({result.results['counts']['errors']} problem(s) in errors.jsonl)")
    return result
