"""Pairwise judges behind one interface: ``judge(pair, order) -> Verdict``.

``order`` says which clip the judge is shown first: "AB" (the manifest's A first) or "BA".
A verdict is always expressed in *displayed* terms ("A" = the clip shown first); the labeller
maps it back to the manifest's A/B. Keeping the judge ignorant of the mapping is what makes
position bias measurable.

Backends:
- :class:`OpenAIChatJudge` — any OpenAI-compatible chat-completions server (vLLM, a hosted
  multimodal LLM, ...), clips sent as base64 audio content parts;
- :class:`RewardModelJudge` — any reward model (``musicjudge.reward.load_reward_model``),
  verdict from the score difference;
- :class:`HeuristicJudge` — signal-level rules, no model (tests, smoke runs);
- :class:`SimulatedJudge` — knows the true label and answers with a set accuracy and
  first-position bias (to measure what the consistency filter buys).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import random
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Protocol, Sequence

from musicjudge.audio.tonality import KRUMHANSL_MAJOR, KRUMHANSL_MINOR, PITCH_CLASSES
from musicjudge.errors import AudioError, ConfigError, MusicjudgeError

if TYPE_CHECKING:  # the reward schema is light, but keep import-time minimal for the CLI
    from musicjudge.reward.data import PreferencePair

log = logging.getLogger(__name__)

ORDERS: tuple[str, str] = ("AB", "BA")
LABELS: tuple[str, ...] = ("A", "B", "tie")
DEFAULT_DIMENSIONS: tuple[str, ...] = ("musicality", "alignment")
_FLIP = {"A": "B", "B": "A", "tie": "tie"}


class JudgeError(MusicjudgeError):
    """A judge cannot work at all (bad credentials, unknown model, unreachable server)."""


@dataclass
class Verdict:
    """One judge answer for one pair shown in one order.

    status: "ok" (parsed), "malformed" (answered, but not in the required format; the raw
    answer is kept and nothing is guessed) or "error" (no answer: transport/HTTP failure or
    unreadable audio; retried on the next run)."""

    status: str
    labels: dict[str, str] = field(default_factory=dict)  # dim -> "A"|"B"|"tie", displayed terms
    confidence: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    raw: str | None = None
    error: str | None = None
    cached: bool = False
    attempts: int = 0
    request_hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Judge(Protocol):
    """What the labeller needs. ``concurrency`` (optional attribute) bounds parallel calls;
    ``judge_many`` (optional) lets a backend batch work (reward models score clips in batches)."""

    name: str

    def judge(self, pair: "PreferencePair", order: str) -> Verdict: ...


def check_order(order: str) -> str:
    if order not in ORDERS:
        raise ConfigError(f"order {order!r}: use 'AB' or 'BA'")
    return order


def displayed_clips(pair: "PreferencePair", order: str) -> tuple[str, str]:
    """Paths of the clips in the order the judge sees them."""
    return (pair.audio_a, pair.audio_b) if check_order(order) == "AB" else (pair.audio_b, pair.audio_a)


def to_manifest_label(label: str, order: str) -> str:
    """Displayed-order label -> the manifest's A/B terms."""
    return label if check_order(order) == "AB" else _FLIP[label]


def to_displayed_label(label: str, order: str) -> str:
    """Manifest A/B label -> the displayed-order terms (the same flip; it is its own inverse)."""
    return to_manifest_label(label, order)


def judge_dimensions(pair: "PreferencePair", dimensions: Sequence[str]) -> list[str]:
    """Alignment needs something to align to; a pair without any instruction is judged on
    musicality only."""
    if pair.instruction.kind == "none":
        return [d for d in dimensions if d != "alignment"]
    return list(dimensions)


# --------------------------------------------------------------------------------------------
# Verdict parsing (strict)
# --------------------------------------------------------------------------------------------


class MalformedAnswer(ValueError):
    """The judge answered, but not with the required JSON; the message says what is wrong."""


_FENCE = re.compile(r"^```(?:json)?\s*\n(?P<body>.*)\n```$", re.DOTALL)


def parse_verdict(content: str, dimensions: Sequence[str]) -> tuple[dict[str, str], dict[str, float], str | None]:
    """Parse a judge's answer. The answer must be one JSON object (optionally inside a single
    ```json fence) with every requested dimension set to "A", "B" or "tie" (any case).
    Optional: ``confidence`` (1-5, a number or one per dimension) and ``reason`` (text).
    Anything else raises :class:`MalformedAnswer`; nothing is guessed from free text."""
    text = (content or "").strip()
    fence = _FENCE.match(text)
    if fence:
        text = fence.group("body").strip()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        raise MalformedAnswer("answer is not a JSON object") from None
    if not isinstance(obj, dict):
        raise MalformedAnswer(f"answer is JSON {type(obj).__name__}, not an object")
    labels: dict[str, str] = {}
    for dim in dimensions:
        value = obj.get(dim)
        if not isinstance(value, str):
            raise MalformedAnswer(f"{dim!r} missing or not a string")
        norm = {"a": "A", "b": "B", "tie": "tie"}.get(value.strip().lower())
        if norm is None:
            raise MalformedAnswer(f"{dim!r} is {value!r}, not A, B or tie")
        labels[dim] = norm
    confidence: dict[str, float] = {}
    raw_conf = obj.get("confidence")
    if isinstance(raw_conf, (int, float)) and not isinstance(raw_conf, bool):
        raw_conf = {d: raw_conf for d in dimensions}
    if isinstance(raw_conf, dict):
        for dim in dimensions:
            c = raw_conf.get(dim)
            # An out-of-range confidence is dropped (the verdict itself is still valid).
            if isinstance(c, (int, float)) and not isinstance(c, bool) and 1 <= c <= 5:
                confidence[dim] = float(c)
    reason = obj.get("reason")
    return labels, confidence, (str(reason)[:1000] if reason is not None else None)


# --------------------------------------------------------------------------------------------
# OpenAI-compatible chat-completions judge
# --------------------------------------------------------------------------------------------

SYSTEM_PROMPT = (
    "You are an expert music critic judging two generated music clips. "
    "Musicality: which clip is better music (composition, performance, sound quality, coherence), "
    "regardless of the instruction. Alignment: which clip follows the instruction better "
    "(text description, lyrics, and the reference audio when one is given). "
    "Judge each dimension independently; answer tie only when the clips are truly equal. "
    "The order in which the clips are presented is random and carries no information."
)


def _answer_format(dimensions: Sequence[str]) -> str:
    fields = ", ".join(f'"{d}": "A" | "B" | "tie"' for d in dimensions)
    return (
        "Answer with exactly one JSON object and nothing else: "
        f'{{{fields}, "confidence": 1-5, "reason": "<one sentence>"}}'
    )


@lru_cache(maxsize=48)  # ~1.3 MB per 30 s clip: bounded memory, and both orders of a pair hit it
def encode_audio_wav_b64(path: str, max_seconds: float | None, sample_rate: int | None) -> str:
    """Read a clip, mix to mono, crop to ``max_seconds``, resample to ``sample_rate`` and
    return a base64 16-bit WAV (small, and a format every audio-capable server accepts)."""
    import numpy as np
    import soundfile as sf

    try:
        wave, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises several types for missing/corrupt files
        raise AudioError(f"{path}: cannot read audio ({type(e).__name__}); check the file exists and is WAV/FLAC/OGG/MP3") from None
    wave = wave.mean(axis=1)
    if wave.size == 0:
        raise AudioError(f"{path}: empty audio; regenerate or drop the clip")
    if not np.all(np.isfinite(wave)):
        raise AudioError(f"{path}: audio contains NaN/inf samples; regenerate the clip")
    if max_seconds:
        wave = wave[: int(max_seconds * sr)]
    if sample_rate and sample_rate != sr:
        import soxr

        wave = soxr.resample(wave, sr, sample_rate)
        sr = sample_rate
    buf = io.BytesIO()
    sf.write(buf, np.clip(wave, -1.0, 1.0), sr, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode("ascii")


class OpenAIChatJudge:
    """Judge through an OpenAI-compatible ``/chat/completions`` endpoint.

    The API key is read from the environment variable ``api_key_env`` at construction and only
    ever placed in the Authorization header; it is never logged, cached or written (error texts
    are scrubbed of it too). Responses are cached on disk by request hash (the hash covers the
    body, not the key), so re-runs and resumed runs cost nothing for answers already received.
    Retries: timeouts, connection errors, HTTP 5xx and 429 (rate limit) are retried with
    exponential back-off plus jitter; other 4xx are not (401/403/404 abort the run: every
    request would fail the same way)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        dimensions: Sequence[str] = DEFAULT_DIMENSIONS,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        concurrency: int = 4,
        cache_dir: str | os.PathLike | None = None,
        audio_part: str = "input_audio",
        max_audio_s: float | None = 30.0,
        audio_sample_rate: int | None = 16000,
        temperature: float = 0.0,
        max_tokens: int = 400,
        system_prompt: str = SYSTEM_PROMPT,
        name: str | None = None,
        transport: Any = None,
    ) -> None:
        import httpx

        if not base_url or "://" not in base_url:
            raise ConfigError(f"base URL {base_url!r}: give the server's URL, e.g. http://127.0.0.1:8000/v1")
        if audio_part not in ("input_audio", "audio_url"):
            raise ConfigError(f"audio part {audio_part!r}: use 'input_audio' (OpenAI) or 'audio_url' (vLLM data URL)")
        for flag, value, ok, need in (("--concurrency", concurrency, concurrency >= 1, ">= 1"),
                                      ("--retries", max_retries, max_retries >= 0, ">= 0"),
                                      ("--timeout", timeout_s, timeout_s > 0, "> 0 seconds"),
                                      ("--max-audio-s", max_audio_s, max_audio_s is None or max_audio_s > 0,
                                       "> 0 seconds")):
            if not ok:
                raise ConfigError(f"judge setting {flag} {value}: must be {need}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.name = name or f"openai:{model}"
        self.dimensions = tuple(dimensions)
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.concurrency = int(concurrency)
        self.audio_part = audio_part
        self.max_audio_s = max_audio_s
        self.audio_sample_rate = audio_sample_rate
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.system_prompt = system_prompt
        self.api_key_env = api_key_env
        self.__key = os.environ.get(api_key_env) if api_key_env else None
        if api_key_env and not self.__key:
            log.info("environment variable %s is not set; sending requests without an API key", api_key_env)
        if cache_dir is None:
            from musicjudge.io import cache_dir as _cache_dir

            cache_dir = _cache_dir("pseudolabel", "judge-responses")
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._semaphore = threading.BoundedSemaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        self._client = httpx.Client(timeout=httpx.Timeout(self.timeout_s), limits=limits, transport=transport)

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIChatJudge(url={self.url!r}, model={self.model!r}, key={'set' if self.__key else 'unset'})"

    def close(self) -> None:
        self._client.close()

    # -- request building ------------------------------------------------------------------

    def _audio_content(self, path: str) -> dict[str, Any]:
        data = encode_audio_wav_b64(path, self.max_audio_s, self.audio_sample_rate)
        if self.audio_part == "input_audio":
            return {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}
        return {"type": "audio_url", "audio_url": {"url": f"data:audio/wav;base64,{data}"}}

    def build_request(self, pair: "PreferencePair", order: str) -> dict[str, Any]:
        """The chat-completions body for ``pair`` shown in ``order`` (no credentials in it)."""
        first, second = displayed_clips(pair, order)
        dims = judge_dimensions(pair, self.dimensions)
        ins = pair.instruction
        lines = ["Instruction given to the music generator:"]
        lines.append(f"- text description: {ins.text}" if ins.text else "- text description: (none)")
        lines.append(f"- lyrics: {ins.lyrics}" if ins.lyrics else "- lyrics: (none; instrumental)")
        lines.append("- reference audio: attached below" if ins.ref_audio else "- reference audio: (none)")
        content: list[dict[str, Any]] = [{"type": "text", "text": "\n".join(lines)}]
        if ins.ref_audio:
            content += [{"type": "text", "text": "Reference audio:"}, self._audio_content(ins.ref_audio)]
        content += [
            {"type": "text", "text": "Clip A:"}, self._audio_content(first),
            {"type": "text", "text": "Clip B:"}, self._audio_content(second),
            {"type": "text", "text": _answer_format(dims)},
        ]
        return {
            "model": self.model,
            "messages": [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": content}],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    # -- cache ---------------------------------------------------------------------------------

    def _cache_path(self, request_hash: str) -> Path:
        return self.cache_dir / request_hash[:2] / f"{request_hash}.json"

    def _cache_get(self, request_hash: str) -> str | None:
        path = self._cache_path(request_hash)
        try:
            return json.loads(path.read_text(encoding="utf-8"))["content"]
        except (OSError, ValueError, KeyError):
            return None

    def _cache_put(self, request_hash: str, content: str) -> None:
        from musicjudge.io import atomic_write_json

        atomic_write_json(self._cache_path(request_hash), {"model": self.model, "url": self.url, "content": content})

    def _scrub(self, text: str) -> str:
        return text.replace(self.__key, "***") if self.__key else text

    # -- the call ------------------------------------------------------------------------------

    def judge(self, pair: "PreferencePair", order: str) -> Verdict:
        dims = judge_dimensions(pair, self.dimensions)
        try:
            body = self.build_request(pair, order)
        except AudioError as e:
            return Verdict(status="error", error=str(e))
        blob = json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")
        # Keyed by the body (model name, prompt, audio), not the URL: the same model behind a
        # new port or host answers from the cache; a different model name never does.
        request_hash = hashlib.sha256(blob).hexdigest()
        content = self._cache_get(request_hash)
        cached = content is not None
        attempts = 0
        if content is None:
            content, attempts, error = self._post_with_retries(body)
            if content is None:
                return Verdict(status="error", error=error, attempts=attempts, request_hash=request_hash)
            self._cache_put(request_hash, content)
        try:
            labels, confidence, reason = parse_verdict(content, dims)
        except MalformedAnswer as e:
            return Verdict(status="malformed", raw=self._scrub(content)[:2000], error=str(e), cached=cached,
                           attempts=attempts, request_hash=request_hash)
        return Verdict(status="ok", labels=labels, confidence=confidence, reason=reason, raw=self._scrub(content)[:2000],
                       cached=cached, attempts=attempts, request_hash=request_hash)

    def _post_with_retries(self, body: dict[str, Any]) -> tuple[str | None, int, str | None]:
        """(content, attempts, error). Content is the assistant message text."""
        import httpx

        headers = {"Content-Type": "application/json"}
        if self.__key:
            headers["Authorization"] = f"Bearer {self.__key}"
        last_error = "no attempt made"
        for attempt in range(1, self.max_retries + 2):
            try:
                with self._semaphore:
                    resp = self._client.post(self.url, json=body, headers=headers)
            except httpx.TimeoutException:
                last_error = f"timed out after {self.timeout_s:g} s"
            except httpx.TransportError as e:
                last_error = f"connection failed ({type(e).__name__})"
            else:
                code = resp.status_code
                if code == 200:
                    try:
                        return _message_content(resp.json()), attempt, None
                    except (ValueError, KeyError, IndexError, TypeError):
                        # A 200 that is not chat-completions JSON: record the raw text as the answer
                        # (it will be marked malformed), do not retry a server that answers nonsense.
                        return resp.text[:2000], attempt, None
                if code in (401, 403):
                    raise JudgeError(f"{self.url}: HTTP {code} (not authorised); check the API key in ${self.api_key_env}")
                if code == 404:
                    raise JudgeError(f"{self.url}: HTTP 404; check the base URL (it usually ends in /v1) and the model name {self.model!r}")
                last_error = f"HTTP {code}: {self._scrub(resp.text[:200])}"
                if not (code >= 500 or code == 429):
                    return None, attempt, last_error  # the request itself is wrong; retrying cannot help
            if attempt <= self.max_retries:
                delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
                time.sleep(delay * (0.5 + random.random() / 2))
        return None, self.max_retries + 1, f"gave up after {self.max_retries + 1} attempts: {last_error}"


def _message_content(data: dict[str, Any]) -> str:
    content = data["choices"][0]["message"]["content"]
    if isinstance(content, list):  # some servers return content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if not isinstance(content, str):
        raise TypeError("content is not text")
    return content


# --------------------------------------------------------------------------------------------
# Reward-model judge
# --------------------------------------------------------------------------------------------


class RewardModelJudge:
    """Verdicts from a reward model's scores: A if score(first) - score(second) > margin, B if
    < -margin, else tie. Each clip is scored on its own, so this judge has no position bias by
    construction; scores are memoised so the swapped order costs nothing."""

    def __init__(self, model: Any, *, name: str = "reward", margin: float = 0.0,
                 dimensions: Sequence[str] = DEFAULT_DIMENSIONS, batch_size: int = 16) -> None:
        self.model = model
        self.name = name
        self.margin = float(margin)
        self.dimensions = tuple(dimensions)
        self.batch_size = int(batch_size)
        self.concurrency = 1
        self._scores: dict[tuple[str, Any], dict[str, float]] = {}

    def _ensure_scores(self, keys: Iterable[tuple[str, Any]]) -> None:
        import numpy as np

        from musicjudge.reward.base import ScoreItem, check_scores

        todo = list(dict.fromkeys(k for k in keys if k not in self._scores))
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            raw = self.model.score([ScoreItem(audio=a, instruction=ins) for a, ins in chunk])
            scores = check_scores(raw, len(chunk), who=self.name)
            for i, key in enumerate(chunk):
                self._scores[key] = {d: float(scores[d][i]) for d in scores if np.isfinite(scores[d][i])}

    def judge_many(self, requests: Sequence[tuple["PreferencePair", str]]) -> list[Verdict]:
        self._ensure_scores(k for pair, _ in requests for k in ((pair.audio_a, pair.instruction), (pair.audio_b, pair.instruction)))
        failures = getattr(self.model, "failures", {}) or {}
        out = []
        for pair, order in requests:
            first, second = displayed_clips(pair, order)
            s1, s2 = self._scores[(first, pair.instruction)], self._scores[(second, pair.instruction)]
            dims = judge_dimensions(pair, self.dimensions)
            missing = [d for d in dims if d not in s1 or d not in s2]
            if missing:
                why = failures.get(first) or failures.get(second) or f"no {'/'.join(missing)} score"
                out.append(Verdict(status="error", error=str(why)))
                continue
            labels = {d: _compare(s1[d], s2[d], self.margin) for d in dims}
            out.append(Verdict(status="ok", labels=labels,
                               raw=json.dumps({"first": {d: s1[d] for d in dims}, "second": {d: s2[d] for d in dims}})))
        return out

    def judge(self, pair: "PreferencePair", order: str) -> Verdict:
        return self.judge_many([(pair, order)])[0]


def _compare(first: float, second: float, margin: float) -> str:
    diff = first - second
    return "A" if diff > margin else "B" if diff < -margin else "tie"


# --------------------------------------------------------------------------------------------
# Heuristic judge (no model)
# --------------------------------------------------------------------------------------------

_ENHARMONIC = {"db": "c#", "eb": "d#", "gb": "f#", "ab": "g#", "bb": "a#"}
_KEY_RE = re.compile(r"\b([a-g])\s*(#|b|sharp|flat)?\s*(major|minor)\b", re.IGNORECASE)


class HeuristicJudge:
    """Signal-level judge without any model, for tests and smoke runs.

    musicality: the clip with the lower spectral flatness wins (noise is spectrally flat,
    pitched music is not). alignment: with a reference clip, the closer chroma profile wins;
    else, if the text names a key ("in A minor"), the clip whose chroma fits that key's
    Krumhansl profile better wins; else tie. Differences below ``margin`` are ties."""

    def __init__(self, *, margin: float = 0.02, dimensions: Sequence[str] = DEFAULT_DIMENSIONS, name: str = "heuristic") -> None:
        self.margin = float(margin)
        self.dimensions = tuple(dimensions)
        self.name = name
        self.concurrency = 2

    @staticmethod
    @lru_cache(maxsize=512)
    def _features(path: str) -> tuple[float, tuple[float, ...]]:
        import numpy as np
        from scipy import signal

        from musicjudge.audio import load_audio_with_sr

        # the one audio reader: every format, and NaN / silent / unreadable files as AudioError
        wave, sr = load_audio_with_sr(path)
        if wave.size < 2048:
            raise AudioError(f"{path}: clip has {wave.size} samples, too short to judge (needs 2048); regenerate the clip")
        freqs, _, spec = signal.stft(wave, fs=sr, nperseg=2048)
        power = np.abs(spec) ** 2 + 1e-12
        flatness = float(np.mean(np.exp(np.mean(np.log(power), axis=0)) / np.mean(power, axis=0)))
        band = (freqs > 55) & (freqs < 4000)
        midi = 69 + 12 * np.log2(freqs[band] / 440.0)
        chroma = np.zeros(12)
        np.add.at(chroma, np.round(midi).astype(int) % 12, power[band].mean(axis=1))
        chroma = chroma / (np.linalg.norm(chroma) + 1e-12)
        return flatness, tuple(chroma.tolist())

    def _alignment(self, pair: "PreferencePair", first: str, second: str) -> float | None:
        import numpy as np

        c1, c2 = np.array(self._features(first)[1]), np.array(self._features(second)[1])
        if pair.instruction.ref_audio:
            ref = np.array(self._features(pair.instruction.ref_audio)[1])
            return float(c1 @ ref - c2 @ ref)
        match = _KEY_RE.search(pair.instruction.text or "")
        if not match:
            return None
        letter, accidental, mode = match.group(1).lower(), (match.group(2) or "").lower(), match.group(3).lower()
        name = letter + {"#": "#", "sharp": "#", "b": "b", "flat": "b"}.get(accidental, "")
        name = _ENHARMONIC.get(name, name)
        if name not in PITCH_CLASSES:  # e.g. "e#", "cb": use the plain letter
            name = letter
        profile = np.roll(np.array(KRUMHANSL_MAJOR if mode == "major" else KRUMHANSL_MINOR), PITCH_CLASSES.index(name))
        return float(np.corrcoef(c1, profile)[0, 1] - np.corrcoef(c2, profile)[0, 1])

    def judge(self, pair: "PreferencePair", order: str) -> Verdict:
        first, second = displayed_clips(pair, order)
        try:
            f1, f2 = self._features(first)[0], self._features(second)[0]
            labels = {}
            dims = judge_dimensions(pair, self.dimensions)
            if "musicality" in dims:
                labels["musicality"] = _compare(-f1, -f2, self.margin * max(f1, f2, 1e-9))
            if "alignment" in dims:
                diff = self._alignment(pair, first, second)
                labels["alignment"] = "tie" if diff is None else _compare(diff, 0.0, self.margin)
        except AudioError as e:
            return Verdict(status="error", error=str(e))
        return Verdict(status="ok", labels=labels)


# --------------------------------------------------------------------------------------------
# Simulated judge (known accuracy and position bias)
# --------------------------------------------------------------------------------------------


class SimulatedJudge:
    """A judge with known behaviour, for measuring the consistency filter.

    For each (pair, order, dimension), independently and reproducibly: with probability
    ``position_bias`` it answers "A" (the clip shown first) whatever the clips are; otherwise
    it gives the true label with probability ``accuracy`` and a wrong one otherwise. The true
    labels come from ``truth`` (pair id -> dim -> label) or from the pair's own preference."""

    def __init__(self, *, accuracy: float = 0.8, position_bias: float = 0.3, seed: int = 0,
                 truth: Mapping[str, Mapping[str, str]] | None = None,
                 dimensions: Sequence[str] = DEFAULT_DIMENSIONS, name: str | None = None) -> None:
        if not (0 <= accuracy <= 1 and 0 <= position_bias <= 1):
            raise ConfigError(f"simulated judge: accuracy {accuracy} and position_bias {position_bias} must be in [0, 1]")
        self.accuracy, self.position_bias, self.seed = float(accuracy), float(position_bias), int(seed)
        self.truth = truth
        self.dimensions = tuple(dimensions)
        self.name = name or f"simulated(acc={accuracy:g},bias={position_bias:g})"
        self.concurrency = 1
        self.batch_size = 512

    def judge_many(self, requests: Sequence[tuple["PreferencePair", str]]) -> list[Verdict]:
        return [self.judge(pair, order) for pair, order in requests]

    def _uniforms(self, pair_id: str, order: str, dim: str) -> tuple[float, float, float]:
        import numpy as np

        digest = hashlib.sha256(f"{self.seed}|{pair_id}|{order}|{dim}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        u = rng.random(3)
        return float(u[0]), float(u[1]), float(u[2])

    def judge(self, pair: "PreferencePair", order: str) -> Verdict:
        check_order(order)
        truth = dict(self.truth.get(pair.id, {})) if self.truth is not None else dict(pair.preference)
        labels = {}
        for dim in judge_dimensions(pair, self.dimensions):
            if dim not in truth:
                return Verdict(status="error", error=f"pair {pair.id!r}: no true {dim} label for the simulated judge")
            u_bias, u_acc, u_pick = self._uniforms(pair.id, order, dim)
            if u_bias < self.position_bias:
                labels[dim] = "A"
                continue
            true = truth[dim]
            if u_acc < self.accuracy:
                answer = true
            else:
                wrong = [x for x in LABELS if x != true and (true == "tie" or x != "tie")]
                answer = wrong[int(u_pick * len(wrong))]
            labels[dim] = to_displayed_label(answer, order)
        return Verdict(status="ok", labels=labels)
