"""Candidate generation: several clips per instruction from any generator, so that prompts can
be turned into unlabelled pairs (``pseudolabel pair``) and then pseudo-labelled.

Generators (``load_generator(spec)``):
- ``builtin`` — the shipped music LM (unconditional: the instruction is recorded, not used);
- a MusicGen hub id or local checkpoint (``musicjudge.lm.musicgen``), text-conditioned
  through ``MusicgenForConditionalGeneration.generate``;
- ``module:Class`` — any object with ``generate(instruction, *, seed, top_k, temperature,
  duration_s) -> (wave, sample_rate)`` and a ``name``.

Candidate ``k`` of a prompt samples with ``top_k = sweep[k % len(sweep)]`` (a top-k sweep gives
pairs of different quality, the same way the reference work builds its candidates).

Output folder: ``audio/<prompt_id>/<k>.wav`` and ``candidates.jsonl`` (rated-clip schema: id,
text, lyrics, ref_audio, audio, system + prompt_id, seed, top_k, ...), appended one row per clip
after its audio is written: a re-run skips finished clips. Prompts that fail are recorded in
``failures.jsonl`` and the rest continue.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np

from musicjudge.errors import ConfigError, ManifestError, MusicjudgeError

if TYPE_CHECKING:
    from musicjudge.reward.data import Instruction

log = logging.getLogger(__name__)

CANDIDATES_FILE = "candidates.jsonl"
FAILURES_FILE = "failures.jsonl"


class CandidateGenerator(Protocol):
    name: str
    conditioned_on: tuple[str, ...]  # which instruction parts the generator actually uses

    def generate(self, instruction: "Instruction", *, seed: int, top_k: int | None, temperature: float,
                 duration_s: float) -> tuple[np.ndarray, int]: ...


class BuiltinLMGenerator:
    """The built-in LM (or any MusicLM with ``generate_audio``); unconditional."""

    conditioned_on: tuple[str, ...] = ()

    def __init__(self, lm: Any, name: str = "builtin", griffin_lim_iters: int = 32) -> None:
        self.lm = lm
        self.name = name
        self.griffin_lim_iters = griffin_lim_iters

    def generate(self, instruction, *, seed, top_k, temperature, duration_s):
        waves = self.lm.generate_audio(duration_s, top_k=top_k, temperature=temperature, seed=seed, batch_size=1,
                                       griffin_lim_iters=self.griffin_lim_iters)
        return np.asarray(waves[0], dtype=np.float32), int(self.lm.sample_rate)


class MusicGenGenerator:
    """Text-conditioned sampling from a MusicGen checkpoint (``MusicGenLM`` adapter's model)."""

    conditioned_on: tuple[str, ...] = ("text",)

    def __init__(self, lm: Any, name: str | None = None, guidance_scale: float | None = None) -> None:
        if lm.tokenizer is None:
            raise ConfigError(f"{lm.name}: the checkpoint has no tokenizer, so text prompts cannot be encoded; save one with it")
        self.lm = lm
        self.name = name or lm.name
        self.guidance_scale = guidance_scale

    def generate(self, instruction, *, seed, top_k, temperature, duration_s):
        import torch

        model = self.lm.model
        text = instruction.text or ""
        inputs = self.lm.tokenizer([text], return_tensors="pt", padding=True).to(model.device)
        frames = max(2, int(round(duration_s * self.lm.frame_rate)))
        # The delay pattern costs K - 1 steps: generate() returns max_new_tokens - (K - 1) frames.
        steps = frames + int(model.config.decoder.num_codebooks) - 1
        kwargs: dict[str, Any] = dict(do_sample=True, top_k=top_k or 0, temperature=float(temperature), max_new_tokens=steps)
        guidance = self.guidance_scale if self.guidance_scale is not None else getattr(model.generation_config, "guidance_scale", None)
        if guidance and guidance > 1:
            kwargs["guidance_scale"] = float(guidance)
        torch.manual_seed(seed)
        with torch.inference_mode():
            audio = model.generate(**inputs, **kwargs)
        wave = audio[0].float().mean(0).cpu().numpy()  # [channels, samples] -> mono
        return wave.astype(np.float32), int(self.lm.sample_rate)


def load_generator(spec: str, *, device: str | None = None, guidance_scale: float | None = None,
                   griffin_lim_iters: int = 32) -> CandidateGenerator:
    """``builtin``, a MusicGen hub id / local checkpoint, or ``module:Class``.
    ``griffin_lim_iters``: decoding iterations of the built-in LM's mel tokenizer (speed vs quality)."""
    spec = (spec or "builtin").strip()
    if ":" in spec and not Path(spec).exists() and not spec.startswith(("http://", "https://")):
        from musicjudge.plugins import load_object

        obj = load_object(spec)
        gen = obj() if isinstance(obj, type) else obj
        if hasattr(gen, "generate_audio") and not hasattr(gen, "conditioned_on"):
            return BuiltinLMGenerator(gen, name=spec, griffin_lim_iters=griffin_lim_iters)
        if not hasattr(gen, "generate"):
            raise ConfigError(f"{spec}: object has no generate(instruction, *, seed, top_k, temperature, duration_s)")
        if not hasattr(gen, "name"):
            gen.name = spec
        if not hasattr(gen, "conditioned_on"):
            gen.conditioned_on = ("text",)
        return gen
    from musicjudge.lm.loader import load_music_lm

    lm = load_music_lm(spec, device=device)
    if hasattr(lm, "generate_audio"):
        return BuiltinLMGenerator(lm, name=spec, griffin_lim_iters=griffin_lim_iters)
    if hasattr(lm, "model") and hasattr(lm.model, "generate"):
        return MusicGenGenerator(lm, name=spec, guidance_scale=guidance_scale)
    raise ConfigError(f"{spec}: this model cannot generate audio; use builtin, a MusicGen checkpoint or module:Class")


def read_prompts(path: str | Path) -> list[dict[str, Any]]:
    """Prompts from a .txt (one text prompt per line) or a JSONL/CSV/Parquet table with columns
    text, lyrics, ref_audio (relative to the file) and optional id."""
    from musicjudge.reward.data import read_table, resolve_audio_path

    path = Path(path)
    if path.suffix.lower() == ".txt":
        if not path.exists():
            raise ManifestError(f"{path}: file not found; check the path")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ManifestError(f"{path}: not a UTF-8 text file; give one text prompt per line") from None
        rows: list[dict[str, Any]] = [{"text": line.strip()} for line in text.splitlines() if line.strip()]
    else:
        rows = read_table(path)
    root = path.resolve().parent
    prompts = []
    seen: set[str] = set()
    for i, row in enumerate(rows, 1):
        text, lyrics = row.get("text"), row.get("lyrics")
        ref = resolve_audio_path(row.get("ref_audio"), root)
        if not any(isinstance(v, str) and v.strip() for v in (text, lyrics, ref)):
            raise ManifestError(f"{path}: row {i} has no text, lyrics or ref_audio; give at least one")
        prompt_id = str(row.get("id") or f"prompt{i:04d}")
        if not re.fullmatch(r"[\w.-]{1,100}", prompt_id):
            raise ManifestError(f"{path}: row {i} id {prompt_id!r} must be letters, digits, '.', '-' or '_' (it names a folder)")
        if prompt_id in seen:
            raise ManifestError(f"{path}: row {i} repeats id {prompt_id!r}; ids must be unique")
        seen.add(prompt_id)
        prompts.append({"id": prompt_id, "text": text or None, "lyrics": lyrics or None, "ref_audio": ref})
    if not prompts:
        raise ManifestError(f"{path}: no prompts; write one prompt per line (.txt) or rows with a 'text' column")
    return prompts


def candidate_seed(base_seed: int, prompt_id: str, k: int) -> int:
    digest = hashlib.sha256(f"{base_seed}|{prompt_id}|{k}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def check_generation_settings(*, n: int, top_k_sweep: Sequence[int | None], duration_s: float,
                              temperature: float) -> None:
    """ConfigError (naming the CLI flag) for settings no candidate could be generated with."""
    if n < 2:
        raise ConfigError(f"--n {n}: at least 2 candidates per prompt are needed to make pairs")
    if not top_k_sweep:
        raise ConfigError("--top-k: give at least one value, e.g. 50,250")
    if not duration_s > 0:
        raise ConfigError(f"--duration {duration_s}: must be > 0 seconds")
    if not (temperature > 0 and np.isfinite(temperature)):
        raise ConfigError(f"--temperature {temperature}: must be > 0 (1.0 samples the model as trained)")


def unresolved_failures(out_dir: str | Path) -> list[dict[str, Any]]:
    """Rows of ``failures.jsonl`` (the append-only history) whose candidate is still missing from
    ``candidates.jsonl``, i.e. what a re-run would retry; the latest row per candidate."""
    from musicjudge.io import read_jsonl

    out_dir = Path(out_dir)
    if not (out_dir / FAILURES_FILE).exists():
        return []
    done = {row["id"] for row in read_jsonl(out_dir / CANDIDATES_FILE)} if (out_dir / CANDIDATES_FILE).exists() else set()
    latest = {(f.get("prompt_id"), f.get("candidate")): f for f in read_jsonl(out_dir / FAILURES_FILE)}
    return [f for (pid, k), f in latest.items() if f"{pid}-{k}" not in done]


def generate_candidates(prompts: Sequence[dict[str, Any]], generator: CandidateGenerator, out_dir: str | Path, *,
                        n: int = 4, top_k_sweep: Sequence[int | None] = (50, 250), temperature: float = 1.0,
                        duration_s: float = 8.0, seed: int = 0, progress: bool = True) -> Path:
    """Generate ``n`` candidates per prompt into ``out_dir`` (resumable); returns candidates.jsonl."""
    from tqdm.auto import tqdm

    from musicjudge.audio import write_audio
    from musicjudge.io import append_jsonl, read_jsonl
    from musicjudge.reward.data import Instruction

    check_generation_settings(n=n, top_k_sweep=top_k_sweep, duration_s=duration_s, temperature=temperature)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / CANDIDATES_FILE
    done = {row["id"] for row in read_jsonl(manifest)} if manifest.exists() else set()
    jobs = [(p, k) for p in prompts for k in range(n) if f"{p['id']}-{k}" not in done]
    bar = tqdm(total=len(prompts) * n, initial=len(prompts) * n - len(jobs), desc=f"generating ({generator.name})",
               unit="clip", disable=not progress)
    failed_prompts: set[str] = set()
    try:
        for prompt, k in jobs:
            if prompt["id"] in failed_prompts:
                bar.update(1)
                continue
            top_k = top_k_sweep[k % len(top_k_sweep)]
            clip_seed = candidate_seed(seed, prompt["id"], k)
            instruction = Instruction(text=prompt["text"], lyrics=prompt["lyrics"], ref_audio=prompt["ref_audio"])
            rel = Path("audio") / prompt["id"] / f"{k}.wav"
            try:
                wave, sr = generator.generate(instruction, seed=clip_seed, top_k=top_k, temperature=temperature, duration_s=duration_s)
                wave = np.asarray(wave, dtype=np.float32).reshape(-1)
                if wave.size == 0 or not np.isfinite(wave).all() or float(np.abs(wave).max()) < 1e-5:
                    raise MusicjudgeError(f"generator returned empty, silent or non-finite audio for {prompt['id']} #{k}")
                peak = write_audio(out_dir / rel, wave, sr)
            except MusicjudgeError as e:
                append_jsonl(out_dir / FAILURES_FILE, {"prompt_id": prompt["id"], "candidate": k, "error": str(e)})
                log.warning("prompt %s candidate %d failed: %s", prompt["id"], k, e)
                failed_prompts.add(prompt["id"])
                bar.update(1)
                continue
            append_jsonl(manifest, {
                "id": f"{prompt['id']}-{k}", "text": prompt["text"], "lyrics": prompt["lyrics"],
                "ref_audio": prompt["ref_audio"], "audio": rel.as_posix(),
                "system": f"{generator.name}/top_k={top_k}", "prompt_id": prompt["id"], "candidate": k, "seed": clip_seed,
                "top_k": top_k, "temperature": temperature, "duration_s": round(len(wave) / sr, 3), "sample_rate": sr,
                "peak": round(peak, 4), "generator": generator.name, "conditioned_on": list(generator.conditioned_on),
            })
            bar.update(1)
    finally:
        bar.close()
    if not manifest.exists():
        raise MusicjudgeError(f"{out_dir}: no candidate could be generated; see {FAILURES_FILE}")
    return manifest
